r"""Neural style transfer: gradient descent on the pixels of an image G.

The lecture's recipe, as code::

    J(G) = alpha * J_content(C, G) + beta * J_style(S, G)  (+ w_tv * TV(G))

1. Start from an image G0: white noise (the lecture's), the content photo, or -- the default,
   fastest -- the content photo blended with white noise (see PRESETS).
2. Feed G through a pretrained VGG19, read the activations ``a[l](G)``.
3. Compute the costs (always the functions of :mod:`teachkit.costs`) against the fixed targets:
   the content activation ``a[l](C)`` and the style Gram matrices ``G[l](S)``.
4. Backpropagate ``J`` to the pixels of G and take an optimiser step; repeat.

Why one long file: it is THE optimisation loop of teachkit (transfer, reconstructions, the
lessons' demos all run it), and its parts -- the config and its defaults, one scale
(:class:`StyleTransfer`), the loop (:func:`run_steps`), the whole job (:func:`transfer`) -- share
the conventions documented below; a reader follows one step top to bottom in one place.  About a
third of it is those conventions and the reasons behind each default.

Two ways in
-----------
:func:`transfer`
    The whole job: images in, :class:`TransferResult` out, with a progress callback, a stop switch
    and the coarse-to-fine schedule (the default recipe).
:class:`StyleTransfer`
    One resolution, one step at a time (``.step()``, ``.image()``, ``.costs()``, ``.history``): the
    app's "step through gradient descent" lesson.  :func:`transfer` runs one of these per scale.

Conventions (documented once, used everywhere)
----------------------------------------------
Pixels
    The image is ``clamp(x, 0, 1)`` (RGB in ``[0, 1]``, the input convention of every backbone) and
    ``J`` is evaluated on that clamped image: ``f(x) = J(clamp(x))``.  The clamp is part of the
    function L-BFGS minimises, so its curvature memory stays consistent; clamping ``x`` itself
    after each step (projection) corrupts that memory -- measured: the cost started to *rise*
    after ~100 steps at 192 px.  A pixel pushed out of range gets no gradient from J, so the
    optimiser also minimises ``1/2 ||x - clamp(x)||^2``, which is zero for every pixel in range and
    pulls stray pixels back (without it, pixels thrown out by an early long step stayed dead: the
    content reconstruction test failed).  With Adam, which keeps no curvature memory, ``x`` is
    simply projected back into ``[0, 1]`` after each step.
Parametrisation (the pyramid)
    By default the image is not optimised pixel by pixel but as a sum of images at halving
    resolutions: ``G = z_0 + up(z_1) + up(z_2) + ...`` (``z_0`` full size, ``z_k`` 2^k times
    smaller and zero at the start, ``up`` bilinear upsampling).  J is the same function of G; only
    the variables differ.  A step on the z's moves G by the gradient *plus blurred copies of it*,
    so the large shapes, which per-pixel descent builds up very slowly, form within tens of steps
    (how much sooner: benchmarks/RESULTS_transfer.md).  ``pyramid=1`` is plain gradient descent on
    the pixels, the lecture's formulation (use it to show the lesson step by step); ``None``
    picks the levels from the size (:func:`default_pyramid`).
Steps
    One step is one optimiser iteration *and* one evaluation of ``J`` and its gradient: L-BFGS runs
    without line search (``max_iter=1``, fixed step length 1), so iterations and evaluations are
    the same count.  The record of step ``k`` holds the cost terms evaluated in that step, i.e.
    those of the image *before* its update (that evaluation is where the gradient came from, so
    it costs nothing extra); :meth:`StyleTransfer.costs` evaluates the current image.  The
    optimiser sees ``J`` multiplied by a constant fixed at the first step (see ``GRAD_RMS``);
    every recorded value is the unscaled ``J``.
Weights
    With ``normalization='auto'`` (the default) ``config.alpha``, ``layer_weights`` and
    ``tv_weight`` are *relative* weights: the numbers that multiply ``J_content``, ``J_style[l]``
    and ``TV`` are derived from the targets at each scale (:func:`teachkit.costs.auto_weights`).
    The weights actually used are ``StyleTransfer.weights`` and ``TransferResult.weights``
    (``alpha``, ``beta``, ``layer_weights`` = lambda[l], ``tv_weight``); with the other
    normalisations they are the config's own.
Recorded terms
    ``content`` = ``J_content`` (unweighted), ``style/<layer>`` = ``J_style[l]`` (unweighted),
    ``style`` = ``sum_l lambda[l] J_style[l]``, ``tv`` = ``TV(G)``, ``total`` = ``J(G)``.  A term
    whose weight is 0 and whose layer lies deeper than every layer the optimisation needs is not
    computed (no forward past the deepest needed layer) and is reported as ``nan``.
Style targets
    ``G[l](S)`` is computed once per scale, without gradients.  With several style images the
    target is the weighted mean ``sum_i w_i G[l](S_i)`` (weights normalised to sum to 1).  The
    Gram matrix is a *sum over positions*, so it grows with the number of positions
    ``M = n_H n_W``: a style image with ``M_S`` positions at layer ``l`` and a generated image with
    ``M_G`` would never match.  The target is therefore scaled by ``M_G / M_S`` (per layer,
    with the exact sizes after pooling), which makes ``J_style`` independent of the style image's
    size.
Colour preservation
    ``preserve_color=True`` is luminance-only transfer (Gatys et al. 2016, "Preserving colour in
    neural artistic style transfer"): the luminance ``Y`` of YIQ is taken from content and style,
    the style's luminance is shifted/scaled to the content's mean and standard deviation, the
    optimisation runs on a one-channel ``Y`` image (fed to the network as grey RGB), and the result
    is ``Y`` recombined with the content's chrominance ``I, Q``.
Determinism
    The noise is :func:`white_noise` seeded with ``config.seed`` (the one generator of starting
    images in teachkit; the lessons show it too); L-BFGS and Adam are deterministic, so on the
    CPU the same seed gives a bit-identical image (same machine, same dtype, same thread count).
Precision
    ``dtype='bfloat16'`` runs the network under bfloat16 autocast; the Gram matrices and all costs
    are computed in float32 (see :mod:`teachkit.costs`).  ``'auto'`` (the default) picks bfloat16
    only where it is fast: on a CPU that runs it natively (AVX512-BF16 or AMX, and torch/oneDNN
    allowed to use them; :func:`cpu_bf16_native`), float32 everywhere else (GPUs included).
    On a CPU without native bfloat16 it is emulated and many times *slower*, so an explicit
    ``dtype='bfloat16'`` there warns (one line, :class:`SlowDtypeWarning`) and falls back to
    float32 unless ``force_dtype=True``.  A bfloat16 result reaches the same cost but not the same
    pixels as float32 (benchmarks/RESULTS_transfer.md).
GPU
    The cost terms of each step stay on the device; :meth:`StyleTransfer.step` copies them to the
    host in one go for all the steps it takes, and :func:`run_steps` takes ``sync_every`` steps
    at a time on a GPU (1 on the CPU, where a copy costs nothing).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from . import costs
from .features import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS
from .progress import Progress, ProgressCallback, report
from .receptive_field import feature_size

__all__ = [
    "TransferConfig",
    "TransferResult",
    "StyleTransfer",
    "transfer",
    "NORMALIZATION_DEFAULTS",
    "PRESETS",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_CONTENT_LAYER",
    "white_noise",
    "run_steps",
    "choose_dtype",
    "cpu_bf16_native",
    "SlowDtypeWarning",
    "default_scales",
    "default_pyramid",
    "split_steps",
    "blended_style_grams",
    "rgb_to_yiq",
    "yiq_to_rgb",
]

INITS = ("noise", "content", "blend")
OPTIMIZERS = ("lbfgs", "adam")
DTYPES = ("auto", "float32", "bfloat16")

#: Good defaults per normalisation.
#:
#: ``auto`` (the default): relative weights (see teachkit.costs.auto_weights): the content term is
#: the relative change of the content, each style term the share of the way from the photo's style
#: to S's still to go, so alpha = 1 and an equal share 1/L per style layer fit any content/style
#: pair; beta = how much more that style share counts than the content change, tuned on the
#: quality benchmark's pairs (benchmarks/quality.py; figures in benchmarks/RESULTS_quality.md).
#: tv_weight is per pixel and channel: w_tv * mean squared neighbour difference (small: ~1e-2 of J).
#:
#: ``lecture`` (tuned by eye on chelsea + stained_glass, swirls, waves with the original VGG19,
#: the default layers and the default recipe): this VGG19 is not rescaled, so its layers'
#: activations differ by orders of magnitude and so do the J_style[l] (from white noise about
#: 1.5e13, 3e15, 6e15, 6e17 and 5e13 at relu1_1 ... relu5_1).  lambda[l] is about 1 / that typical
#: size, so every layer starts with a similar share of J_style; beta = 1e-2 then balances style and
#: content (alpha = 1).  These fit the bundled generated styles; with a photo or a texture as
#: the style they can leave the content merely re-tinted -- which ``auto`` fixes.
#:
#: ``gatys`` and ``none`` are *derived* from ``lecture`` so that, at the reference size 384 x 256 px,
#: all three define exactly the same J: the normalisations differ by a constant per layer
#: (costs.style_factor; none's content cost lacks the 1/2), and lambda[l] and alpha absorb it.  At
#: other sizes they drift apart -- which is the lesson: with ``gatys`` J_style[l] no longer grows
#: with M but J_content does (content wins at large sizes), with ``none`` J_style[l] grows like
#: M^2 (style wins).
#:
#: ``tv_weight`` = 1e7 (lecture, gatys, none): TV(G) of a finished 384 px result is ~1e3, so it adds
#: ~1e10, a few percent of J -- enough to remove the fine hatching that VGG's gradients leave.
_AUTO_DEFAULTS = {"alpha": 1.0, "beta": 4.5, "layer_weights": (0.2, 0.2, 0.2, 0.2, 0.2), "tv_weight": 1.0}
_LECTURE_DEFAULTS = {"alpha": 1.0, "beta": 1e-2, "layer_weights": (1.0, 5e-3, 2.5e-3, 2.5e-5, 0.3), "tv_weight": 1e7}
_REFERENCE_HW = (256, 384)


def _reference_shapes() -> list[tuple[int, int, int]]:
    """``(n_C, n_H, n_W)`` of each default style layer of VGG19 for a 384 x 256 px input (geometry
    only: the network is built on the ``meta`` device, without weights)."""
    from .features import vgg_body
    from .receptive_field import feature_size

    with torch.device("meta"):
        body = vgg_body("vgg19")
    shapes = []
    for layer in DEFAULT_STYLE_LAYERS:
        conv = body.get_submodule(layer.replace("relu", "conv"))
        shapes.append((conv.out_channels, *feature_size(body, layer, _REFERENCE_HW)))
    return shapes


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

#: Named recipes: config fields that differ from TransferConfig's defaults (TransferConfig.preset).
#: Both start from the content photo blended with a quarter of white noise (``init='blend'``,
#: ``init_noise=0.25``): the content is there from step 1, so the steps go into the style; the
#: noise gives the style's texture something to grow from (from the bare photo, flat areas stay
#: flat).  Tuned with beta on the quality benchmark: 0.25 kept more content than 0.5 at the same
#: style (benchmarks/RESULTS_quality.md).  Both run
#: coarse-to-fine (default_scales): two thirds of the steps at half the size, where a step costs
#: a quarter.  ``init='noise'`` (the lecture's white-noise start) stays available and
#: is what lesson 3's step-by-step demo uses.
#: ``default`` is TransferConfig() itself: 384 px, 75 steps (192, 384 px: 50, 25 steps).
#: ``quick`` is the classroom recipe, made to finish in seconds on a 2-core laptop CPU: 256 px,
#:   60 steps (128, 256 px: 40, 20 steps).
#: Timings and quality: benchmarks/RESULTS_transfer.md, benchmarks/RESULTS_quality.md.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {"size": 256, "steps": 60},
}

#: The optimiser minimises ``kappa * J`` with ``kappa`` fixed at the first step so that the gradient
#: has this root-mean-square value per pixel.  L-BFGS is invariant to the scale of J except for its
#: absolute thresholds and its fall-back step (a plain gradient step of length 1, taken whenever its
#: curvature estimate fails, which happens on the very first steps from noise): with J in the
#: 1e12 range that step threw every pixel to 0 or 1.  Adam is invariant to the scale anyway.  The
#: costs recorded and reported are always the unscaled J.
GRAD_RMS = 0.1

#: Feed the network channels-last (NHWC) images on the CPU (the weights stay as they are): oneDNN
#: then runs every convolution in NHWC (a few percent faster; benchmarks/RESULTS_transfer.md).
CHANNELS_LAST = True

#: The default coarse-to-fine schedule halves the size while the half is at least this long side
#: (see default_scales): below it a style's texture has too few pixels to form (at 96 px the brick
#: texture formed on one side of the picture only).
COARSEST_SIDE = 128

#: The automatic pyramid stops before its coarsest level's long side drops below this.
PYRAMID_MIN_SIDE = 64


@dataclass
class TransferConfig:
    """Everything that defines one style transfer.  ``None`` means "the default" (see each field).

    Call :meth:`resolved` to get a copy with every default filled in (the result's ``config`` is
    such a copy, so a saved log tells exactly what ran; ``pyramid=None`` stays None there and means
    :func:`default_pyramid` of each scale's size).
    """

    size: int | None = 384  #: long side of the result, px (None: the content image's own size)
    steps: int = 75  #: total optimiser steps, over all scales (see :func:`split_steps`)
    alpha: float | None = None  #: content weight; None: NORMALIZATION_DEFAULTS[normalization]
    beta: float | None = None  #: style weight; None: the normalisation's default
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    layer_weights: tuple[float, ...] | None = None  #: lambda[l]; None: the normalisation's default
    normalization: str = "auto"  #: 'auto' | 'lecture' | 'gatys' | 'none' (costs.NORMALIZATIONS)
    init: str = "blend"  #: 'blend' (content + noise, see PRESETS) | 'noise' (white noise, the lecture's) | 'content'
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
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        fields = dict(PRESETS[name])
        return cls(**{**fields, **overrides})

    # -- validation and defaults ---------------------------------------------------------------
    def validate(self, n_styles: int | None = None) -> "TransferConfig":
        """Check every field that can be checked without a backbone; raise ValueError.  Returns self."""
        costs._check_norm(self.normalization)
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) != self.size or self.size < 16):
            raise ValueError(f"size must be a whole number of pixels >= 16, not {self.size!r}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"steps must be a whole number >= 0, not {self.steps!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, not {self.init!r}")
        if not 0.0 <= float(self.init_noise) <= 1.0:
            raise ValueError(f"init_noise must be in [0, 1], not {self.init_noise!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {self.dtype!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {self.pooling!r}")
        if self.lr is not None and not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, not {self.lr!r}")
        if self.pyramid is not None and (
            isinstance(self.pyramid, bool) or int(self.pyramid) != self.pyramid or not 1 <= self.pyramid <= 8
        ):
            raise ValueError(f"pyramid must be a whole number of levels from 1 to 8, not {self.pyramid!r}")
        if int(self.history_size) < 1:
            raise ValueError(f"history_size must be >= 1, not {self.history_size!r}")
        for name in ("alpha", "beta", "tv_weight"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not self.style_layers and not isinstance(self.style_layers, str) and self.beta != 0:
            raise ValueError("style_layers is empty: give at least one layer (or beta = 0)")
        if isinstance(self.style_layers, str):
            raise ValueError("style_layers must be a sequence of layer names, not one string")
        if len(set(self.style_layers)) != len(self.style_layers):
            raise ValueError(f"style_layers has repeated names: {', '.join(self.style_layers)}")
        if self.layer_weights is not None:
            if len(self.layer_weights) != len(self.style_layers):
                raise ValueError(
                    f"{len(self.layer_weights)} layer weights for {len(self.style_layers)} style layers "
                    f"({', '.join(self.style_layers)}): give one weight per layer"
                )
            if any(not (math.isfinite(float(w)) and float(w) >= 0) for w in self.layer_weights):
                raise ValueError(f"layer weights must be finite and >= 0, not {tuple(self.layer_weights)}")
        if self.style_weights is not None:
            if n_styles is not None and len(self.style_weights) != n_styles:
                raise ValueError(
                    f"{len(self.style_weights)} style weights for {n_styles} style image(s): "
                    "give one weight per style image"
                )
            if any(not (math.isfinite(float(w)) and float(w) >= 0) for w in self.style_weights) or not sum(
                float(w) for w in self.style_weights
            ) > 0:
                raise ValueError(f"style weights must be >= 0 and not all 0, not {tuple(self.style_weights)}")
        if not float(self.style_scale) > 0:
            raise ValueError(f"style_scale must be > 0, not {self.style_scale!r}")
        if self.scales is not None:
            s = [int(v) for v in self.scales]
            if not s or any(v < 16 for v in s) or s != sorted(set(s)):
                raise ValueError(f"scales must be increasing long sides >= 16 px, not {tuple(self.scales)}")
            if self.size is not None and s[-1] > self.size:
                raise ValueError(f"scales {tuple(s)} go beyond the size {self.size}")
        if self.scale_steps is not None:
            if any(isinstance(n, bool) or int(n) != n or n < 0 for n in self.scale_steps):
                raise ValueError(f"scale_steps must be whole numbers >= 0, not {tuple(self.scale_steps)}")
        if int(self.preview_every) < 0:
            raise ValueError(f"preview_every must be >= 0, not {self.preview_every!r}")
        return self

    def resolved(self, n_styles: int | None = None) -> "TransferConfig":
        """A validated copy with alpha, beta, layer_weights, tv_weight, lr and scales filled in."""
        self.validate(n_styles)
        d = NORMALIZATION_DEFAULTS[self.normalization]
        c = dataclasses.replace(self)
        c.style_layers = tuple(self.style_layers)
        c.alpha = float(d["alpha"] if self.alpha is None else self.alpha)
        c.beta = float(d["beta"] if self.beta is None else self.beta)
        c.tv_weight = float(d["tv_weight"] if self.tv_weight is None else self.tv_weight)
        if self.layer_weights is None:
            if c.style_layers == DEFAULT_STYLE_LAYERS:
                c.layer_weights = tuple(float(w) for w in d["layer_weights"])
            else:
                c.layer_weights = tuple(1.0 / len(c.style_layers) for _ in c.style_layers)
        else:
            c.layer_weights = tuple(float(w) for w in self.layer_weights)
        if self.lr is None:
            c.lr = 1.0 if self.optimizer == "lbfgs" else 0.02
        if self.style_weights is not None:
            c.style_weights = tuple(float(w) for w in self.style_weights)
        if self.scales is not None:
            c.scales = tuple(int(v) for v in self.scales)
            if self.size is not None and c.scales[-1] != self.size:
                c.scales = c.scales + (int(self.size),)
        elif self.size is not None:
            c.scales = default_scales(int(self.size))
        if self.scale_steps is not None:
            c.scale_steps = tuple(int(n) for n in self.scale_steps)
            if c.scales is not None and len(c.scale_steps) != len(c.scales):
                raise ValueError(
                    f"{len(c.scale_steps)} scale_steps for the {len(c.scales)} scales {c.scales}: give one per scale"
                )
            c.steps = sum(c.scale_steps)
        return c

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def default_scales(size: int) -> tuple[int, ...]:
    """The default coarse-to-fine schedule: halve the long side while the half is >= COARSEST_SIDE.

    ``100 -> (100,)``, ``256 -> (128, 256)``, ``384 -> (192, 384)``, ``512 -> (128, 256, 512)``.

    A step at half the size costs a quarter, so the shapes are settled where steps are cheap and
    the full size only refines the texture.  It pays with the default start, the content photo
    blended with noise (``init='blend'``): from bare white noise a full-size stage started from an
    upsampled coarse result is soon caught up by one started from noise, since the pyramid
    parametrisation (TransferConfig.pyramid) already does coarse-to-fine work inside each scale
    (benchmarks/RESULTS_transfer.md).
    """
    scales = [int(size)]
    while scales[0] // 2 >= COARSEST_SIDE:
        scales.insert(0, scales[0] // 2)
    return tuple(scales)


def default_pyramid(side: int) -> int:
    """Levels of the automatic pyramid for an image whose long side is ``side`` px: halve while
    the coarsest level keeps a long side >= PYRAMID_MIN_SIDE (``256 -> 3``: 256, 128, 64 px;
    ``384 -> 3``; ``512 -> 4``; at most 6).  Coarser levels still speed up the cost a little, but
    wash the picture with large smooth colour gradients."""
    levels = 1
    while levels < 6 and (int(side) >> levels) >= PYRAMID_MIN_SIDE:
        levels += 1
    return levels


def split_steps(steps: int, scales: Sequence[int]) -> list[int]:
    """Share ``steps`` among ``scales``: each scale gets a share proportional to ``1 / long side``.

    Halving the side quarters the cost of a step, so the coarse scales get more steps and still
    cost less: for (128, 256, 512) and 300 steps the split is 171, 86, 43; for (512, 1024) and 200
    steps it is 133, 67.
    """
    steps = int(steps)
    if len(scales) == 1:
        return [steps]
    w = [1.0 / s for s in scales]
    raw = [steps * x / sum(w) for x in w]
    out = [int(math.floor(r)) for r in raw]
    # hand the remainder to the largest fractional parts (coarse first on ties)
    for i in sorted(range(len(out)), key=lambda i: -(raw[i] - out[i]))[: steps - sum(out)]:
        out[i] += 1
    return out


# ---- colour ------------------------------------------------------------------------------------
# scikit-image's YIQ (the NTSC 1987 coefficients; Y = 0.299 R + 0.587 G + 0.114 B).  Only Y is
# optimised and I, Q go back through skimage's own inverse, so the coefficients of I and Q (which
# differ from the FCC 1953 table in the 4th digit) do not change a result.


def _skimage_colour(fn, t: torch.Tensor) -> torch.Tensor:
    arr = fn(t.detach().double().cpu().numpy(), channel_axis=1)
    return torch.from_numpy(arr).to(t.device, t.dtype)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> YIQ (``skimage.color.rgb2yiq``; Y is the luminance)."""
    from skimage.color import rgb2yiq

    return _skimage_colour(rgb2yiq, rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_yiq` (``skimage.color.yiq2rgb``; values may leave [0, 1])."""
    from skimage.color import yiq2rgb

    return _skimage_colour(yiq2rgb, yiq)


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(rgb)[:, :1]


# ---- starting images, precision -----------------------------------------------------------------


def white_noise(shape, seed: int = 0, amplitude: float = 1.0, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """White noise, uniform in ``0.5 +- amplitude / 2``, on the CPU: the one noise generator of teachkit.

    ``white_noise((1, 3, H, W), config.seed)`` is exactly the engine's starting image for
    ``init='noise'`` (amplitude 1: uniform in [0, 1]); the reconstructions start from a fainter one.
    ``generator`` (instead of ``seed``) continues an existing random stream.
    """
    if not 0 < float(amplitude) <= 1:
        raise ValueError(f"noise amplitude must be in (0, 1], not {amplitude!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(int(seed))
    u = torch.rand(tuple(int(d) for d in shape), generator=gen)
    return u if amplitude == 1 else 0.5 + float(amplitude) * (u - 0.5)


class SlowDtypeWarning(UserWarning):
    """bfloat16 was asked for on a CPU that only emulates it (many times slower than float32)."""


def cpu_bf16_native() -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 natively *for torch*, and why (one line).

    Native means the CPU has AVX512-BF16 or AMX-BF16 **and** torch may use it: its kernels run at
    the AVX512 level (``torch.backends.cpu.get_cpu_capability()``, lowered by
    ``ATEN_CPU_CAPABILITY``) and oneDNN is not capped below AVX-512 (``ONEDNN_MAX_CPU_ISA``).
    """
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


def choose_dtype(dtype: str, device: torch.device, force: bool = False) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype for ``dtype`` on ``device`` (None: plain float32) and a warning, if any.

    ``'auto'``: bfloat16 on a CPU with native bfloat16 (:func:`cpu_bf16_native`), else float32.
    ``'bfloat16'`` on a CPU without it: float32 and a one-line warning, unless ``force``.
    """
    device = torch.device(device)
    if dtype == "float32":
        return None, None
    native = cpu_bf16_native() if device.type == "cpu" else (False, device.type)
    if dtype == "auto":
        return (torch.bfloat16 if native[0] else None), None
    if device.type != "cpu" or native[0] or force:
        return torch.bfloat16, None
    return None, (f"bfloat16 is emulated on this CPU ({native[1]}): many times slower than float32, "
                  "so float32 is used (force it with force_dtype=True / --force-dtype)")


# ---- style targets -----------------------------------------------------------------------------


@torch.no_grad()
def blended_style_grams(
    net,
    styles: Sequence[torch.Tensor],
    layers: Sequence[str],
    generated_hw: tuple[int, int],
    weights: Sequence[float] | None = None,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    r"""The style targets: ``sum_i w_i * (M_G / M_S_i) * G[l](S_i)`` for every layer ``l``.

    ``styles`` are ``(1, 3, H, W)`` images in [0, 1]; ``generated_hw`` is the (height, width) of the
    image being generated, which fixes ``M_G = n_H n_W`` at each layer.  The weights are normalised
    to sum to 1 (None: equal).  The factor ``M_G / M_S`` makes a style image of any size give a
    target of the size the generated image's Gram matrix has (a Gram matrix sums over positions).
    """
    from .gram import style_target  # here: teachkit.gram imports matplotlib, which a transfer needs not

    if weights is None:
        weights = [1.0] * len(styles)
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
            m_s = a.shape[-2] * a.shape[-1]
            m_g = math.prod(feature_size(net.body, l, tuple(generated_hw)))
            g = style_target(costs.gram_matrix(a)[0], m_s, m_g) * (float(w) / wsum)
            out[l] = g if l not in out else out[l] + g
    return out


# ---- one scale ---------------------------------------------------------------------------------


class StyleTransfer:
    """Gradient descent on the pixels of G at one resolution, one step at a time.

    >>> st = StyleTransfer(content, style, TransferConfig(size=128))   # doctest: +SKIP
    >>> st.step(5)[-1]["total"]                                        # doctest: +SKIP
    >>> st.image()                                                     # doctest: +SKIP

    ``content`` is a ``(1, 3, H, W)`` tensor in [0, 1] at the resolution to work at; ``styles`` one
    tensor or a list (any sizes: they are used as given, see :func:`blended_style_grams`), or
    ``None`` when ``beta = 0`` (a content reconstruction); ``init`` an optional starting image of
    size H x W (RGB, or one-channel luminance when ``preserve_color``), e.g. the upsampled result
    of a coarser scale; without it the image starts as ``config.init`` says.  ``backbone`` a
    loaded FeatureExtractor (else one is loaded).  ``generator`` a torch.Generator for the noise
    (else :func:`white_noise` with ``config.seed``).  ``config.size``, ``steps``, ``scales`` and
    ``preview_every`` are not used here: the caller decides the resolution and how many steps to
    take.  ``weights`` holds the weights J uses (see the module doc, "Weights"); ``dtype_warning``
    the precision fall-back's message, if any.
    """

    def __init__(
        self,
        content: torch.Tensor,
        styles: torch.Tensor | Sequence[torch.Tensor] | None,
        config: TransferConfig | None = None,
        *,
        init: torch.Tensor | None = None,
        backbone=None,
        generator: torch.Generator | None = None,
        time_origin: float | None = None,
    ):
        cfg = (config or TransferConfig()).resolved(None if styles is None else
                                                    (1 if isinstance(styles, torch.Tensor) else len(styles)))
        styles = [] if styles is None else [styles] if isinstance(styles, torch.Tensor) else list(styles)
        if not styles and cfg.beta != 0:
            raise ValueError("give at least one style image (or beta = 0)")
        for t in [content, *styles]:
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[:2] != (1, 3):
                raise ValueError(f"expected image tensors of shape (1, 3, H, W), got {getattr(t, 'shape', t)}")
        self.config = cfg
        if backbone is None:
            from .features import load_backbone

            backbone = load_backbone(cfg.backbone, pooling=cfg.pooling, device=cfg.device)
        self.net = backbone
        self.device = backbone.device
        self.style_layers = list(backbone.check_layers(cfg.style_layers))
        self.content_layer = backbone.check_layers([cfg.content_layer])[0]
        self.autocast_dtype, self.dtype_warning = choose_dtype(cfg.dtype, self.device, cfg.force_dtype)
        if self.dtype_warning:
            import warnings

            warnings.warn(self.dtype_warning, SlowDtypeWarning, stacklevel=2)
        self.time_origin = time.perf_counter() if time_origin is None else time_origin
        relative = dict(zip(self.style_layers, cfg.layer_weights))

        # Which layers must the forward pass reach?  Only those whose terms have a weight.
        idx = backbone.layer_index
        needed = []
        if cfg.alpha != 0:
            needed.append(self.content_layer)
        if cfg.beta != 0:
            needed += [l for l in self.style_layers if relative[l] != 0]
        depth = max((idx(l) for l in needed), default=-1)
        self._layers = [l for l in dict.fromkeys([self.content_layer, *self.style_layers]) if idx(l) <= depth]
        self._content_on = self.content_layer in self._layers
        self._style_on = [l for l in self.style_layers if l in self._layers]

        content = content.detach().to(self.device, torch.float32)
        styles = [s.detach().to(self.device, torch.float32) for s in styles]
        self.height, self.width = int(content.shape[-2]), int(content.shape[-1])
        self.preserve_color = bool(cfg.preserve_color)
        if self.preserve_color:
            yiq = rgb_to_yiq(content)
            self._content_iq = yiq[:, 1:]
            y_c = yiq[:, :1]
            mu, sd = y_c.mean(), y_c.std()
            grey = []
            for s in styles:  # the style's luminance, matched to the content's mean and spread
                y_s = _luminance(s)
                y_s = ((y_s - y_s.mean()) * (sd / y_s.std().clamp_min(1e-6)) + mu).clamp(0, 1)
                grey.append(y_s.expand(-1, 3, -1, -1))
            styles = grey
            content = y_c.expand(-1, 3, -1, -1)
        self.content = content

        # Targets, computed once without gradients.
        with torch.no_grad(), self._autocast():
            self.content_target = (
                self.net.extract(self._network_input(content), [self.content_layer])[self.content_layer].detach()
                if self._content_on
                else None
            )
        self.style_targets = blended_style_grams(
            self.net, [self._network_input(s) for s in styles], self._style_on, (self.height, self.width),
            cfg.style_weights,
            autocast_dtype=self.autocast_dtype,
        ) if styles else {}

        # The weights J uses: the config's, or (auto) derived from the targets.
        channels = 1 if self.preserve_color else 3
        if cfg.normalization == "auto":
            shapes = {}
            for l in self._style_on:
                n_h, n_w = feature_size(self.net.body, l, (self.height, self.width))
                shapes[l] = (self.net.channels[l], n_h, n_w)
            reference = None
            if cfg.alpha != 0 and cfg.beta != 0 and self._style_on:  # measure style against G(C)
                with torch.no_grad(), self._autocast():
                    fc = self.net.extract(self._network_input(content), self._style_on)
                reference = {l: costs.gram_matrix(fc[l])[0] for l in self._style_on}
            auto = costs.auto_weights(
                self.content_target if cfg.alpha != 0 else None, self.style_targets, shapes,
                (3, self.height, self.width), cfg.alpha,
                {l: (relative[l] if cfg.beta != 0 else 0.0) for l in self._style_on}, cfg.tv_weight,
                style_reference=reference,
            )
            lam = {l: auto["layer_weights"].get(l, 0.0) for l in self.style_layers}
            self.weights = {"alpha": auto["alpha"], "beta": cfg.beta, "layer_weights": lam,
                            "tv_weight": auto["tv_weight"]}
        else:
            self.weights = {"alpha": cfg.alpha, "beta": cfg.beta, "layer_weights": relative,
                            "tv_weight": cfg.tv_weight}
        self.layer_weights = self.weights["layer_weights"]

        # The starting image (the optimised parameter): RGB, or luminance when preserving colour.
        if init is not None:
            x0 = init.detach().to(self.device, torch.float32)
            if x0.dim() != 4 or x0.shape[0] != 1:
                raise ValueError(f"init must have shape (1, C, H, W), got {tuple(x0.shape)}")
            if x0.shape[1] == 3 and channels == 1:
                x0 = _luminance(x0)
            if x0.shape[-2:] != (self.height, self.width):
                x0 = F.interpolate(x0, size=(self.height, self.width), mode="bilinear", align_corners=False)
        else:
            base = content[:, :channels]
            if cfg.init == "content":
                x0 = base.clone()
            else:
                noise = white_noise((1, channels, self.height, self.width), cfg.seed, generator=generator)
                noise = noise.to(self.device)
                x0 = noise if cfg.init == "noise" else (1 - cfg.init_noise) * base + cfg.init_noise * noise
        # The parameters: the image itself, plus (pyramid > 1) coarser images, all zero at first,
        # whose bilinear upsamplings are added to it (see TransferConfig.pyramid).
        self.params = [x0.clamp(0, 1).contiguous().requires_grad_(True)]
        levels = int(cfg.pyramid) if cfg.pyramid is not None else default_pyramid(max(self.height, self.width))
        self.levels = levels
        for k in range(1, levels):
            h, w = max(1, self.height >> k), max(1, self.width >> k)
            self.params.append(torch.zeros((1, channels, h, w), device=self.device, requires_grad=True))
        self._new_optimizer()
        self.history: list[dict] = []
        self.steps_done = 0
        self._scale: float | None = None  # see GRAD_RMS
        self._term_names = ["content", "style", *(f"style/{l}" for l in self.style_layers), "tv", "total"]

    # -- internals ---------------------------------------------------------------------------
    def _new_optimizer(self) -> None:
        cfg = self.config
        if cfg.optimizer == "lbfgs":
            self.optimizer = torch.optim.LBFGS(
                self.params, lr=cfg.lr, max_iter=1, history_size=int(cfg.history_size),
                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn=None,
            )
        else:
            self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)

    def _compose(self) -> torch.Tensor:
        """The image (before clamping): the finest parameter plus the upsampled coarser ones."""
        x = self.params[0]
        for z in self.params[1:]:
            x = x + F.interpolate(z, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
            enabled=self.autocast_dtype is not None,
        )

    def _render(self, x: torch.Tensor) -> torch.Tensor:
        """What the network sees: the pixels clamped to [0, 1], as RGB (grey when optimising luminance)."""
        x = x.clamp(0.0, 1.0)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def _network_input(self, img: torch.Tensor) -> torch.Tensor:
        # channels-last (NHWC) input makes oneDNN run every convolution in NHWC (see CHANNELS_LAST)
        if CHANNELS_LAST and self.device.type == "cpu":
            return img.contiguous(memory_format=torch.channels_last)
        return img

    def _objective(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """J(G), and its terms as one detached tensor on the device (in the order of
        ``_term_names``; ``nan`` for a term not computed).  Terms with weight 0 stay out of the gradient."""
        cfg, wts = self.config, self.weights
        img = self._render(x)
        with self._autocast():
            feats = self.net.extract(self._network_input(img), self._layers) if self._layers else {}
        zero = torch.zeros((), device=self.device)
        nan = torch.full((), float("nan"), device=self.device)
        if self._content_on:
            a = feats[self.content_layer]
            jc = costs.content_cost(self.content_target, a if wts["alpha"] != 0 else a.detach(), cfg.normalization)
        else:
            jc = None
        style_terms = {}
        for l in self._style_on:
            a = feats[l]
            live = wts["beta"] != 0 and self.layer_weights[l] != 0
            style_terms[l] = costs.style_layer_cost(self.style_targets[l], a if live else a.detach(),
                                                    cfg.normalization)
        js = sum((self.layer_weights[l] * t for l, t in style_terms.items()), zero)
        tv = costs.total_variation(img) if wts["tv_weight"] != 0 else costs.total_variation(img.detach())
        total = costs.total_cost(jc if jc is not None else zero, js, wts["alpha"], wts["beta"], tv, wts["tv_weight"])
        all_style = len(style_terms) == len(self.style_layers)
        terms = [jc if jc is not None else nan, js if (all_style or wts["beta"] != 0) else nan,
                 *(style_terms.get(l, nan) for l in self.style_layers), tv, total]
        return total, torch.stack([t.detach().float() for t in terms])

    def _records(self, pending: list[tuple[int, float, torch.Tensor]]) -> list[dict]:
        """Turn the steps' term tensors into records: one copy to the host for all of them."""
        if not pending:
            return []
        values = torch.stack([t for _, _, t in pending]).cpu().tolist()
        size = max(self.height, self.width)
        records = []
        for (step, elapsed, _), row in zip(pending, values):
            rec = {"step": step, "size": size, "elapsed": elapsed, **dict(zip(self._term_names, row))}
            if not math.isfinite(rec["total"]):
                raise ValueError(
                    f"the cost J became {rec['total']} at step {step}: the weights (alpha, beta, layer "
                    "weights) make it too large for float32, or the step is too long (lr)"
                )
            records.append(rec)
        self.history.extend(records)
        return records

    # -- the public, steppable API --------------------------------------------------------------
    def step(self, n: int = 1) -> list[dict]:
        """Take ``n`` optimiser steps; return their records (also appended to ``history``).

        The records' numbers are copied from the device once, after the ``n`` steps."""
        pending: list[tuple[int, float, torch.Tensor]] = []
        pending_still: list[torch.Tensor] = []  # off the CPU: "no step was taken" flags, on the device
        for _ in range(int(n)):
            box: dict[str, Any] = {}

            def closure():
                self.optimizer.zero_grad(set_to_none=True)
                x = self._compose()
                total, terms = self._objective(x)
                box["terms"] = terms
                if self._scale is None:  # first evaluation: fix the optimiser's scale of J
                    total.backward()
                    rms = float(torch.cat([p.grad.flatten() for p in self.params]).pow(2).mean().sqrt())
                    if not math.isfinite(rms):
                        raise ValueError(
                            "the gradient of J overflows float32: lower beta or the layer weights "
                            f"(J = {float(total):.3g})"
                        )
                    self._scale = GRAD_RMS / rms if rms > 0 else 1.0
                    for p in self.params:
                        p.grad.mul_(self._scale)
                    return total.detach() * self._scale
                # what the optimiser minimises: kappa * J(clamp(x)) + 1/2 ||x - clamp(x)||^2 (the
                # second part is 0 for every pixel in range, and pulls stray pixels back)
                outside = x - x.detach().clamp(0.0, 1.0)
                f = total * self._scale + 0.5 * outside.pow(2).sum()
                f.backward()
                return f.detach()

            before = [p.detach().clone() for p in self.params]
            self.optimizer.step(closure)
            with torch.no_grad():
                if self.config.optimizer == "adam" and len(self.params) == 1:
                    self.params[0].clamp_(0.0, 1.0)  # projected gradient descent (no curvature memory)
                # L-BFGS found no descent direction (clamping can do this): start its memory anew.
                # On the CPU checked at once; elsewhere kept on the device and read with the terms.
                if self.device.type == "cpu":
                    if all(torch.equal(b, p) for b, p in zip(before, self.params)):
                        self._new_optimizer()
                else:
                    pending_still.append(torch.stack([(b == p).all() for b, p in zip(before, self.params)]).all())
            self.steps_done += 1
            pending.append((self.steps_done, time.perf_counter() - self.time_origin, box["terms"]))
        if pending_still and bool(torch.stack(pending_still).any()):
            self._new_optimizer()
        return self._records(pending)

    @torch.no_grad()
    def costs(self) -> dict[str, float]:
        """The cost terms of the current image (one forward pass, no gradient)."""
        values = self._objective(self._compose())[1].cpu().tolist()
        return dict(zip(self._term_names, values))

    @torch.no_grad()
    def tensor(self) -> torch.Tensor:
        """The current image, ``(1, 3, H, W)`` float32 RGB in [0, 1], on the CPU."""
        x = self._compose().detach().clamp(0, 1)
        if self.preserve_color:
            rgb = yiq_to_rgb(torch.cat([x, self._content_iq], dim=1))
        else:
            rgb = x
        return rgb.clamp(0, 1).float().cpu()

    def image(self):
        """The current image as a PIL RGB image."""
        from .images import to_pil

        return to_pil(self.tensor())

    def optimised(self) -> torch.Tensor:
        """The optimised image before colour recombination (RGB, or luminance when preserving
        colour), clamped to [0, 1], detached: what a finer scale starts from."""
        with torch.no_grad():
            return self._compose().detach().clamp(0, 1)


def run_steps(
    st: StyleTransfer,
    steps: int,
    *,
    callback: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    task: str = "transfer",
    message: str = "",
    preview_every: int = 10,
    preview_last: bool = True,
    done: int = 0,
    total: int | None = None,
    time_limit: float | None = None,
    sync_every: int | None = None,
) -> tuple[list[dict], bool]:
    """The loop every optimisation in teachkit runs: ``steps`` steps of ``st``, reported.

    After each step ``callback(Progress(task, done + i, total, values, image, message))`` is called
    (``image`` = the current image every ``preview_every`` steps, and at the last step if
    ``preview_last``; ``preview_every=0``: never).
    It stops early -- returning what it has -- when the callback returns True, ``stop`` is set
    or ``time_limit`` seconds have passed.  ``sync_every`` (default: 1 on the CPU, 10 elsewhere)
    steps are taken between copies of the terms to the host.  Returns ``(records, halted)``:
    each record's ``step`` counted from ``done``; ``halted`` is True when it was asked to stop
    (also at its last step).  A KeyboardInterrupt propagates; ``st.history`` has every step taken.
    """
    steps = int(steps)
    total = done + steps if total is None else total
    if sync_every is None:
        sync_every = 1 if st.device.type == "cpu" else 10
    t0 = time.perf_counter()
    records: list[dict] = []
    if stop is not None and stop.is_set():
        return records, True
    i = 0
    while i < steps:
        n = min(int(sync_every), steps - i)
        if preview_every:
            n = min(n, preview_every - (done + i) % preview_every)
        batch = st.step(n)
        for rec in batch:
            i += 1
            rec = dict(rec, step=done + i)
            records.append(rec)
            last = i == steps
            show = bool(preview_every) and ((done + i) % preview_every == 0 or (last and preview_last))
            image = st.image() if show else None
            values = {k: v for k, v in rec.items() if k not in ("step", "size", "elapsed")}
            halt = report(callback, Progress(task, done + i, total, values, image, message), stop)
            if halt or (time_limit is not None and time.perf_counter() - t0 > time_limit):
                return records, True
    return records, False


# ---- the whole job -----------------------------------------------------------------------------


@dataclass
class TransferResult:
    """What :func:`transfer` returns.

    ``image`` the result (PIL RGB; on an early stop the latest iterate, at the resolution of the
    scale it was working on), ``tensor`` the same as ``(1, 3, H, W)`` float in [0, 1], ``history``
    one dict per step (``step`` counted over all scales, ``scale`` 1-based index, ``size`` its long
    side in px, ``elapsed`` seconds since the start, and every cost term), ``costs`` the terms of
    the returned image, ``config`` the resolved config, ``stopped`` whether it ended early,
    ``seconds`` the wall time, ``weights`` the weights J used at the last scale (``alpha``,
    ``beta``, ``layer_weights`` = lambda[l] per layer, ``tv_weight``; with ``auto`` derived from
    the targets, see the module doc).
    """

    image: Any
    tensor: torch.Tensor
    history: list[dict]
    config: TransferConfig
    stopped: bool = False
    seconds: float = 0.0
    costs: dict[str, float] = field(default_factory=dict)
    backbone: str = ""
    weights: dict = field(default_factory=dict)

    def effective_config(self) -> TransferConfig:
        """The config with the weights J used at the last scale written in, under the ``lecture``
        constants (the same J; e.g. for ``viz.plot_history(weighted=True)``)."""
        w = self.weights
        if not w or self.config.normalization != "auto":
            return self.config
        return dataclasses.replace(
            self.config, normalization="lecture", alpha=w["alpha"], beta=w["beta"], tv_weight=w["tv_weight"],
            layer_weights=tuple(w["layer_weights"][l] for l in self.config.style_layers),
        )

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "backbone": self.backbone,
            "size": list(self.image.size),
            "stopped": self.stopped,
            "seconds": self.seconds,
            "steps": len(self.history),
            "costs": _json_safe(self.costs),
            "weights": self.weights,
            "history": [_json_safe(r) for r in self.history],
        }

    def save_log(self, path) -> str:
        """Write config, history and final costs as JSON (``nan`` becomes ``null``); returns the path."""
        from .fileio import atomic_write

        path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        with atomic_write(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _as_pil(spec, size, what: str):
    from .images import load_image
    from .samples import resolve_image

    if isinstance(spec, (str, os.PathLike)):
        return resolve_image(spec, size=size)
    img = load_image(spec, name=f"<{what}>")
    return img


def load_inputs(content, styles, config: TransferConfig):
    """Load (and check) the content and style images as PIL RGB images, before any long work.

    ``content``: a PIL image, a path or sample name, a tensor, ...; ``styles``: one or a list.
    Returns ``(content_pil, [style_pil, ...])``; the content has the config's size.
    """
    from .images import resize_long_side

    if isinstance(styles, (list, tuple)):
        styles = list(styles)
    else:
        styles = [styles]
    if not styles:
        raise ValueError("give at least one style image")
    c = _as_pil(content, config.size, "content")
    if config.size is not None and max(c.size) != config.size:
        c = resize_long_side(c, int(config.size))
    style_side = max(16, round(max(c.size) * float(config.style_scale)))
    s = [_as_pil(x, style_side, "style") for x in styles]
    return c, s


def transfer(
    content,
    styles,
    config: TransferConfig | None = None,
    *,
    callback: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    backbone=None,
) -> TransferResult:
    """Run style transfer (coarse-to-fine by default) and return a :class:`TransferResult`.

    ``content``: PIL image / path / sample name / tensor; ``styles``: one of these or a list.
    ``callback(Progress)`` is called after every step with ``values`` = the cost terms, ``image`` =
    the current image every ``config.preview_every`` steps, ``message`` = "scale i/k: N px"; if it
    returns True, or ``stop`` is set, or the user presses Ctrl-C, the job stops and returns the
    latest image with ``stopped=True``.  ``backbone``: an already loaded FeatureExtractor.

    Coarse-to-fine: one :class:`StyleTransfer` per scale in ``config.scales`` (default
    :func:`default_scales`), each started from the previous scale's result, upsampled; the
    first one starts from ``config.init``.  The steps are shared by :func:`split_steps` (or given per
    scale by ``config.scale_steps``).
    """
    from .images import resize_long_side, to_pil, to_tensor

    t0 = time.perf_counter()
    cfg0 = config or TransferConfig()
    content_pil, style_pils = load_inputs(content, styles, cfg0)
    if cfg0.size is None:
        cfg0 = dataclasses.replace(cfg0, size=max(content_pil.size))
    cfg = cfg0.resolved(len(style_pils))
    if backbone is None:
        from .features import load_backbone

        backbone = load_backbone(cfg.backbone, pooling=cfg.pooling, device=cfg.device)
    backbone.check_layers([cfg.content_layer, *cfg.style_layers])

    scales = list(cfg.scales)
    plan = list(cfg.scale_steps) if cfg.scale_steps is not None else split_steps(cfg.steps, scales)
    total = sum(plan)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    history: list[dict] = []
    stopped = False
    st: StyleTransfer | None = None

    def make(side: int, init: torch.Tensor | None) -> StyleTransfer:
        c = content_pil if side == max(content_pil.size) else resize_long_side(content_pil, side)
        s_side = max(16, round(side * float(cfg.style_scale)))
        s_list = [to_tensor(s if max(s.size) == s_side else resize_long_side(s, s_side)) for s in style_pils]
        return StyleTransfer(to_tensor(c), s_list, cfg, init=init, backbone=backbone, generator=generator,
                             time_origin=t0)

    running: StyleTransfer | None = None  # the scale whose steps are not yet in history
    try:
        for k, (side, n_steps) in enumerate(zip(scales, plan), start=1):
            if n_steps == 0 and k < len(scales):
                continue
            if stop is not None and stop.is_set():
                stopped = True
                break
            st = running = make(side, st.optimised() if st is not None else None)
            records, halted = run_steps(
                st, n_steps, callback=callback, stop=stop, message=f"scale {k}/{len(scales)}: {side} px",
                preview_every=cfg.preview_every, preview_last=k == len(scales), done=len(history), total=total,
            )
            history += [dict(r, scale=k) for r in records]
            running = None
            if halted:
                stopped = not (k == len(scales) and len(records) == n_steps)
                break
    except KeyboardInterrupt:
        stopped = True
        if running is not None:  # keep the records of the steps the interrupted scale took
            base = len(history)
            history += [dict(r, step=base + j, scale=k) for j, r in enumerate(running.history, start=1)]
    if st is None:  # stopped before the first step
        st = make(scales[0], None)
    tensor = st.tensor()
    final_costs = st.costs()
    return TransferResult(
        image=to_pil(tensor),
        tensor=tensor,
        history=history,
        config=cfg,
        stopped=stopped,
        seconds=time.perf_counter() - t0,
        costs=final_costs,
        backbone=getattr(backbone, "weights_id", ""),
        weights=_json_weights(st.weights),
    )


def _json_weights(w: dict) -> dict:
    return {"alpha": float(w["alpha"]), "beta": float(w["beta"]), "tv_weight": float(w["tv_weight"]),
            "layer_weights": {l: float(v) for l, v in w["layer_weights"].items()}}
