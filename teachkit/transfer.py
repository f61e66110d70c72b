r"""Neural style transfer -- THE optimisation loop of teachkit::

    J(G) = alpha * J_content(C, G) + beta * J_style(S, G)  (+ w_tv * TV(G))

G0 (noise, the content or both blended) goes through VGG; the costs of :mod:`teachkit.costs` against fixed
targets are backpropagated to G's pixels; step; repeat.  In reading order: :class:`TransferConfig` (its
bounds and words in :mod:`teachkit.options`); :func:`schedule`, the one resolving of a config without a
network; :class:`Descent`, one optimisation of an objective over a parametrisation (:class:`Pixels`),
driven by :func:`run_steps`, so that any other objective runs on this loop too; :class:`StyleTransfer`,
the style-transfer objective (:class:`StyleCost`) at one size; :class:`Engine`, :func:`transfer` and
:func:`plan`, one StyleTransfer per scale, coarse to fine, and the :class:`TransferPlan` they read.

Conventions (reasons and measurements: docs/engine.md, benchmarks/RESULTS_transfer.md): J is evaluated on
``clamp(G, 0, 1)`` (L-BFGS also minimises ``1/2 ||G - clamp(G)||^2``, Adam projects).  A step is one
evaluation of J and its gradient; its record holds the terms of the image before its update: ``content``,
``style`` (``sum_l lambda[l] J_style[l]``), ``style/<layer>``, ``tv``, ``total`` (a term of weight 0 whose
layer lies deeper than every needed one is ``nan``), unscaled although the optimiser sees ``kappa * J``.
Under ``normalization='auto'`` the weights J multiplies come from each scale's targets
(:func:`teachkit.costs.auto_weights`).  The same seed gives a bit-identical image on the same machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from . import costs
from .costs import weighted_record
from .features import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS
from .messages import InputError, Message, TeachkitError
from .progress import Progress, ProgressCallback, report
from .receptive_field import feature_size

__all__ = [
    "TransferConfig", "Schedule", "schedule", "TransferResult", "Descent", "Pixels", "StyleCost", "StyleTransfer",
    "transfer", "NORMALIZATION_DEFAULTS", "PRESETS", "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYER", "white_noise",
    "run_steps", "Engine", "TransferPlan", "ScalePlan", "plan", "initial_image", "weighted_record", "backbone_for",
    "choose_dtype", "cpu_bf16_native", "SlowDtypeWarning", "ConfigError", "TransferError", "default_scales",
    "default_pyramid", "split_steps", "blended_style_grams", "rgb_to_yiq", "yiq_to_rgb",
]

INITS = ("noise", "content", "blend")
OPTIMIZERS = ("lbfgs", "adam")
DTYPES = ("auto", "float32", "bfloat16")

# Defaults per normalisation (how tuned: docs/engine.md); 'gatys' and 'none' are derived from 'lecture' so
# that the three define the same J at the reference size 384 x 256 px.
_AUTO_DEFAULTS = {"alpha": 1.0, "beta": 4.5, "layer_weights": (0.2, 0.2, 0.2, 0.2, 0.2), "tv_weight": 1.0}
_LECTURE_DEFAULTS = {"alpha": 1.0, "beta": 1e-2, "layer_weights": (1.0, 5e-3, 2.5e-3, 2.5e-5, 0.3), "tv_weight": 1e7}
_REFERENCE_HW = (256, 384)


def _reference_shapes() -> list[tuple[int, int, int]]:
    """``(n_C, n_H, n_W)`` of each default style layer of VGG19 at 384 x 256 px (on the meta device)."""
    from .features import vgg_body

    with torch.device("meta"):
        body = vgg_body("vgg19")
    return [(body.get_submodule(l.replace("relu", "conv")).out_channels, *feature_size(body, l, _REFERENCE_HW))
            for l in DEFAULT_STYLE_LAYERS]


def _derived_defaults(normalization: str) -> dict[str, Any]:
    if normalization == "auto":
        return dict(_AUTO_DEFAULTS)
    d = dict(_LECTURE_DEFAULTS)
    if normalization == "lecture":
        return d
    # lambda_norm[l] * factor_norm[l] = lambda_lecture[l] * factor_lecture[l] at the reference size
    ratio = [costs.style_factor(h, w, c, "lecture") / costs.style_factor(h, w, c, normalization)
             for c, h, w in _reference_shapes()]
    d["layer_weights"] = tuple(float(f"{l * r:.3g}") for l, r in zip(d["layer_weights"], ratio))
    if normalization == "none":
        d["alpha"] = d["alpha"] / 2
    return d


NORMALIZATION_DEFAULTS: dict[str, dict[str, Any]] = {n: _derived_defaults(n) for n in costs.NORMALIZATIONS}

#: Named recipes: the fields that differ from TransferConfig's defaults ('quick' is the classroom's).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {"size": 256, "steps": 60},
}

#: The optimiser minimises kappa * J, kappa fixed at the first step so that the gradient has this RMS per
#: pixel (on the raw J, L-BFGS's first step of length 1 threw every pixel to 0 or 1).
GRAD_RMS = 0.1
#: A run fitted to its time limit plans to end one step and this share of its time early; a transfer's
#: first FIT_PROBE steps measure its pace.
FIT_MARGIN, FIT_PROBE = 0.1, 3
COARSEST_SIDE = 128  #: default_scales halves the size while the half keeps at least this long side
PYRAMID_MIN_SIDE = 64  #: nor does the automatic pyramid's coarsest level go below this long side


@dataclass
class TransferConfig:
    """Everything that defines one style transfer; ``None``: the default, filled in by :func:`schedule`."""

    size: int | None = 384  #: long side of the result, px (None: the content image's own size)
    steps: int = 75  #: total optimiser steps, over all scales (see :func:`split_steps`)
    alpha: float | None = None  #: content weight; None: NORMALIZATION_DEFAULTS[normalization]
    beta: float | None = None  #: style weight; None: the normalisation's default
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    layer_weights: tuple[float, ...] | None = None  #: lambda[l]; None: the normalisation's default
    normalization: str = "auto"  #: 'auto' | 'lecture' | 'gatys' | 'none' (costs.NORMALIZATIONS)
    init: str = "blend"  #: 'blend' (content + noise) | 'noise' (white noise, the lecture's) | 'content'
    init_noise: float = 0.25  #: for init='blend': G0 = (1 - init_noise) * C + init_noise * noise
    optimizer: str = "lbfgs"  #: 'lbfgs' | 'adam'
    lr: float | None = None  #: step length; None: 1.0 for L-BFGS, 0.02 for Adam
    history_size: int = 50  #: L-BFGS memory (pairs of vectors kept)
    pyramid: int | None = None  #: levels of the image's parametrisation (1: plain pixels); None: auto
    tv_weight: float | None = None  #: weight of TV(G); None: the normalisation's default
    style_weights: tuple[float, ...] | None = None  #: blend weights of several styles; None: equal
    style_scale: float = 1.0  #: style image long side relative to the generated image's
    preserve_color: bool = False  #: luminance-only transfer; keep the content's colours
    scales: tuple[int, ...] | None = None  #: coarse-to-fine long sides; None: default_scales(size)
    scale_steps: tuple[int, ...] | None = None  #: steps per scale (overrides steps); None: split_steps
    seed: int = 0
    device: str | None = None  #: None: auto (cuda, mps, cpu)
    dtype: str = "auto"  #: 'float32' | 'bfloat16' | 'auto' (bfloat16 where native; see choose_dtype)
    force_dtype: bool = False  #: use bfloat16 even where the CPU only emulates it (slow)
    backbone: str = "vgg19"
    pooling: str = "max"
    preview_every: int = 10  #: send the current image with the callback every N steps (0: never)

    @classmethod
    def preset(cls, name: str, **overrides) -> "TransferConfig":
        """The named recipe of :data:`PRESETS` (``'default'``, ``'quick'``), with ``overrides``."""
        if name not in PRESETS:
            raise ConfigError("config.unknown_preset", name=name, choices=", ".join(PRESETS))
        return cls(**{**PRESETS[name], **overrides})

    def validate(self, n_styles: int | None = None) -> "TransferConfig":
        """Raise :class:`ConfigError` (a ValueError naming the field) unless :func:`schedule` accepts it."""
        schedule(self, n_styles)
        return self

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Schedule:
    """A config with every default filled in, ``config.scales`` the long sides coarse to fine and
    ``scale_steps`` the steps of each (unknown while ``size=None``, the content's own: see :meth:`sized`)."""

    config: TransferConfig
    scale_steps: tuple[int, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.config.scales if self.config.size is not None else ()

    @property
    def steps(self) -> int:
        """Steps planned over all scales."""
        return sum(self.scale_steps) if self.sizes else int(self.config.steps)

    @property
    def first(self) -> int:
        """The long side G0 is made at: the first scale with steps (else the last)."""
        return next(s for s, n in zip(self.sizes, self.scale_steps) if n or s == self.sizes[-1])

    @property
    def start(self) -> str:
        """How G0 is made: ``config.init`` ('noise', 'content', 'blend' with init_noise and seed)."""
        return self.config.init

    def pyramid(self, side: int) -> int:
        """Levels of the image's parametrisation at long side ``side``."""
        return int(self.config.pyramid) if self.config.pyramid is not None else default_pyramid(side)

    def sized(self, side: int) -> "Schedule":
        """This schedule for a content image whose long side is ``side`` (when size was None)."""
        return self if self.sizes else _resolve(dataclasses.replace(self.config, size=int(side)))


def schedule(config: "TransferConfig | Schedule | None" = None, n_styles: int | None = None) -> Schedule:
    """The one resolving of a config (no network, no image): checked against its declaration (a
    :class:`ConfigError` naming the field), defaults, scales and steps filled in.  A Schedule stays as it is."""
    if not isinstance(config, Schedule):
        from .options import check_config

        config = config or TransferConfig()
        check_config(config)
        config = _resolve(config)
    sw = config.config.style_weights
    if sw is not None and n_styles is not None and len(sw) != n_styles:
        raise ConfigError("config.style_weights_count", n=len(sw), m=n_styles)
    return config


def _resolve(cfg: TransferConfig) -> Schedule:
    d = NORMALIZATION_DEFAULTS[cfg.normalization]
    c = dataclasses.replace(cfg, style_layers=tuple(cfg.style_layers))
    for name in ("alpha", "beta", "tv_weight"):
        setattr(c, name, float(d[name] if getattr(cfg, name) is None else getattr(cfg, name)))
    if cfg.layer_weights is not None:
        c.layer_weights = tuple(float(w) for w in cfg.layer_weights)
    elif c.style_layers == DEFAULT_STYLE_LAYERS:
        c.layer_weights = tuple(float(w) for w in d["layer_weights"])
    else:
        c.layer_weights = tuple(1.0 / len(c.style_layers) for _ in c.style_layers)
    if cfg.lr is None:
        c.lr = 1.0 if cfg.optimizer == "lbfgs" else 0.02
    if cfg.style_weights is not None:
        c.style_weights = tuple(float(w) for w in cfg.style_weights)
    if cfg.scales is not None:
        c.scales = tuple(int(v) for v in cfg.scales)
    if cfg.scale_steps is not None:
        c.scale_steps = tuple(int(n) for n in cfg.scale_steps)
        c.steps = sum(c.scale_steps)
    if cfg.size is None:
        return Schedule(c, ())
    if c.scales is None:
        c.scales = default_scales(int(cfg.size))
    elif c.scales[-1] > cfg.size:
        raise ConfigError("config.scales_beyond_size", value=c.scales, size=cfg.size)
    elif c.scales[-1] != cfg.size:
        c.scales += (int(cfg.size),)
    if c.scale_steps is None:
        return Schedule(c, tuple(split_steps(c.steps, c.scales)))
    if len(c.scale_steps) != len(c.scales):
        raise ConfigError("config.scale_steps_count", n=len(c.scale_steps), m=len(c.scales), scales=c.scales)
    return Schedule(c, c.scale_steps)


def default_scales(size: int) -> tuple[int, ...]:
    """Coarse to fine, halving while the half is >= COARSEST_SIDE (``512 -> (128, 256, 512)``): the shapes
    settle where a step costs a quarter."""
    scales = [int(size)]
    while scales[0] // 2 >= COARSEST_SIDE:
        scales.insert(0, scales[0] // 2)
    return tuple(scales)


def default_pyramid(side: int) -> int:
    """Levels of the automatic pyramid at long side ``side`` (``256 -> 3``, ``512 -> 4``, at most 6)."""
    levels = 1
    while levels < 6 and (int(side) >> levels) >= PYRAMID_MIN_SIDE:
        levels += 1
    return levels


def split_steps(steps: int, scales: Sequence[int]) -> list[int]:
    """Share ``steps`` among ``scales`` in proportion to ``1 / long side`` (coarse steps are cheap)."""
    steps = int(steps)
    if len(scales) == 1:
        return [steps]
    w = [1.0 / s for s in scales]
    raw = [steps * x / sum(w) for x in w]
    out = [int(math.floor(r)) for r in raw]
    # the remainder goes to the largest fractional parts (coarse first on ties)
    for i in sorted(range(len(out)), key=lambda i: -(raw[i] - out[i]))[: steps - sum(out)]:
        out[i] += 1
    return out


# preserve_color optimises the luminance Y of scikit-image's YIQ; I and Q go back unchanged.


def _skimage_colour(fn, t: torch.Tensor) -> torch.Tensor:
    arr = fn(t.detach().double().cpu().numpy(), channel_axis=1)
    return torch.from_numpy(arr).to(t.device, t.dtype)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> YIQ."""
    from skimage.color import rgb2yiq

    return _skimage_colour(rgb2yiq, rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_yiq` (values may leave [0, 1])."""
    from skimage.color import yiq2rgb

    return _skimage_colour(yiq2rgb, yiq)


def white_noise(shape, seed: int = 0, amplitude: float = 1.0, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """White noise, uniform in ``0.5 +- amplitude / 2``, on the CPU: teachkit's one noise generator."""
    if not 0 < float(amplitude) <= 1:
        raise ValueError(f"noise amplitude must be in (0, 1], not {amplitude!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    u = torch.rand(tuple(int(d) for d in shape), generator=gen)
    return u if amplitude == 1 else 0.5 + float(amplitude) * (u - 0.5)


def start_tensor(base: torch.Tensor, config: TransferConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """G0 from ``base`` (the content or its luminance) as ``config.init`` says: the one place G0 is made."""
    if config.init == "content":
        return base.clone()
    noise = white_noise((1, *base.shape[1:]), config.seed, generator=generator).to(base.device)
    return noise if config.init == "noise" else (1 - config.init_noise) * base + config.init_noise * noise


class ConfigError(InputError):
    """A :class:`TransferConfig` field (or the images given with it) that cannot be used: an id + parameters."""


class TransferError(TeachkitError, ValueError):
    """The optimisation cannot go on (the cost J or its gradient left float32's range): an id + parameters."""


class SlowDtypeWarning(UserWarning):
    """bfloat16 was asked for on a CPU that only emulates it (many times slower than float32)."""


def cpu_bf16_native() -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 natively for torch (AVX512-BF16 or AMX, not capped below AVX-512), and why."""
    cap = torch.backends.cpu.get_cpu_capability()
    if not cap.upper().startswith("AVX512"):
        return False, f"torch runs at CPU capability {cap} (no AVX-512)"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
    if isa and isa != "ALL" and "AVX512_CORE_BF16" not in isa and "AMX" not in isa and "AVX10" not in isa:
        return False, f"oneDNN is capped at {isa}"
    has = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if not has:
        return False, f"CPU capability {cap} without AVX512-BF16 or AMX"
    return True, f"CPU capability {cap} with native bfloat16 (AVX512-BF16/AMX)"


def choose_dtype(dtype: str, device: torch.device, force: bool = False) -> tuple[torch.dtype | None, Message | None]:
    """The autocast dtype (None: float32) and a warning: 'auto' is bfloat16 only where the CPU runs it
    natively; 'bfloat16' where it emulates it falls back to float32 with a warning, unless ``force``."""
    device = torch.device(device)
    if dtype == "float32":
        return None, None
    native = cpu_bf16_native() if device.type == "cpu" else (False, device.type)
    if dtype == "auto":
        return (torch.bfloat16 if native[0] else None), None
    if device.type != "cpu" or native[0] or force:
        return torch.bfloat16, None
    return None, Message("transfer.bf16_emulated", detail=native[1])


@torch.no_grad()
def blended_style_grams(net, styles: Sequence[torch.Tensor], layers: Sequence[str], generated_hw: tuple[int, int],
                        weights: Sequence[float] | None = None, *, autocast_dtype: torch.dtype | None = None,
                        gram=None) -> dict[str, torch.Tensor]:
    r"""The style targets ``sum_i w_i * (M_G / M_S_i) * G[l](S_i)`` of every layer (weights summing to 1,
    ``generated_hw`` fixing ``M_G``; ``gram`` a student's own Gram matrix)."""
    weights = [1.0] * len(styles) if weights is None else weights
    wsum = float(sum(weights))
    out: dict[str, torch.Tensor] = {}
    for s, w in zip(styles, weights):
        if w == 0:
            continue
        with torch.autocast(device_type=net.device.type, dtype=autocast_dtype or torch.bfloat16,
                            enabled=autocast_dtype is not None):
            feats = net.extract(s.to(net.device), layers)
        for l in layers:
            a = feats[l]
            m_g = math.prod(feature_size(net.body, l, tuple(generated_hw)))
            g = costs.style_target(gram(a) if gram else costs.gram_matrix(a)[0], a.shape[-2] * a.shape[-1], m_g)
            g = g * (float(w) / wsum)
            out[l] = g if l not in out else out[l] + g
    return out


def backbone_for(backbone=None, config: TransferConfig | None = None):
    """``backbone`` when loaded, else the network named by it or ``config.backbone``, loaded."""
    if backbone is not None and not isinstance(backbone, str):
        return backbone
    from .features import load_backbone

    cfg = config or TransferConfig()
    return load_backbone(backbone or cfg.backbone, pooling=cfg.pooling, device=cfg.device)


@dataclass(frozen=True)
class Setup:
    """What stays the same from scale to scale; the forward pass reaches only layers whose terms weigh."""

    schedule: Schedule
    net: Any
    content_layer: str
    style_layers: tuple[str, ...]
    layers: tuple[str, ...]  #: the forward pass stops at the deepest of these
    content_on: bool
    style_on: tuple[str, ...]
    autocast_dtype: torch.dtype | None
    dtype_warning: Message | None
    cost_functions: costs.CostFunctions

    @property
    def config(self) -> TransferConfig:
        return self.schedule.config

    @classmethod
    def make(cls, sched: Schedule, n_styles: int, backbone=None, cost_functions: costs.CostFunctions | None = None,
             *, stacklevel: int = 2) -> "Setup":
        cfg = sched.config
        if n_styles == 0 and cfg.beta != 0:
            raise ConfigError("transfer.no_style_image")
        cf = cost_functions or costs.CostFunctions()
        if cf.custom and cfg.normalization not in ("lecture", "auto"):
            raise ConfigError("engine.cost_functions_normalization", value=repr(cfg.normalization))
        if (cf.layer_style_cost or cf.style_cost) is not None and n_styles > 1:
            raise ConfigError("engine.cost_functions_one_style", n=n_styles)
        net = backbone_for(backbone, cfg)
        style_layers = tuple(net.check_layers(cfg.style_layers))
        content_layer = net.check_layers([cfg.content_layer])[0]
        autocast_dtype, warning = choose_dtype(cfg.dtype, net.device, cfg.force_dtype)
        if warning:
            warnings.warn(str(warning), SlowDtypeWarning, stacklevel=stacklevel)
        relative = dict(zip(style_layers, cfg.layer_weights))
        needed = ([content_layer] if cfg.alpha != 0 else []) + \
            ([l for l in style_layers if relative[l] != 0] if cfg.beta != 0 else [])
        depth = max((net.layer_index(l) for l in needed), default=-1)
        layers = tuple(l for l in dict.fromkeys([content_layer, *style_layers]) if net.layer_index(l) <= depth)
        return cls(sched, net, content_layer, style_layers, layers, content_layer in layers,
                   tuple(l for l in style_layers if l in layers), autocast_dtype, warning, cf)

    def autocast(self):
        return torch.autocast(device_type=self.net.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def network_input(self, img: torch.Tensor) -> torch.Tensor:
        if self.net.device.type == "cpu":  # oneDNN then runs NHWC convolutions, a little faster
            return img.contiguous(memory_format=torch.channels_last)
        return img

    def targets(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> "ScaleTargets":
        """One scale's fixed targets and the weights J multiplies there, from the content at the working size."""
        cfg, cf = self.config, self.cost_functions
        for t in [content, *styles]:
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[:2] != (1, 3):
                raise ValueError(f"expected image tensors of shape (1, 3, H, W), got {getattr(t, 'shape', t)}")
        dev = self.net.device
        content = content.detach().to(dev, torch.float32)
        styles = [s.detach().to(dev, torch.float32) for s in styles]
        hw = (int(content.shape[-2]), int(content.shape[-1]))
        content_iq = None
        if cfg.preserve_color:  # the style's luminance, matched to the content's mean and spread
            yiq = rgb_to_yiq(content)
            content_iq, y_c = yiq[:, 1:], yiq[:, :1]
            mu, sd = y_c.mean(), y_c.std()
            grey = []
            for s in styles:
                y_s = rgb_to_yiq(s)[:, :1]
                y_s = (y_s - y_s.mean()) * (sd / y_s.std().clamp_min(1e-6)) + mu
                grey.append(y_s.clamp(0, 1).expand(-1, 3, -1, -1))
            styles, content = grey, y_c.expand(-1, 3, -1, -1)
        # one pass of the content: its target and (auto) its Gram matrices, which style is measured against
        reference_on = cfg.normalization == "auto" and cfg.alpha != 0 and cfg.beta != 0 and bool(self.style_on)
        wanted = ([self.content_layer] if self.content_on else []) + (list(self.style_on) if reference_on else [])
        with torch.no_grad(), self.autocast():
            fc = self.net.extract(self.network_input(content), list(dict.fromkeys(wanted))) if wanted else {}
        content_target = fc[self.content_layer].detach() if self.content_on else None
        reference = {l: cf.gram(fc[l]) for l in self.style_on} if reference_on else None
        style_acts: dict[str, torch.Tensor] = {}
        if (cf.layer_style_cost or cf.style_cost) is not None and styles and self.style_on:
            s = styles[0] if styles[0].shape[-2:] == hw else \
                F.interpolate(styles[0], size=hw, mode="bilinear", align_corners=False)
            with torch.no_grad(), self.autocast():
                style_acts = {l: a.detach().float() for l, a in
                              self.net.extract(self.network_input(s), list(self.style_on)).items()}
        style_targets = blended_style_grams(
            self.net, [self.network_input(s) for s in styles], self.style_on, hw, cfg.style_weights,
            autocast_dtype=self.autocast_dtype, gram=cf.gram,
        ) if styles else {}
        weights = self._weights(content_target, style_targets, hw, reference)
        return ScaleTargets(self, hw[0], hw[1], content, content_iq, content_target, style_targets, style_acts,
                            weights)

    def _weights(self, content_target, style_targets, hw, reference) -> dict:
        """The weights J multiplies at this scale: the config's, or (auto) derived from the targets."""
        cfg = self.config
        relative = dict(zip(self.style_layers, cfg.layer_weights))
        if cfg.normalization != "auto":
            return {"alpha": cfg.alpha, "beta": cfg.beta, "layer_weights": relative, "tv_weight": cfg.tv_weight}
        shapes = {l: (self.net.channels[l], *feature_size(self.net.body, l, hw)) for l in self.style_on}
        auto = costs.auto_weights(
            content_target if cfg.alpha != 0 else None, style_targets, shapes, (3, *hw), cfg.alpha,
            {l: (relative[l] if cfg.beta != 0 else 0.0) for l in self.style_on}, cfg.tv_weight,
            style_reference=reference,
        )
        lam = {l: auto["layer_weights"].get(l, 0.0) for l in self.style_layers}
        return {"alpha": auto["alpha"], "beta": cfg.beta, "layer_weights": lam, "tv_weight": auto["tv_weight"]}


@dataclass(frozen=True)
class ScaleTargets:
    """One scale's fixed inputs (the content grey RGB, and its chrominance, when preserving colour)."""

    setup: Setup
    height: int
    width: int
    content: torch.Tensor
    content_iq: torch.Tensor | None
    content_target: torch.Tensor | None
    style_targets: dict
    style_acts: dict
    weights: dict


class StyleCost:
    """The objective of style transfer at one scale: ``cost(image) -> (J, terms)``, terms detached in the
    order of ``names`` (``nan``: not computed); terms of weight 0 stay out of the gradient."""

    def __init__(self, targets: ScaleTargets):
        self.targets, self.setup, self.weights = targets, targets.setup, targets.weights
        self.names = ["content", "style", *(f"style/{l}" for l in self.setup.style_layers), "tv", "total"]

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t, w, cf = self.setup, self.targets, self.weights, self.setup.cost_functions
        lam, norm = w["layer_weights"], s.config.normalization
        with s.autocast():
            feats = s.net.extract(s.network_input(img), s.layers) if s.layers else {}
        zero = torch.zeros((), device=img.device)
        nan = torch.full((), float("nan"), device=img.device)
        jc = None
        if s.content_on:
            a = feats[s.content_layer] if w["alpha"] != 0 else feats[s.content_layer].detach()
            jc = (costs.content_cost(t.content_target, a, norm) if cf.content_cost is None
                  else cf.content(t.content_target.float(), a.float()))
        style = {}
        for l in s.style_on:
            a = feats[l] if w["beta"] != 0 and lam[l] != 0 else feats[l].detach()
            style[l] = (cf.layer_style(t.style_acts[l], a.float()) if cf.layer_style_cost is not None else
                        costs.style_layer_cost(t.style_targets[l], a, norm,
                                               gram_G=None if cf.gram_matrix is None else cf.gram(a)))
        js = sum((lam[l] * v for l, v in style.items()), zero)
        if cf.style_cost is not None and style:  # a student's own sum over the layers
            js = cf.style([t.style_acts[l] for l in style], [feats[l].float() for l in style], [lam[l] for l in style])
        tv = costs.total_variation(img if w["tv_weight"] != 0 else img.detach())
        jc0 = jc if jc is not None else zero
        if cf.total_cost is None:
            total = costs.total_cost(jc0, js, w["alpha"], w["beta"], tv, w["tv_weight"])
        else:
            total = cf.total(jc0, js, w["alpha"], w["beta"]) + w["tv_weight"] * tv
        all_style = len(style) == len(s.style_layers)
        terms = [jc0 if jc is not None else nan, js if (all_style or w["beta"] != 0) else nan,
                 *(style.get(l, nan) for l in s.style_layers), tv, total]
        return total, torch.stack([torch.as_tensor(v, device=img.device).detach().float() for v in terms])


class Pixels:
    """The image as variables ``G = z_0 + up(z_1) + ...``: a pyramid of halving resolutions, coarse levels
    zero at first (1 level: the plain pixels).  A one-channel ``x0`` is a luminance, ``iq`` its chrominance."""

    def __init__(self, x0: torch.Tensor, levels: int = 1, iq: torch.Tensor | None = None):
        self.height, self.width, self.iq = int(x0.shape[-2]), int(x0.shape[-1]), iq
        self.params = [x0.clamp(0, 1).contiguous().requires_grad_(True)]
        for k in range(1, levels):
            shape = (1, x0.shape[1], max(1, self.height >> k), max(1, self.width >> k))
            self.params.append(torch.zeros(shape, device=x0.device, requires_grad=True))

    def compose(self) -> torch.Tensor:
        """G before clamping."""
        x = self.params[0]
        for z in self.params[1:]:
            x = x + F.interpolate(z, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x

    @staticmethod
    def render(x: torch.Tensor) -> torch.Tensor:
        """What the objective sees: the pixels clamped to [0, 1], as RGB."""
        x = x.clamp(0.0, 1.0)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    @staticmethod
    def penalty(x: torch.Tensor) -> torch.Tensor:
        """``1/2 ||x - clamp(x)||^2``: pulls back the pixels the clamp hides from J."""
        return 0.5 * (x - x.detach().clamp(0.0, 1.0)).pow(2).sum()

    @torch.no_grad()
    def project(self) -> None:
        """After an Adam step on the plain pixels: back into [0, 1]."""
        if len(self.params) == 1:
            self.params[0].clamp_(0.0, 1.0)

    @torch.no_grad()
    def rgb(self) -> torch.Tensor:
        """The image, ``(1, 3, H, W)`` float32 RGB in [0, 1] on the CPU."""
        x = self.compose().detach().clamp(0, 1)
        if self.iq is not None:
            x = yiq_to_rgb(torch.cat([x, self.iq], dim=1))
        return x.clamp(0, 1).float().cpu()


class Descent:
    """One optimisation, a step at a time: ``objective(image) -> (J, terms)`` (with ``names``, ``weights``)
    descended by L-BFGS or Adam over a parametrisation shaped like :class:`Pixels`."""

    def __init__(self, objective, param, *, optimizer: str = "lbfgs", lr: float = 1.0, history_size: int = 50,
                 time_origin: float | None = None):
        self.objective, self.param, self.params = objective, param, param.params
        self.height, self.width, self.device = param.height, param.width, self.params[0].device
        self._optimizer = (optimizer, float(lr), int(history_size))
        self.time_origin = time.perf_counter() if time_origin is None else time_origin
        self.history: list[dict] = []
        self.steps_done = 0
        self._scale: float | None = None  # kappa (GRAD_RMS), fixed at the first evaluation
        self._new_optimizer()

    @property
    def weights(self) -> dict | None:
        return getattr(self.objective, "weights", None)

    @property
    def levels(self) -> int:
        return len(self.params)

    def _new_optimizer(self) -> None:
        name, lr, history = self._optimizer
        if name == "lbfgs":
            self.optimizer = torch.optim.LBFGS(self.params, lr=lr, max_iter=1, history_size=history,
                                               tolerance_grad=0.0, tolerance_change=0.0, line_search_fn=None)
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=lr)

    def step(self, n: int = 1) -> list[dict]:
        """Take ``n`` steps; their records (also added to ``history``) are copied from the device once."""
        pending: list[tuple[int, float, torch.Tensor]] = []
        still: list[torch.Tensor] = []  # off the CPU: "no step was taken" flags, read with the terms
        for _ in range(int(n)):
            box: dict[str, torch.Tensor] = {}

            def closure():
                self.optimizer.zero_grad(set_to_none=True)
                x = self.param.compose()
                total, box["terms"] = self.objective(self.param.render(x))
                if self._scale is None:  # the first evaluation fixes kappa
                    total.backward()
                    rms = float(torch.cat([p.grad.flatten() for p in self.params]).pow(2).mean().sqrt())
                    if not math.isfinite(rms):
                        raise TransferError("transfer.gradient_overflow", value=f"{float(total):.3g}")
                    self._scale = GRAD_RMS / rms if rms > 0 else 1.0
                    for p in self.params:
                        p.grad.mul_(self._scale)
                    return total.detach() * self._scale
                f = total * self._scale + self.param.penalty(x)
                f.backward()
                return f.detach()

            before = [p.detach().clone() for p in self.params]
            self.optimizer.step(closure)
            if self._optimizer[0] == "adam":
                self.param.project()
            with torch.no_grad():  # L-BFGS found no descent direction (clamping can do this): start anew
                if self.device.type == "cpu":
                    if all(torch.equal(b, p) for b, p in zip(before, self.params)):
                        self._new_optimizer()
                else:
                    still.append(torch.stack([(b == p).all() for b, p in zip(before, self.params)]).all())
            self.steps_done += 1
            pending.append((self.steps_done, time.perf_counter() - self.time_origin, box["terms"]))
        if still and bool(torch.stack(still).any()):
            self._new_optimizer()
        return self._records(pending)

    def _records(self, pending: list[tuple[int, float, torch.Tensor]]) -> list[dict]:
        if not pending:
            return []
        values = torch.stack([t for _, _, t in pending]).cpu().tolist()
        size, records = max(self.height, self.width), []
        for (step, elapsed, _), row in zip(pending, values):
            rec = {"step": step, "size": size, "elapsed": elapsed, **dict(zip(self.objective.names, row))}
            if not math.isfinite(rec["total"]):
                raise TransferError("transfer.cost_not_finite", value=rec["total"], step=step)
            records.append(rec)
        self.history.extend(records)
        return records

    @torch.no_grad()
    def costs(self) -> dict[str, float]:
        """The terms of the current image (one forward pass, no gradient)."""
        values = self.objective(self.param.render(self.param.compose()))[1].cpu().tolist()
        return dict(zip(self.objective.names, values))

    def tensor(self) -> torch.Tensor:
        """The current image, ``(1, 3, H, W)`` float32 RGB in [0, 1], on the CPU."""
        return self.param.rgb()

    def image(self):
        """The current image as a PIL RGB image."""
        from .images import to_pil

        return to_pil(self.tensor())

    @torch.no_grad()
    def optimised(self) -> torch.Tensor:
        """The optimised image (luminance when preserving colour): what a finer scale starts from."""
        return self.param.compose().detach().clamp(0, 1)


def _style_list(styles) -> list:
    return [] if styles is None else [styles] if isinstance(styles, torch.Tensor) else list(styles)


class StyleTransfer(Descent):
    """Style transfer at one resolution, a step at a time: a :class:`Descent` of :class:`StyleCost` over
    :class:`Pixels`.  ``content`` is at the working size, ``styles`` one tensor, a list or None (beta = 0);
    ``init`` a starting image, else G0; ``targets`` from an :class:`Engine` replace the other inputs."""

    def __init__(self, content: torch.Tensor, styles, config: "TransferConfig | Schedule | None" = None, *,
                 init: torch.Tensor | None = None, backbone=None, generator: torch.Generator | None = None,
                 time_origin: float | None = None, cost_functions: costs.CostFunctions | None = None,
                 targets: ScaleTargets | None = None):
        if targets is None:
            styles = _style_list(styles)
            setup = Setup.make(schedule(config, len(styles)), len(styles), backbone, cost_functions, stacklevel=3)
            targets = setup.targets(content, styles)
        self.setup, self.targets = targets.setup, targets
        self.config, self.net, self.autocast_dtype = self.setup.config, self.setup.net, self.setup.autocast_dtype
        x0 = self._start(init, generator)
        param = Pixels(x0, self.setup.schedule.pyramid(max(targets.height, targets.width)), targets.content_iq)
        super().__init__(StyleCost(targets), param, optimizer=self.config.optimizer, lr=self.config.lr,
                         history_size=self.config.history_size, time_origin=time_origin)

    def _start(self, init: torch.Tensor | None, generator) -> torch.Tensor:
        """G0 as optimised (RGB or luminance): ``init`` resized to this scale, else :func:`start_tensor`."""
        t = self.targets
        channels = 1 if t.content_iq is not None else 3
        if init is None:
            return start_tensor(t.content[:, :channels], self.config, generator)
        x0 = init.detach().to(self.net.device, torch.float32)
        if x0.dim() != 4 or x0.shape[0] != 1:
            raise ValueError(f"init must have shape (1, C, H, W), got {tuple(x0.shape)}")
        if x0.shape[1] == 3 and channels == 1:
            x0 = rgb_to_yiq(x0)[:, :1]
        if x0.shape[-2:] != (t.height, t.width):
            x0 = F.interpolate(x0, size=(t.height, t.width), mode="bilinear", align_corners=False)
        return x0


def run_steps(st, steps: int, *, callback: ProgressCallback | None = None, stop: threading.Event | None = None,
              task: str = "transfer", message: str | Message = "", preview_every: int = 10,
              preview_last: bool = True, done: int = 0, total: int | None = None, time_limit: float | None = None,
              sync_every: int | None = None, deadline: float | None = None,
              scale: int = 0, fit: float | None = None) -> tuple[list[dict], str | None]:
    """The loop every optimisation in teachkit runs: ``steps`` steps of ``st`` (a :class:`Descent`), each
    reported as a :class:`Progress` (the image every ``preview_every`` steps, and at the last if
    ``preview_last``).  Returns ``(records, reason)``: None, 'stopped' (the callback returned True or
    ``stop`` is set) or 'time_limit' (``time_limit`` seconds or the perf_counter ``deadline`` passed).
    The terms reach the host every ``sync_every`` steps (1 on the CPU, 10 elsewhere).  ``fit``: the share
    of the time to the deadline these steps may use; after each step, only as many steps as end within it
    (less FIT_MARGIN and one step) at the pace after the first."""
    steps = int(steps)
    total = done + steps if total is None else total
    if sync_every is None:
        sync_every = 1 if st.device.type == "cpu" else 10
    if time_limit is not None:
        end = time.perf_counter() + float(time_limit)
        deadline = end if deadline is None else min(deadline, end)
    records: list[dict] = []
    if stop is not None and stop.is_set():
        return records, "stopped"
    size, i, t0, first, planned = max(st.height, st.width), 0, time.perf_counter(), None, steps
    end = None if fit is None or deadline is None else t0 + (deadline - t0) * fit * (1 - FIT_MARGIN)
    last = t0
    while i < steps:
        n = min(int(sync_every), steps - i)
        if preview_every:
            n = min(n, preview_every - (done + i) % preview_every)
        for rec in st.step(n):
            i += 1
            now = time.perf_counter()
            first = first or now
            # a step's time ahead: the mean after the first (which sets up), or the last one if longer (a
            # machine getting busier)
            ahead, last = (max((now - first) / (i - 1), (now - last) / n) if i > 1 else 0.0), now
            if end is not None and i > 1:  # the steps that fit
                fits = min(planned, max(i, i - 1 + int((end - now) / max(1e-9, ahead))))
                total, steps = total - steps + fits, fits
            records.append(dict(rec, step=done + i))
            show = bool(preview_every) and ((done + i) % preview_every == 0 or (i == steps and preview_last))
            values = {k: v for k, v in rec.items() if k not in ("step", "size", "elapsed")}
            progress = Progress(task, done + i, total, values, st.image() if show else None, message, scale=scale,
                                size=size, weights=st.weights)
            if report(callback, progress, stop):
                return records, "stopped"
            if deadline is not None and i < steps and time.perf_counter() + 2 * ahead > deadline:
                return records, "time_limit"  # the next step, the last costs and the page would end past it
    return records, None


@dataclass(frozen=True)
class ScalePlan:
    """One scale of a :class:`TransferPlan` (``index`` from 1) and the ``weights`` J multiplies there."""

    index: int
    size: int
    height: int
    width: int
    steps: int
    pyramid: int
    weights: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TransferPlan:
    """What the engine will really do: the :class:`Schedule`, each scale that runs with its exact size and
    weights, the device, dtype and its warning, the weights' id and the checked layers.  The CLI, the log,
    ``prepare``, the lessons and the charts read these numbers."""

    schedule: Schedule
    scales: tuple[ScalePlan, ...]
    device: str
    dtype: str
    dtype_warning: Any
    backbone: str
    content_layer: str
    style_layers: tuple[str, ...]

    @property
    def config(self) -> TransferConfig:
        return self.schedule.config

    @property
    def start(self) -> str:
        return self.schedule.start

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def weights(self) -> dict:
        """The weights of the last scale (the finished image's)."""
        return self.scales[-1].weights

    @property
    def first(self) -> ScalePlan:
        """The scale the engine starts at (G0 is made at its size)."""
        return self.scales[0]

    def scale(self, index: int) -> ScalePlan:
        """The scale with this 1-based index."""
        return next(s for s in self.scales if s.index == int(index))

    def weighted(self, record: dict) -> dict:
        """One step's record as what each part adds to J, with the weights of its own scale."""
        return weighted_record(record, self.scale(record.get("scale", self.scales[-1].index)).weights)

    def weights_message(self) -> Message:
        """'weights used: alpha ..., beta ..., lambda[l]: ..., w_tv ...' (the last scale's) as a message."""
        w = self.weights
        lams = ", ".join(f"{l} {v:.3g}" for l, v in w["layer_weights"].items()) or "-"
        return Message("engine.weights_used", alpha=w["alpha"], beta=w["beta"], lams=lams, tv=w["tv_weight"])

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "scales": [s.to_dict() for s in self.scales], "device": self.device,
                "dtype": self.dtype, "backbone": self.backbone, "content_layer": self.content_layer,
                "style_layers": list(self.style_layers), "start": self.start, "steps": self.steps}


@dataclass
class TransferResult:
    """What :func:`transfer` returns: the image (after an early stop, the latest at its scale's size), one
    record per step, the plan, why it stopped (None, 'time_limit', 'stopped') and the image's ``costs``."""

    image: Any
    tensor: torch.Tensor
    history: list[dict]
    plan: TransferPlan
    stopped: bool = False
    seconds: float = 0.0
    costs: dict[str, float] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    time_limit: float | None = None

    config = property(lambda self: self.plan.config, doc="The resolved config (plan.config).")
    backbone = property(lambda self: self.plan.backbone, doc="The weights' id (plan.backbone).")
    weights = property(lambda self: self.plan.weights, doc="The weights of the last scale (plan.weights).")

    @property
    def steps_done(self) -> int:
        return len(self.history)

    @property
    def steps_planned(self) -> int:
        return self.plan.steps

    @property
    def time_limited(self) -> bool:
        return self.stop_reason == "time_limit"

    def stop_message(self) -> Message | None:
        """'stopped at the time limit after N of M steps' (None unless it did)."""
        if not self.time_limited:
            return None
        return Message("engine.time_limit", seconds=self.time_limit, done=self.steps_done, total=self.steps_planned)

    def weighted_history(self) -> list[dict]:
        """Every step as what each part adds to J, each with the weights of its own scale."""
        return [self.plan.weighted(r) for r in self.history]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "backbone": self.backbone, "size": list(self.image.size),
                "stopped": self.stopped, "stop_reason": self.stop_reason, "seconds": self.seconds,
                "steps": len(self.history), "costs": _json_safe(self.costs), "weights": self.weights,
                "plan": self.plan.to_dict(), "history": [_json_safe(r) for r in self.history]}

    def save_log(self, path) -> str:
        """Write config, plan, history and final costs as JSON (``nan`` as ``null``); returns the path."""
        from .fileio import atomic_write

        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_write(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _json_weights(w: dict) -> dict:
    return {"alpha": float(w["alpha"]), "beta": float(w["beta"]), "tv_weight": float(w["tv_weight"]),
            "layer_weights": {l: float(v) for l, v in w["layer_weights"].items()}}


def _content(content, sched: Schedule):
    """The content as a PIL image at the schedule's size (or its own), and the schedule sized to it."""
    from .images import resize_long_side
    from .samples import resolve_image

    size = sched.config.size
    c = resolve_image(content, size, name="<content>")
    if size is not None and max(c.size) != size:
        c = resize_long_side(c, int(size))
    return c, sched.sized(max(c.size))


def _content_at(content_pil, side: int):
    from .images import resize_long_side

    return content_pil if side == max(content_pil.size) else resize_long_side(content_pil, side)


def load_inputs(content, styles, config: "TransferConfig | Schedule | None" = None):
    """``(content, [style, ...])`` as checked PIL images at the config's sizes, before any long work."""
    return _inputs(content, styles, config)[:2]


def _inputs(content, styles, config):
    from .samples import resolve_image

    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not styles:
        raise ConfigError("transfer.no_style_image")
    c, sched = _content(content, schedule(config, len(styles)))
    side = max(16, round(max(c.size) * float(sched.config.style_scale)))
    return c, [resolve_image(x, side, name="<style>") for x in styles], sched


def initial_image(content, config: "TransferConfig | Schedule | None" = None):
    """The engine's G0 for ``content`` as a PIL image at the first scale: what step 1 starts from."""
    from .images import to_pil, to_tensor

    content_pil, sched = _content(content, schedule(config))
    base = to_tensor(_content_at(content_pil, sched.first))
    if not sched.config.preserve_color:
        return to_pil(start_tensor(base, sched.config).clamp(0, 1))
    yiq = rgb_to_yiq(base)
    y0 = start_tensor(yiq[:, :1], sched.config).clamp(0, 1)
    return to_pil(yiq_to_rgb(torch.cat([y0, yiq[:, 1:]], dim=1)).clamp(0, 1))


class Engine:
    """One style-transfer job resolved once -- images checked, network and precision chosen, each scale's
    targets and weights computed: the :class:`TransferPlan` -- then :meth:`run` (which reuses the targets)."""

    def __init__(self, content, styles, config: "TransferConfig | Schedule | None" = None, *, backbone=None,
                 cost_functions: costs.CostFunctions | None = None):
        from .images import resize_long_side, to_tensor

        self.t0 = time.perf_counter()
        content_pil, style_pils, sched = _inputs(content, styles, config)
        self.setup = setup = Setup.make(sched, len(style_pils), backbone, cost_functions, stacklevel=3)
        self._targets: dict[int, ScaleTargets] = {}
        scales = []
        for k, (side, n) in enumerate(zip(sched.sizes, sched.scale_steps), start=1):
            if n == 0 and k < len(sched.sizes):  # skipped: no targets
                continue
            s_side = max(16, round(side * float(sched.config.style_scale)))
            s = [to_tensor(x if max(x.size) == s_side else resize_long_side(x, s_side)) for x in style_pils]
            t = self._targets[k] = setup.targets(to_tensor(_content_at(content_pil, side)), s)
            scales.append(ScalePlan(k, side, t.height, t.width, n, sched.pyramid(side), _json_weights(t.weights)))
        self.plan = TransferPlan(
            schedule=sched, scales=tuple(scales), device=str(setup.net.device),
            dtype="bfloat16" if setup.autocast_dtype == torch.bfloat16 else "float32",
            dtype_warning=setup.dtype_warning, backbone=getattr(setup.net, "weights_id", ""),
            content_layer=setup.content_layer, style_layers=setup.style_layers,
        )

    def _scale(self, sp: ScalePlan, init: torch.Tensor | None, generator) -> StyleTransfer:
        targets = self._targets.pop(sp.index)  # its StyleTransfer holds them from now on
        return StyleTransfer(None, None, init=init, generator=generator, time_origin=self.t0, targets=targets)

    def run(self, *, callback: ProgressCallback | None = None, stop: threading.Event | None = None,
            time_limit: float | None = None, fit: bool = False) -> TransferResult:
        """One :class:`StyleTransfer` per scale, each started from the previous one's result (see :func:`transfer`).
        ``fit``: when the plan does not fit at the pace of its first FIT_PROBE steps, the first scale only;
        each scale its share of the time left by steps x pixels, with the steps that fit (:func:`run_steps`)."""
        from .images import to_pil

        plan, cfg = self.plan, self.plan.config
        deadline = None if time_limit is None else self.t0 + float(time_limit)
        fit = fit and deadline is not None
        generator = torch.Generator().manual_seed(int(cfg.seed))
        history: list[dict] = []
        reason: str | None = None
        st = running = None  # running: the scale whose steps are not yet in history
        scales = list(plan.scales)
        sp = plan.first

        def steps(n: int, probe: bool = False):
            left = scales[scales.index(sp):]
            work = [s.steps * s.height * s.width for s in left]
            records, why = run_steps(
                st, n, callback=callback, stop=stop, message=Message("progress.scale", k=sp.index, n=scales[-1].index,
                                                                      side=sp.size),
                preview_every=cfg.preview_every, preview_last=sp is scales[-1] and not probe, done=len(history),
                total=len(history) + sum(s.steps for s in left) - sum(r["scale"] == sp.index for r in history),
                deadline=deadline, scale=sp.index, fit=work[0] / max(1, sum(work)) if fit and not probe else None)
            history.extend(dict(r, scale=sp.index) for r in records)
            return records, why

        try:
            for sp in plan.scales:
                if sp not in scales:
                    break
                if stop is not None and stop.is_set():
                    reason = "stopped"
                    break
                if fit and st is None and deadline - time.perf_counter() < time.perf_counter() - self.t0:
                    reason = "time_limit"  # less time left than the set-up took: no step would fit
                    break
                st = running = self._scale(sp, st.optimised() if st is not None else None, generator)
                n = sp.steps
                if fit and sp is scales[0] and len(scales) > 1 and n > FIT_PROBE:
                    records, reason = steps(FIT_PROBE, probe=True)
                    n, px = n - len(records), sp.height * sp.width
                    rest = n * px + sum(s.steps * s.height * s.width for s in scales[1:])  # pixels x steps to go
                    pace = (records[-1]["elapsed"] - records[0]["elapsed"]) / max(1, len(records) - 1) / px
                    if not reason and rest * pace > (deadline - time.perf_counter()) * (1 - FIT_MARGIN):
                        del scales[1:]  # the plan does not fit at this pace: the first scale only, a smaller G
                records, reason = steps(n) if not reason else ([], reason)
                running = None
                if reason:
                    if sp is scales[-1] and sum(r["scale"] == sp.index for r in history) == sp.steps:
                        reason = None  # asked at the very last step
                    break
        except KeyboardInterrupt:
            reason = "stopped"
            if running is not None:  # keep the records of the steps the interrupted scale took
                base, kept = len(history), sum(r["scale"] == sp.index for r in history)
                history += [dict(r, step=base + j, scale=sp.index)
                            for j, r in enumerate(running.history[kept:], start=1)]
        if st is None:  # stopped before the first step
            st = self._scale(plan.first, None, generator)
        tensor = st.tensor()
        return TransferResult(image=to_pil(tensor), tensor=tensor, history=history, plan=plan,
                              stopped=reason is not None, seconds=time.perf_counter() - self.t0, costs=st.costs(),
                              stop_reason=reason, time_limit=time_limit)


def plan(content, styles, config: "TransferConfig | Schedule | None" = None, *, backbone=None,
         cost_functions: costs.CostFunctions | None = None) -> TransferPlan:
    """The :class:`TransferPlan` that :func:`transfer` would run for these images and config, without running it."""
    return Engine(content, styles, config, backbone=backbone, cost_functions=cost_functions).plan


def transfer(content, styles, config: "TransferConfig | Schedule | None" = None, *,
             callback: ProgressCallback | None = None, stop: threading.Event | None = None, backbone=None,
             time_limit: float | None = None, cost_functions: costs.CostFunctions | None = None,
             fit: bool = False) -> TransferResult:
    """Style transfer, coarse to fine.  ``content``: PIL image, path, sample name or tensor; ``styles`` one
    of these or a list.  ``callback(Progress)`` after every step; it stops with the latest image when the
    callback returns True, ``stop`` is set, Ctrl-C is pressed or ``time_limit`` seconds have passed (set-up
    included; ``fit``: with fewer steps that end in time, see :meth:`Engine.run`)."""
    engine = Engine(content, styles, config, backbone=backbone, cost_functions=cost_functions)
    return engine.run(callback=callback, stop=stop, time_limit=time_limit, fit=fit)
