r"""What each unit wants to see (Olah, Mordvintsev & Schubert, *Feature Visualization*, Distill 2017):
lesson 2's gradient descent on the pixels with another cost, minus the mean activation of one channel
``unit`` of ``layer``, ``J = -mean_{h,w} a[l]_{unit,h,w}(T(G))``.  Two changes make a picture of it
rather than high-frequency noise:

* :class:`FourierImage` -- G is made from its spectrum, scaled by 1/frequency (large shapes are as easy
  to change as fine grain; 1/f^1.5, broad and smooth shapes, for a unit that sees half the image or
  more), its colours mixed as the sample photos' colours are correlated and pressed into [0, 1] by a
  sigmoid around the photos' mean colour;
* :class:`UnitCost` -- every step sees G padded, shifted, scaled and turned a little at random
  (transformation robustness), so a pattern only one exact pixel grid excites gains nothing.

:func:`visualize` runs them on the one engine: a :class:`~teachkit.transfer.Descent` (Adam) of
:class:`UnitCost` over :class:`FourierImage`, driven by :func:`~teachkit.transfer.run_steps`.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .fileio import check_int
from .messages import InputError, Message
from .progress import ProgressCallback

DEFAULT_SIZE, DEFAULT_STEPS = 128, 128
#: lesson 1's live painting: ends within the demo time limit on a 2-core AVX2 laptop (RESULTS_visualize.md)
LIVE_SIZE, LIVE_STEPS = 96, 48
LR = 0.05  #: Adam's step on the spectrum
AMPLITUDE = 0.25  #: the largest spectrum scale, per pixel (the choice: benchmarks/RESULTS_visualize.md)


@functools.lru_cache(maxsize=1)
def photo_colours() -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, mean)``: ``M`` a square root of the RGB covariance of the sample photos (``M M^T`` is that
    covariance, divided by the largest column norm of ``M`` squared) and their mean colour."""
    from .datasets import get_dataset
    from .images import to_tensor

    ds = get_dataset("sample")
    px = torch.cat([to_tensor(ds.photo(s).resize((64, 64)))[0].reshape(3, -1) for s in range(len(ds.sources))], 1)
    e, v = torch.linalg.eigh(torch.cov(px.double()))
    m = v @ torch.diag(e.clamp_min(0).sqrt()) @ v.T
    return (m / m.norm(dim=0).max()).float(), px.mean(1)


class FourierImage:
    """G as variables of the engine (the shape :class:`~teachkit.transfer.Pixels` has): a spectrum
    ``z`` of each of three decorrelated colour planes, ``G = sigmoid(M irfft2(z / f^decay) + logit(mean))``
    with ``f`` the frequency and ``M``, ``mean`` from :func:`photo_colours`.  Always inside [0, 1], so
    no clamp and no penalty."""

    def __init__(self, height: int, width: int, *, seed: int = 0, decay: float = 1.0, sd: float = 0.01,
                 device=None):
        self.height, self.width = int(height), int(width)
        fy = torch.fft.fftfreq(self.height)[:, None]
        fx = torch.fft.rfftfreq(self.width)[None, :]
        scale = (fx ** 2 + fy ** 2).sqrt().clamp_min(1.0 / max(self.height, self.width)) ** -float(decay)
        self.scale = (scale / scale.max() * AMPLITUDE * math.sqrt(self.height * self.width)).to(device)
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(2, 3, *scale.shape, generator=g) * sd
        self.params = [z.to(device).requires_grad_(True)]
        m, mean = photo_colours()
        self.colours, self.offset = m.to(device), torch.logit(mean).to(device)[:, None, None]

    def compose(self) -> torch.Tensor:
        """The image before the sigmoid, ``(1, 3, H, W)``."""
        z = self.params[0]
        x = torch.fft.irfft2(torch.complex(z[0], z[1]) * self.scale, s=(self.height, self.width), norm="ortho")
        return torch.einsum("ij,jhw->ihw", self.colours, x)[None] + self.offset

    render = staticmethod(torch.sigmoid)
    penalty = staticmethod(lambda x: x.new_zeros(()))

    def project(self) -> None:
        pass

    @torch.no_grad()
    def rgb(self) -> torch.Tensor:
        return self.render(self.compose()).float().cpu()


def jitter(x: torch.Tensor, g: torch.Generator, pad: int = 12, shift: int = 8, scale: float = 0.1,
           degrees: float = 10.0) -> torch.Tensor:
    """``x`` padded (reflected) by ``pad``, shifted by up to ``shift`` px, scaled by 1 +- ``scale`` and
    turned by up to ``degrees``, then shifted by up to ``shift // 2`` px: one random draw of ``g``."""
    r = torch.rand(6, generator=g).tolist()
    x = F.pad(x, (pad,) * 4, mode="reflect")
    x = torch.roll(x, (round((2 * r[0] - 1) * shift), round((2 * r[1] - 1) * shift)), (2, 3))
    s, a = 1.0 + (2 * r[2] - 1) * scale, math.radians((2 * r[3] - 1) * degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]) / s
    grid = F.affine_grid(theta[None].to(x), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    return torch.roll(x, (round((2 * r[4] - 1) * shift / 2), round((2 * r[5] - 1) * shift / 2)), (2, 3))


class UnitCost:
    """The objective: ``J = -mean a[layer]_unit(jitter(G))``, one random transform per evaluation
    (from ``seed``).  A ``relu`` layer's ReLU is made leaky (slope 0.01 below 0), so that a unit silent
    on the faint start still has a gradient.  Terms: ``activation`` (the mean), ``total`` (J)."""

    names = ("activation", "total")
    weights = None

    def __init__(self, net, layer: str, unit: int, seed: int = 0):
        conv = layer.replace("relu", "conv", 1)
        self.leaky = layer.startswith("relu") and conv in net.channels
        self.net, self.layer, self.unit = net, conv if self.leaky else layer, unit
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.net.extract(jitter(img, self.generator), [self.layer])[self.layer][0, self.unit]
        a = (F.leaky_relu(a, 0.01) if self.leaky else a).mean()
        return -a, torch.stack([a, -a]).detach().float()


def check_unit(net, layer: str, unit) -> int:
    """``unit`` as a channel of ``layer`` (an unknown layer or a unit out of range: InputError)."""
    net.check_layers([layer])
    n = int(net.channels[layer])
    if isinstance(unit, bool) or not isinstance(unit, numbers.Integral) or not 0 <= unit < n:
        raise InputError("visualize.unit_range", layer=layer, unit=repr(unit), last=n - 1)
    return int(unit)


@torch.no_grad()
def unit_activation(net, image, layer: str, unit: int) -> float:
    """The unit's largest activation over an image (PIL or ``(1, 3, H, W)`` in [0, 1]) as it is."""
    from .images import to_tensor

    x = image if isinstance(image, torch.Tensor) else to_tensor(image)
    return float(net.extract(x.to(net.device, torch.float32), [layer])[layer][0, check_unit(net, layer, unit)].max())


def default_units(atlas) -> list[tuple[str, int]]:
    """``(layer, unit)``: the unit lesson 1 opens on in each layer of ``atlas`` (the most active)."""
    from .patches import select_units

    return [(layer, select_units(atlas, layer, "most_active", 1)[0]) for layer in atlas.layers]


@dataclass
class Visualization:
    """One painted image (PIL), the unit's largest activation on it (:func:`unit_activation`), the steps
    done, the seconds, why it stopped early ('time_limit', 'stopped'; None: all ran), the engine's records."""

    image: Any
    activation: float
    steps: int
    seconds: float
    stop_reason: str | None = None
    history: list[dict] = field(default_factory=list)
    stopped = property(lambda self: self.stop_reason is not None)


def visualize(net, layer: str, unit: int, size: int = DEFAULT_SIZE, steps: int = DEFAULT_STEPS, seed: int = 0,
              callback: ProgressCallback | None = None, stop: threading.Event | None = None, *,
              time_limit: float | None = None, image_every: int = 10, lr: float = LR) -> Visualization:
    """Paint a ``size`` x ``size`` image that excites ``unit`` of ``layer`` (module docstring): ``steps``
    Adam steps on the one engine, reported as ``Progress(task='visualize', ...)`` with the image every
    ``image_every`` steps; it stops early on the callback's True, ``stop`` or ``time_limit`` (seconds
    from the call, set-up included) and keeps what it has made.  Deterministic for a seed on one machine."""
    from .receptive_field import receptive_fields
    from .transfer import Descent, backbone_for, run_steps

    net = backbone_for(net)
    unit = check_unit(net, layer, unit)
    size, steps = check_int("size", size, 16), check_int("steps", steps, 1)
    t0 = time.perf_counter()
    decay = 1.5 if receptive_fields(net.body)[layer].size >= size / 2 else 1.0
    d = Descent(UnitCost(net, layer, unit, seed), FourierImage(size, size, seed=seed, decay=decay, device=net.device),
                optimizer="adam", lr=lr, time_origin=t0)
    records, reason = run_steps(d, steps, callback=callback, stop=stop, task="visualize",
                                deadline=None if time_limit is None else t0 + float(time_limit),
                                message=Message("progress.visualize", layer=layer, unit=unit),
                                preview_every=check_int("image_every", image_every, 1))
    image = d.image()
    return Visualization(image, unit_activation(net, image, layer, unit), len(records),
                         time.perf_counter() - t0, reason if len(records) < steps else None, d.history)
