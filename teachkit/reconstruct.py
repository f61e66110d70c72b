r"""What each layer keeps: images rebuilt from white noise out of one layer's numbers.

Two experiments of the lecture (Gatys et al.; Mahendran & Vedaldi):

**Content reconstruction** -- start from white noise and change the pixels until the activation of
one layer matches the photo's, minimising only the content cost at that layer::

    J_content(C, G) = 1/2 || a[l](C) - a[l](G) ||^2          (costs.content_cost)

A shallow layer (``relu1_1``) gives the photo back almost pixel for pixel; a deep one (``relu5_1``)
keeps the *objects* -- eyes, ears, edges in roughly the right places -- but not the exact pixels.
:func:`reconstruct_content` does one layer; :func:`content_reconstruction_grid` draws a row of them
with the measured distance to the photo (pixel RMSE) under each.

**Texture synthesis** -- start from white noise and match only the Gram matrices of a set of layers,
i.e. minimise ``J_style`` (``costs.style_cost``).  Positions are forgotten, so what comes back is a
*texture*: the photo's colours and patterns, scrambled.  Using layers up to ``relu1_1`` only gives
fine grain; each deeper layer adds larger structures (:func:`texture_grid`).

Both run on the one engine: a content reconstruction is the transfer with ``beta = 0``, a texture
the transfer with ``alpha = 0`` (:class:`teachkit.transfer.StyleTransfer`, :func:`teachkit.transfer.run_steps`),
with the ``auto`` weights, so each term starts near 1 whatever the layer.  Runs start from faint white
noise, are deterministic for a seed, report ``Progress(task='reconstruct', ...)`` and stop early,
keeping what they have, on the callback's True, ``stop`` or ``time_limit``.  Defaults: 96 px, 100 steps.
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

__all__ = [
    "ReconResult",
    "DEFAULT_LAYERS",
    "DEFAULT_SIZE",
    "DEFAULT_STEPS",
    "DEFAULT_NOISE",
    "white_noise",
    "initial_image",
    "pixel_distance",
    "reconstruct_content",
    "synthesize_texture",
    "content_reconstructions",
    "textures",
    "reconstruction_grid_figure",
    "content_reconstruction_grid",
    "texture_grid",
]

DEFAULT_LAYERS = DEFAULT_STYLE_LAYERS
DEFAULT_SIZE = 96
DEFAULT_STEPS = 100
#: Amplitude of the starting white noise: uniform in ``0.5 +- DEFAULT_NOISE / 2``.  The network
#: cannot see some high-frequency patterns, so whatever noise it cannot see stays in the result; a
#: low-amplitude start keeps the pictures clean without changing what the layer keeps.
DEFAULT_NOISE = 0.2


@dataclass
class ReconResult:
    """One reconstruction: ``image`` (PIL RGB) and ``tensor``, ``history`` (the engine's records),
    ``distance`` (content: pixel RMSE to the original, 0 = identical; texture: the fraction of the
    style cost left), whether and why it ``stopped`` early, and the ``weights`` the engine used."""

    image: Any
    history: list[dict]
    distance: float
    tensor: torch.Tensor | None = None
    kind: str = "content"
    layers: tuple[str, ...] = ()
    steps: int = 0
    seconds: float = 0.0
    stopped: bool = False
    stop_reason: str | None = None  #: why it stopped early: 'time_limit' or 'stopped' (None: it ran every step)
    final: dict[str, float] = field(default_factory=dict)
    weights: dict = field(default_factory=dict)


# ---- helpers ---------------------------------------------------------------------------------


def pixel_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Root-mean-square difference of two images with values in ``[0, 1]`` (0 = identical)."""
    return float((x.detach().float().cpu() - y.detach().float().cpu()).pow(2).mean().sqrt())


def _config(**fields) -> TransferConfig:
    """The engine's config for a reconstruction: the image as given, one scale, no TV, float32
    (the reconstructions are compared by their numbers)."""
    return TransferConfig(size=None, scales=None, tv_weight=0.0, normalization="auto", dtype="float32",
                          preview_every=0, **fields)


def initial_image(image, size: int | None = DEFAULT_SIZE, seed: int = 0, noise: float = DEFAULT_NOISE):
    """What a reconstruction of ``image`` at ``size`` starts from, as a PIL image: faint white noise of
    that size (:func:`teachkit.transfer.white_noise`), exactly as :func:`reconstruct_content` and
    :func:`synthesize_texture` with the same ``seed`` and ``noise`` start.  No network pass."""
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


# ---- content ---------------------------------------------------------------------------------


def reconstruct_content(
    net,
    image,
    layer: str = "relu3_1",
    size: int | None = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    *,
    noise: float = DEFAULT_NOISE,
    image_every: int = 5,
    time_limit: float | None = None,
) -> ReconResult:
    r"""Rebuild ``image`` from white noise using only the activation of ``layer``.

    The style transfer with ``beta = 0``: minimises ``J_content = 1/2 ||a[l](C) - a[l](G)||^2``
    (:func:`teachkit.costs.content_cost`) with the ``auto`` weight ``1 / J_content(C, 0)``, so the
    cost starts near 1 at every layer.  ``image`` is a PIL image, a tensor or a sample name / path;
    ``size`` scales its long side (``None``: as given).  ``steps`` cost evaluations (forward +
    backward passes); ``seed`` fixes the noise.  ``time_limit`` (seconds) stops early.
    ``net=None`` loads the default vgg19.

    Progress values: ``total`` (the normalised cost), ``content`` (raw ``J_content``) and ``distance``
    (pixel RMSE to the image).  ``ReconResult.distance`` is the pixel RMSE of the result.
    """
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


# ---- texture ---------------------------------------------------------------------------------


def synthesize_texture(
    net,
    image,
    layers: Sequence[str] = DEFAULT_LAYERS,
    size: int | None = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    callback: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    *,
    balance: bool = True,
    normalization: str = "lecture",
    noise: float = DEFAULT_NOISE,
    image_every: int = 5,
    time_limit: float | None = None,
) -> ReconResult:
    r"""A texture from white noise that matches the Gram matrices of ``image`` at ``layers``.

    The style transfer with ``alpha = 0``: minimises only ``J_style = sum_l lambda[l] J_style[l](S, G)``
    (:func:`teachkit.costs.style_cost`).  With ``balance=True`` (default) the weights are the ``auto``
    normalisation's with an equal share ``1 / L`` per layer: ``lambda[l] = 1 / (L J_style[l](S, 0))``,
    each layer's term measured against its own size, so that every layer has a say -- the raw
    ``J_style[l]`` of deep layers is orders of magnitude larger than that of ``relu1_1``.
    ``balance=False``: plain ``lambda[l] = 1 / L`` with ``normalization``'s constants.

    Progress values: ``total`` (the cost), ``style`` (the weighted sum) and ``style/<layer>`` (raw
    ``J_style[l]``).  ``ReconResult.distance`` is the fraction of the style cost left at the end:
    ``J_style(end) / J_style(start)``.
    """
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
        stop_reason=stopped, final=end,
        weights=st.weights,
    )


# ---- rows of reconstructions -----------------------------------------------------------------


def _one_bar(callback, done: int, total: int, message: Message):
    """The callback seen by one reconstruction of a row: its steps counted on one bar over the row."""
    if callback is None:
        return None
    return lambda p: callback(dataclasses.replace(p, step=done + p.step, total=total, message=message))


def content_reconstructions(
    net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
    seed: int = 0, callback: ProgressCallback | None = None, stop: threading.Event | None = None, **kwargs,
) -> list[ReconResult]:
    """:func:`reconstruct_content` for each layer, one progress bar over all of them.

    Stops at the first cancelled reconstruction and returns the ones made so far (the last one
    partial, with ``stopped=True``).
    """
    net = backbone_for(net)
    layers = net.check_layers(layers)
    if not layers:
        raise InputError("layer.none_given")
    target = to_input(image, size)
    results: list[ReconResult] = []
    for i, layer in enumerate(layers):
        cb = _one_bar(callback, i * steps, len(layers) * steps,
                      Message("progress.content_n", layer=layer, i=i + 1, n=len(layers)))
        r = reconstruct_content(net, target, layer, None, steps, seed, cb, stop, **kwargs)
        results.append(r)
        if r.stopped or (stop is not None and stop.is_set()):
            break
    return results


def textures(
    net, image, max_layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
    stop: threading.Event | None = None, **kwargs,
) -> list[ReconResult]:
    """:func:`synthesize_texture` with the layers ``max_layers[:1]``, ``max_layers[:2]``, ...

    Column ``i`` matches the Gram matrices of every layer up to ``max_layers[i]`` (with the
    default, up to ``relu{i}_1``).  Cancelling keeps the textures made so far.
    """
    net = backbone_for(net)
    max_layers = net.check_layers(max_layers)
    if not max_layers:
        raise InputError("layer.none_given")
    target = to_input(image, size)
    results: list[ReconResult] = []
    n = len(max_layers)
    for i in range(n):
        used = list(max_layers[: i + 1])
        cb = _one_bar(callback, i * steps, n * steps, Message("progress.texture_n", layer=used[-1], i=i + 1, n=n))
        r = synthesize_texture(net, target, used, None, steps, seed, cb, stop, **kwargs)
        results.append(r)
        if r.stopped or (stop is not None and stop.is_set()):
            break
    return results


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
    """The original and one column per result, each with its layer(s) above and its distance below.

    ``n_columns`` reserves empty places for results not made (e.g. after a cancel).  ``lang``:
    ``"en"`` or ``"zh"`` (:mod:`teachkit.figtext`).  Sized for a full-width page: at most 11 in
    wide, no text under 13 pt.
    """
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


def content_reconstruction_grid(
    net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
    seed: int = 0, callback: ProgressCallback | None = None, stop: threading.Event | None = None, *,
    lang: str = "en", **kwargs,
) -> Figure:
    """The photo and its reconstruction from each layer, side by side, with the pixel RMSE under each.

    :func:`content_reconstructions` then :func:`reconstruction_grid_figure`; call those two to keep
    the :class:`ReconResult` list as well.
    """
    net = backbone_for(net)
    target = to_input(image, size)
    results = content_reconstructions(net, target, layers, None, steps, seed, callback, stop, **kwargs)
    return reconstruction_grid_figure(target, results, n_columns=len(list(layers)), lang=lang)


def texture_grid(
    net, image, max_layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
    stop: threading.Event | None = None, *, lang: str = "en", **kwargs,
) -> Figure:
    """The image and textures whose column ``i`` matches the Gram matrices up to ``max_layers[i]``:
    the growing scale of texture (:func:`textures` then :func:`reconstruction_grid_figure`)."""
    net = backbone_for(net)
    target = to_input(image, size)
    results = textures(net, target, max_layers, None, steps, seed, callback, stop, **kwargs)
    return reconstruction_grid_figure(target, results, n_columns=len(list(max_layers)), lang=lang)
