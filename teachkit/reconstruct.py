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

The optimiser is L-BFGS on the pixels with a line search; a *step* is one evaluation of the cost
(one forward and backward pass through the network), and the pixels are clamped to ``[0, 1]``.  The cost is divided by a constant so that it starts near 1 whatever the layer
(the content cost by ``J_content(C, 0) = 1/2 ||a[l](C)||^2``, the target's magnitude; the style cost
by its value at the start) -- a constant factor changes nothing about the minimum, but lets L-BFGS
take sensible steps at every depth.  Runs are deterministic for a seed, report through the
:mod:`teachkit.progress` callback (``Progress(task='reconstruct', ...)``, with the current image every
few steps) and stop early -- keeping what they have -- when the callback returns True or ``stop``
is set.

Defaults (96 px, 100 steps) keep one reconstruction under a minute on a 2-core CPU.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from matplotlib.figure import Figure

from .costs import content_cost, gram_matrix, style_cost
from .gram import to_input
from .progress import Progress, ProgressCallback, report

__all__ = [
    "ReconResult",
    "DEFAULT_LAYERS",
    "DEFAULT_SIZE",
    "DEFAULT_STEPS",
    "DEFAULT_NOISE",
    "white_noise",
    "pixel_distance",
    "reconstruct_content",
    "synthesize_texture",
    "content_reconstructions",
    "textures",
    "reconstruction_grid_figure",
    "content_reconstruction_grid",
    "texture_grid",
]

DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_SIZE = 96
DEFAULT_STEPS = 100
#: Amplitude of the starting white noise: uniform in ``0.5 +- DEFAULT_NOISE / 2``.  The network
#: cannot see some high-frequency patterns, so whatever noise it cannot see stays in the result; a
#: low-amplitude start keeps the pictures clean without changing what the layer keeps.
DEFAULT_NOISE = 0.2


@dataclass
class ReconResult:
    """The outcome of one reconstruction.

    ``image``: the result (PIL RGB).  ``history``: one dict per step (``step``, ``total`` -- the
    scaled cost that was minimised, ``elapsed`` seconds, and the cost terms).  ``distance``: for a
    content reconstruction the pixel RMSE to the original image (values in ``[0, 1]``; 0 = identical);
    for a texture the fraction of the style cost left, ``J_style(end) / J_style(start)``.
    ``tensor``: the result as a ``(1, 3, H, W)`` tensor on the CPU.  ``stopped``: True when it was
    cancelled before its last step.
    """

    image: Any
    history: list[dict]
    distance: float
    tensor: torch.Tensor | None = None
    kind: str = "content"
    layers: tuple[str, ...] = ()
    steps: int = 0
    seconds: float = 0.0
    stopped: bool = False
    final: dict[str, float] = field(default_factory=dict)


# ---- helpers ---------------------------------------------------------------------------------


def _device(net) -> torch.device:
    dev = getattr(net, "device", None)
    return dev if isinstance(dev, torch.device) else next(net.parameters()).device


def _net(net):
    if net is None:
        from .features import load_backbone

        return load_backbone("vgg19")
    return net


def white_noise(shape, seed: int = 0, amplitude: float = DEFAULT_NOISE) -> torch.Tensor:
    """Uniform white noise in ``0.5 +- amplitude/2`` (clipped to ``[0, 1]``), the same for a seed."""
    if not 0 < amplitude <= 1:
        raise ValueError(f"noise amplitude must be in (0, 1], not {amplitude!r}")
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(tuple(shape), generator=gen)
    return (0.5 + amplitude * (u - 0.5)).clamp(0, 1)


def pixel_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Root-mean-square difference of two images with values in ``[0, 1]`` (0 = identical)."""
    return float((x.detach().float().cpu() - y.detach().float().cpu()).pow(2).mean().sqrt())


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, not {value!r}")
    return value


class _Halt(Exception):
    """Raised inside the closure to leave L-BFGS at once (budget spent, cancelled, time up)."""


def _optimise(
    x0: torch.Tensor,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    steps: int,
    *,
    message: str,
    callback: ProgressCallback | None,
    stop: threading.Event | None,
    image_every: int,
    time_limit: float | None,
    step_offset: int = 0,
    total_steps: int | None = None,
    chunk: int = 20,
) -> tuple[torch.Tensor, list[dict], bool]:
    """L-BFGS (strong-Wolfe line search) on the pixels, for ``steps`` cost evaluations.

    A *step* is one evaluation of the cost and its gradient (one forward and backward pass), the unit
    that costs time.  The pixels are clamped to [0, 1] every ``chunk`` L-BFGS iterations.  Every
    evaluation is recorded and reported; the best image evaluated so far (lowest cost, clamped) is
    what comes back, also when the run is cancelled in the middle of a line search.
    """
    from .images import to_pil

    x = x0.clone().contiguous().requires_grad_(True)

    def new_optimizer():
        return torch.optim.LBFGS([x], lr=1.0, max_iter=chunk, max_eval=None, history_size=20,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")

    opt = new_optimizer()
    history: list[dict] = []
    total = total_steps if total_steps is not None else steps
    best = {"cost": math.inf, "x": x0.clone().clamp(0, 1)}
    flags = {"stopped": False}
    t0 = time.perf_counter()

    def closure():
        if len(history) >= steps:
            raise _Halt
        opt.zero_grad(set_to_none=False)
        cost, values = objective(x)
        c = float(cost.detach())
        if not math.isfinite(c):
            raise FloatingPointError(f"the reconstruction cost became {c}")
        cost.backward()
        if c < best["cost"]:
            best["cost"] = c
            best["x"] = x.detach().clamp(0, 1).clone()
        n = len(history) + 1
        history.append({"step": n, "elapsed": time.perf_counter() - t0, **values})
        image = to_pil(best["x"].cpu()) if (n % image_every == 0 or n == steps) else None
        if report(callback, Progress("reconstruct", step_offset + n, total, dict(values), image, message), stop) or (
            time_limit is not None and time.perf_counter() - t0 > time_limit
        ):
            flags["stopped"] = n < steps
            raise _Halt
        return cost

    stale = 0
    while len(history) < steps:
        before = x.detach().clone()
        try:
            opt.step(closure)
        except _Halt:
            break
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
            if torch.equal(before, x):
                # No progress (converged, or clamping undid the step): restart L-BFGS's memory once;
                # twice in a row means there is nothing left to gain.
                stale += 1
                if stale >= 2:
                    break
                opt = new_optimizer()
            else:
                stale = 0
    return best["x"], history, flags["stopped"]


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
    _offset: int = 0,
    _total: int | None = None,
    _message: str | None = None,
) -> ReconResult:
    r"""Rebuild ``image`` from white noise using only the activation of ``layer``.

    Minimises ``J_content = 1/2 ||a[l](C) - a[l](G)||^2`` (:func:`teachkit.costs.content_cost`),
    divided by ``J_content(C, 0) = 1/2 ||a[l](C)||^2`` so it starts near 1 at every layer.
    ``image`` is a PIL image, a tensor or a sample name / path; ``size`` scales its long side
    (``None``: as given).  ``steps`` cost evaluations (forward + backward passes); ``seed`` fixes the noise.
    ``time_limit`` (seconds) stops early.  ``net=None`` loads the default vgg19.

    Progress values: ``total`` (the scaled cost), ``content`` (raw ``J_content``) and ``distance``
    (pixel RMSE to the image).  ``ReconResult.distance`` is the pixel RMSE of the result.
    """
    net = _net(net)
    net.check_layers([layer])
    steps = _check_int("steps", steps, 1)
    image_every = _check_int("image_every", image_every, 1)
    dev = _device(net)
    target = to_input(image, size, dev)
    with torch.no_grad():
        a_C = net.extract(target, [layer])[layer].detach()
        scale = float(content_cost(a_C, torch.zeros_like(a_C)))
    if scale <= 0:
        raise ValueError(f"the image gives an all-zero activation at {layer}: nothing to reconstruct")

    def objective(x):
        a_G = net.extract(x, [layer])[layer]
        j = content_cost(a_C, a_G)
        jf = float(j.detach())
        return j / scale, {"total": jf / scale, "content": jf,
                           "distance": pixel_distance(x, target)}

    t0 = time.perf_counter()
    x0 = white_noise(target.shape, seed, noise).to(dev)
    x, history, stopped = _optimise(
        x0, objective, steps, message=_message or f"content {layer}", callback=callback, stop=stop,
        image_every=image_every, time_limit=time_limit, step_offset=_offset, total_steps=_total,
    )
    with torch.no_grad():
        j = float(content_cost(a_C, net.extract(x, [layer])[layer]))
    from .images import to_pil

    out = x.cpu()
    dist = pixel_distance(out, target)
    return ReconResult(
        image=to_pil(out), history=history, distance=dist, tensor=out, kind="content", layers=(layer,),
        steps=len(history), seconds=time.perf_counter() - t0, stopped=stopped,
        final={"content": j, "total": j / scale, "distance": dist},
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
    _offset: int = 0,
    _total: int | None = None,
    _message: str | None = None,
) -> ReconResult:
    r"""A texture from white noise that matches the Gram matrices of ``image`` at ``layers``.

    Minimises only ``J_style = sum_l lambda[l] J_style[l](S, G)`` (:func:`teachkit.costs.style_cost`)
    with a uniform ``lambda``: ``1 / L`` for ``L`` layers.  With ``balance=True`` (default) each layer's
    term is first measured against its own size, ``J_style[l](S, 0)`` (the cost of an all-zero
    activation), so that every layer has a say -- the raw ``J_style[l]`` of deep layers is orders of
    magnitude larger than that of ``relu1_1``.  ``balance=False``: plain ``lambda[l] = 1 / L``.

    Progress values: ``total`` (the cost divided by its start value), ``style`` (the weighted sum) and
    ``style/<layer>`` (raw ``J_style[l]``).  ``ReconResult.distance`` is the fraction of the style
    cost left at the end: ``J_style(end) / J_style(start)``.
    """
    net = _net(net)
    layers = list(dict.fromkeys(net.check_layers(layers)))
    if not layers:
        raise ValueError("synthesize_texture needs at least one layer")
    steps = _check_int("steps", steps, 1)
    image_every = _check_int("image_every", image_every, 1)
    dev = _device(net)
    target = to_input(image, size, dev)
    x0 = white_noise(target.shape, seed, noise).to(dev)
    with torch.no_grad():
        feats = net.extract(target, layers)
        grams_S = {l: gram_matrix(feats[l]).detach() for l in layers}
        if balance:
            zeros = {l: torch.zeros_like(feats[l]) for l in layers}
            _, ref = style_cost(grams_S, zeros, {l: 1.0 for l in layers}, normalization)
            weights = {l: 1.0 / (len(layers) * max(float(ref[l]), 1e-30)) for l in layers}
        else:
            weights = {l: 1.0 / len(layers) for l in layers}
        j0, _ = style_cost(grams_S, net.extract(x0, layers), weights, normalization)
        start = max(float(j0), 1e-30)

    def objective(x):
        j, terms = style_cost(grams_S, net.extract(x, layers), weights, normalization)
        jf = float(j.detach())
        values = {"total": jf / start, "style": jf}
        values.update({f"style/{l}": float(t.detach()) for l, t in terms.items()})
        return j / start, values

    t0 = time.perf_counter()
    msg = _message or (f"texture {layers[0]}..{layers[-1]}" if len(layers) > 1 else f"texture {layers[0]}")
    x, history, stopped = _optimise(
        x0, objective, steps, message=msg, callback=callback, stop=stop, image_every=image_every,
        time_limit=time_limit, step_offset=_offset, total_steps=_total,
    )
    with torch.no_grad():
        j, terms = style_cost(grams_S, net.extract(x, layers), weights, normalization)
    from .images import to_pil

    out = x.cpu()
    final = {"style": float(j), "start": start, "total": float(j) / start}
    final.update({f"style/{l}": float(t) for l, t in terms.items()})
    return ReconResult(
        image=to_pil(out), history=history, distance=float(j) / start, tensor=out, kind="texture",
        layers=tuple(layers), steps=len(history), seconds=time.perf_counter() - t0, stopped=stopped, final=final,
    )


# ---- rows of reconstructions -----------------------------------------------------------------


def content_reconstructions(
    net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
    seed: int = 0, callback: ProgressCallback | None = None, stop: threading.Event | None = None, **kwargs,
) -> list[ReconResult]:
    """:func:`reconstruct_content` for each layer, one progress bar over all of them.

    Stops at the first cancelled reconstruction and returns the ones made so far (the last one
    partial, with ``stopped=True``).
    """
    net = _net(net)
    layers = net.check_layers(layers)
    if not layers:
        raise ValueError("give at least one layer")
    target = to_input(image, size)
    results: list[ReconResult] = []
    for i, layer in enumerate(layers):
        r = reconstruct_content(net, target, layer, None, steps, seed, callback, stop, _offset=i * steps,
                                _total=len(layers) * steps, _message=f"content {layer} ({i + 1}/{len(layers)})",
                                **kwargs)
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
    net = _net(net)
    max_layers = net.check_layers(max_layers)
    if not max_layers:
        raise ValueError("give at least one layer")
    target = to_input(image, size)
    results: list[ReconResult] = []
    n = len(max_layers)
    for i in range(n):
        used = list(max_layers[: i + 1])
        r = synthesize_texture(net, target, used, None, steps, seed, callback, stop, _offset=i * steps,
                               _total=n * steps, _message=f"texture up to {used[-1]} ({i + 1}/{n})", **kwargs)
        results.append(r)
        if r.stopped or (stop is not None and stop.is_set()):
            break
    return results


def _caption(r: ReconResult) -> tuple[str, str]:
    if r.kind == "content":
        title = r.layers[0]
        label = f"pixel RMSE {r.distance:.3f}"
    else:
        title = r.layers[0] if len(r.layers) == 1 else f"{r.layers[0]} … {r.layers[-1]}"
        label = f"J_style left {100 * r.distance:.2g}%"
    if r.stopped:
        label += f"\n(stopped at step {r.steps})"
    return title, label


def reconstruction_grid_figure(original, results: Sequence[ReconResult], title: str | None = None,
                               n_columns: int | None = None) -> Figure:
    """The original and one column per result, each with its layer(s) above and its distance below.

    ``n_columns`` reserves empty places for results not made (e.g. after a cancel).
    """
    orig = to_input(original).cpu()
    n = max(len(results), n_columns or 0)
    h, w = orig.shape[-2:]
    fig = Figure(figsize=(2.3 * (n + 1), 2.3 * h / w + 1.1), layout="constrained")
    axes = fig.subplots(1, n + 1, squeeze=False)[0]

    def show(ax, t, top, bottom):
        ax.imshow(t[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="lanczos")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(top, fontsize=9)
        ax.set_xlabel(bottom, fontsize=8)

    show(axes[0], orig, "original", f"{w}x{h} px")
    for ax, r in zip(axes[1:], results):
        top, bottom = _caption(r)
        show(ax, r.tensor, top, bottom)
    for ax in axes[1 + len(results):]:
        ax.axis("off")
    if title is None and results:
        title = ("content reconstructions from white noise: what each layer keeps" if results[0].kind == "content"
                 else "textures from white noise: Gram matrices up to deeper and deeper layers")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def content_reconstruction_grid(
    net, image, layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
    seed: int = 0, callback: ProgressCallback | None = None, stop: threading.Event | None = None, **kwargs,
) -> Figure:
    """The photo and its reconstruction from each layer, side by side, with the pixel RMSE under each.

    The figure's ``teachkit_results`` attribute holds the :class:`ReconResult` list.
    """
    net = _net(net)
    target = to_input(image, size)
    results = content_reconstructions(net, target, layers, None, steps, seed, callback, stop, **kwargs)
    fig = reconstruction_grid_figure(target, results, n_columns=len(list(layers)))
    fig.teachkit_results = results
    return fig


def texture_grid(
    net, image, max_layers: Sequence[str] = DEFAULT_LAYERS, size: int | None = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS, seed: int = 0, callback: ProgressCallback | None = None,
    stop: threading.Event | None = None, **kwargs,
) -> Figure:
    """The image and textures whose column ``i`` matches the Gram matrices up to ``max_layers[i]``:
    the growing scale of texture.  ``teachkit_results`` on the figure holds the results."""
    net = _net(net)
    target = to_input(image, size)
    results = textures(net, target, max_layers, None, steps, seed, callback, stop, **kwargs)
    fig = reconstruction_grid_figure(target, results, n_columns=len(list(max_layers)))
    fig.teachkit_results = results
    return fig
