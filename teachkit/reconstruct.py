r"""What each layer keeps: images rebuilt from white noise out of one layer's numbers (Gatys et al.;
Mahendran & Vedaldi), both on the one engine with the ``auto`` weights, so each cost starts near 1.

* Content reconstruction, the transfer with ``beta = 0``: match ``a[l](C)`` only.  A shallow layer gives the
  photo back almost pixel for pixel; a deep one keeps the objects, not the exact pixels.
* Texture synthesis, the transfer with ``alpha = 0``: match only the Gram matrices of some layers.  Positions
  are forgotten: the photo's colours and patterns come back scrambled, larger with each deeper layer.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from matplotlib.figure import Figure

from . import figtext
from .features import DEFAULT_STYLE_LAYERS
from .fileio import check_int
from .messages import InputError, Message
from .gram import to_input
from .progress import ProgressCallback
from .transfer import StyleTransfer, TransferConfig, backbone_for, run_steps, white_noise

__all__ = ["ReconResult", "DEFAULT_LAYERS", "DEFAULT_SIZE", "DEFAULT_STEPS", "DEFAULT_NOISE", "white_noise",
           "initial_image", "pixel_distance", "reconstruct_content", "synthesize_texture", "content_reconstructions",
           "textures", "reconstruction_grid_figure"]

DEFAULT_LAYERS = DEFAULT_STYLE_LAYERS
DEFAULT_SIZE = 96
DEFAULT_STEPS = 100
#: Amplitude of the starting noise: what the network cannot see stays in the result, so a faint start keeps
#: the pictures clean without changing what the layer keeps.
DEFAULT_NOISE = 0.2


@dataclass
class ReconResult:
    """One reconstruction; ``distance`` is the pixel RMSE to the original (content) or the fraction of the
    style cost left (texture)."""

    image: Any
    history: list[dict]
    distance: float
    tensor: torch.Tensor | None = None
    kind: str = "content"
    layers: tuple[str, ...] = ()
    steps: int = 0
    seconds: float = 0.0
    stopped: bool = False
    stop_reason: str | None = None  #: 'time_limit', 'stopped' or None (every step ran)
    final: dict[str, float] = field(default_factory=dict)
    weights: dict = field(default_factory=dict)


def pixel_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Root-mean-square difference of two images with values in ``[0, 1]`` (0 = identical)."""
    return float((x.detach().float().cpu() - y.detach().float().cpu()).pow(2).mean().sqrt())


def _config(**fields) -> TransferConfig:
    """The engine's config for a reconstruction: one scale, no TV, float32 (compared by their numbers)."""
    return TransferConfig(size=None, scales=None, tv_weight=0.0, normalization="auto", dtype="float32",
                          preview_every=0, **fields)


def initial_image(image, size: int | None = DEFAULT_SIZE, seed: int = 0, noise: float = DEFAULT_NOISE):
    """What a reconstruction of ``image`` at ``size`` with this ``seed`` and ``noise`` starts from (PIL)."""
    from .images import to_pil

    return to_pil(white_noise(to_input(image, size).shape, seed, noise))


def _run(net, target, config, steps, seed, noise, callback, stop, *, image_every, time_limit, message, extra=None):
    """One reconstruction on the engine: (StyleTransfer, records, None / 'stopped' / 'time_limit')."""
    steps = check_int("steps", steps, 1)
    image_every = check_int("image_every", image_every, 1)
    st = StyleTransfer(target, None if config.beta == 0 else target, config, backbone=net,
                       init=white_noise(target.shape, seed, noise))
    cb = callback
    if extra is not None and callback is not None:
        def cb(p):  # add the values only the caller knows (e.g. the pixel distance)
            p.values.update(extra(st))
            return callback(p)
    records, reason = run_steps(st, steps, callback=cb, stop=stop, task="reconstruct", message=message,
                                preview_every=image_every, time_limit=time_limit)
    return st, records, reason if len(records) < steps else None


def reconstruct_content(net, image, layer: str = "relu3_1", size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
                        seed: int = 0, callback: ProgressCallback | None = None, stop: threading.Event | None = None, *,
                        noise: float = DEFAULT_NOISE, image_every: int = 5,
                        time_limit: float | None = None) -> ReconResult:
    r"""Rebuild ``image`` (long side ``size``; None: as given) from white noise by ``J_content`` at ``layer``
    alone; progress values add ``distance``, the pixel RMSE to the image.  ``net=None``: the default vgg19."""
    net = backbone_for(net)
    net.check_layers([layer])
    target = to_input(image, size, net.device)
    t0 = time.perf_counter()
    config = _config(alpha=1.0, beta=0.0, content_layer=layer, style_layers=(), seed=seed)
    st, records, stopped = _run(
        net, target, config, steps, seed, noise, callback, stop, image_every=image_every, time_limit=time_limit,
        message=Message("progress.content", layer=layer),
        extra=lambda st: {"distance": pixel_distance(st.tensor(), target)},
    )
    out = st.tensor()
    dist = pixel_distance(out, target)
    final = st.costs()
    return ReconResult(
        image=st.image(), history=records, distance=dist, tensor=out, kind="content", layers=(layer,),
        steps=len(records), seconds=time.perf_counter() - t0, stopped=stopped is not None, stop_reason=stopped,
        final={"content": final["content"], "total": final["total"], "distance": dist}, weights=st.weights,
    )


def synthesize_texture(net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
                       steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
                       stop: threading.Event | None = None, *, balance: bool = True, normalization: str = "lecture",
                       noise: float = DEFAULT_NOISE, image_every: int = 5,
                       time_limit: float | None = None) -> ReconResult:
    r"""A texture from white noise matching the Gram matrices of ``image`` at ``layers``.  ``balance``: the
    ``auto`` weights with a share 1/L per layer, so that every layer has a say (raw deep ``J_style[l]`` are
    orders of magnitude larger); else plain ``lambda[l] = 1/L`` with ``normalization``'s constants."""
    net = backbone_for(net)
    layers = list(dict.fromkeys(net.check_layers(layers)))
    if not layers:
        raise InputError("layer.none_given")
    target = to_input(image, size, net.device)
    t0 = time.perf_counter()
    config = _config(alpha=0.0, beta=1.0, content_layer=layers[0], style_layers=tuple(layers),
                     layer_weights=tuple(1.0 / len(layers) for _ in layers), seed=seed)
    if not balance:
        config.normalization = normalization
    msg = (Message("progress.texture_range", first=layers[0], last=layers[-1]) if len(layers) > 1
           else Message("progress.texture", layer=layers[0]))
    st, records, stopped = _run(net, target, config, steps, seed, noise, callback, stop, image_every=image_every,
                                time_limit=time_limit, message=msg)
    final = st.costs()
    start = max(records[0]["style"] if records else final["style"], 1e-30)
    end = {"style": final["style"], "start": start, "total": final["style"] / start}
    end.update({f"style/{l}": final[f"style/{l}"] for l in layers})
    return ReconResult(
        image=st.image(), history=records, distance=final["style"] / start, tensor=st.tensor(), kind="texture",
        layers=tuple(layers), steps=len(records), seconds=time.perf_counter() - t0, stopped=stopped is not None,
        stop_reason=stopped, final=end, weights=st.weights,
    )


def _one_bar(callback, done: int, total: int, message: Message):
    """The callback seen by one reconstruction of a row: its steps counted on one bar over the row."""
    if callback is None:
        return None
    return lambda p: callback(dataclasses.replace(p, step=done + p.step, total=total, message=message))


def _row(one, message_id: str, net, image, layers, size, steps, seed, callback, stop, kwargs) -> list[ReconResult]:
    """``one`` per layer (a texture: with every layer up to it), one progress bar over the row; a cancel
    keeps the results made so far (the last one partial)."""
    net = backbone_for(net)
    layers = net.check_layers(layers)
    if not layers:
        raise InputError("layer.none_given")
    target, n, results = to_input(image, size), len(layers), []
    for i, layer in enumerate(layers):
        cb = _one_bar(callback, i * steps, n * steps, Message(message_id, layer=layer, i=i + 1, n=n))
        used = layer if one is reconstruct_content else list(layers[: i + 1])
        results.append(one(net, target, used, None, steps, seed, cb, stop, **kwargs))
        if results[-1].stopped or (stop is not None and stop.is_set()):
            break
    return results


def content_reconstructions(net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
                            steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
                            stop: threading.Event | None = None, **kwargs) -> list[ReconResult]:
    """:func:`reconstruct_content` for each layer."""
    return _row(reconstruct_content, "progress.content_n", net, image, layers, size, steps, seed, callback, stop,
                kwargs)


def textures(net, image, max_layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
             steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
             stop: threading.Event | None = None, **kwargs) -> list[ReconResult]:
    """:func:`synthesize_texture` with the layers ``max_layers[:1]``, ``max_layers[:2]``, ..."""
    return _row(synthesize_texture, "progress.texture_n", net, image, max_layers, size, steps, seed, callback, stop,
                kwargs)


def _caption(r: ReconResult, lang: str = "en") -> tuple[str, str]:
    if r.kind == "content":
        title = r.layers[0]
        label = figtext.tr("reconstruct.rmse", lang, v=r.distance)
    else:
        title = r.layers[0] if len(r.layers) == 1 else f"{r.layers[0]}…{r.layers[-1]}"
        label = figtext.tr("reconstruct.left", lang, v=100 * r.distance)
    if r.stopped:
        label += "\n" + figtext.tr("reconstruct.stopped", lang, n=r.steps)
    return title, label


def reconstruction_grid_figure(original, results: Sequence[ReconResult], title: str | None = None,
                               n_columns: int | None = None, *, lang: str = "en") -> Figure:
    """The original and one column per result, its layer(s) above and its distance below; ``n_columns``
    keeps places for results not made.  At most 11 in wide, no text under 13 pt."""
    orig = to_input(original).cpu()
    n = max(len(results), n_columns or 0)
    h, w = orig.shape[-2:]
    panel = min(2.2, 11.0 / (n + 1))
    fig = Figure(figsize=(panel * (n + 1), panel * h / w + 1.9), layout="constrained")
    axes = fig.subplots(1, n + 1, squeeze=False)[0]

    def show(ax, t, top, bottom):
        ax.imshow(t[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="lanczos")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(top, fontsize=14)
        ax.set_xlabel(bottom, fontsize=13)

    show(axes[0], orig, figtext.tr("reconstruct.original", lang), f"{w}x{h} px")
    for ax, r in zip(axes[1:], results):
        top, bottom = _caption(r, lang)
        show(ax, r.tensor, top, bottom)
    for ax in axes[1 + len(results):]:
        ax.axis("off")
    if title is None and results:
        title = figtext.tr("reconstruct.title_content" if results[0].kind == "content"
                           else "reconstruct.title_texture", lang)
    if title:
        fig.suptitle(title, fontsize=15)
    return fig

