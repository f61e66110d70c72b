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
    The whole job: images in, :class:`TransferResult` out, with a progress callback, a stop switch,
    a time limit and the coarse-to-fine schedule (the default recipe).  It is
    ``Engine(content, styles, config).run(...)``: the :class:`Engine` first resolves everything once
    into a :class:`TransferPlan` (``engine.plan``, ``result.plan``, or :func:`plan` alone).
:class:`StyleTransfer`
    One resolution, one step at a time (``.step()``, ``.image()``, ``.costs()``, ``.history``): the
    app's "step through gradient descent" lesson.  :func:`transfer` runs one of these per scale.

One truth: the plan
-------------------
A config is resolved once per job (:class:`Setup`: defaults filled, layers checked against the
network, precision chosen; :meth:`Setup.targets`: each scale's targets and the weights J multiplies
there) into an immutable :class:`TransferPlan`: the scales with their sizes, steps and weights,
dtype, device, how G0 is made.  The plan is made where the content and style images are known,
since under ``auto`` the weights depend on them; the run then uses exactly those targets (nothing
is computed twice).  Everyone reads it: the CLI's "weights used" line and its log, ``prepare``, the
lessons, the charts (each progress report carries its ``scale``, ``size`` and ``weights``, and
:func:`weighted_record` turns a step into the parts of J that add up to it).  G0 alone, without a
network, is :func:`initial_image`.  A student's own cost functions plug into the same loop
(``cost_functions=``, :class:`teachkit.costs.CostFunctions`).

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
    The weights actually used are each scale's ``TransferPlan.scales[k].weights`` (=
    ``StyleTransfer.weights``, ``Progress.weights``; ``TransferResult.weights`` is the last scale's):
    ``alpha``, ``beta``, ``layer_weights`` = lambda[l], ``tv_weight``; with the other normalisations
    they are the config's own.
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
from .features import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, POOLINGS
from .messages import InputError, Message, TeachkitError
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
    "Engine",
    "TransferPlan",
    "ScalePlan",
    "plan",
    "initial_image",
    "weighted_record",
    "backbone_for",
    "choose_dtype",
    "cpu_bf16_native",
    "SlowDtypeWarning",
    "ConfigError",
    "TransferError",
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
            raise ConfigError("config.unknown_preset", name=name, choices=", ".join(PRESETS))
        fields = dict(PRESETS[name])
        return cls(**{**fields, **overrides})

    # -- validation and defaults ---------------------------------------------------------------
    def validate(self, n_styles: int | None = None) -> "TransferConfig":
        """Check every field that can be checked without a backbone; raise :class:`ConfigError` (a
        ValueError) naming the field and the value.  Returns self."""
        costs.check_normalization(self.normalization)
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) != self.size or self.size < 16):
            raise ConfigError("config.size", value=repr(self.size))
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ConfigError("config.steps", value=repr(self.steps))
        if self.init not in INITS:
            raise ConfigError("config.choice", name="init", choices=", ".join(INITS), value=repr(self.init))
        if not 0.0 <= float(self.init_noise) <= 1.0:
            raise ConfigError("config.init_noise", value=repr(self.init_noise))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("config.choice", name="optimizer", choices=", ".join(OPTIMIZERS),
                              value=repr(self.optimizer))
        if self.dtype not in DTYPES:
            raise ConfigError("config.choice", name="dtype", choices=", ".join(DTYPES), value=repr(self.dtype))
        if self.pooling not in POOLINGS:
            raise ConfigError("config.choice", name="pooling", choices=", ".join(POOLINGS), value=repr(self.pooling))
        if self.lr is not None and not float(self.lr) > 0:
            raise ConfigError("config.lr", value=repr(self.lr))
        if self.pyramid is not None and (
            isinstance(self.pyramid, bool) or int(self.pyramid) != self.pyramid or not 1 <= self.pyramid <= 8
        ):
            raise ConfigError("config.pyramid", value=repr(self.pyramid))
        if int(self.history_size) < 1:
            raise ConfigError("config.history_size", value=repr(self.history_size))
        for name in ("alpha", "beta", "tv_weight"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
                raise ConfigError("config.weight", name=name, value=repr(value))
        if not self.style_layers and not isinstance(self.style_layers, str) and self.beta != 0:
            raise ConfigError("config.no_style_layers")
        if isinstance(self.style_layers, str):
            raise ConfigError("config.style_layers_string", value=repr(self.style_layers))
        if len(set(self.style_layers)) != len(self.style_layers):
            raise ConfigError("config.repeated_layers", layers=", ".join(self.style_layers))
        if self.layer_weights is not None:
            if len(self.layer_weights) != len(self.style_layers):
                raise ConfigError("config.layer_weights_count", n=len(self.layer_weights),
                                  m=len(self.style_layers), layers=", ".join(self.style_layers))
            if any(not (math.isfinite(float(w)) and float(w) >= 0) for w in self.layer_weights):
                raise ConfigError("config.layer_weights", value=tuple(self.layer_weights))
        if self.style_weights is not None:
            if n_styles is not None and len(self.style_weights) != n_styles:
                raise ConfigError("config.style_weights_count", n=len(self.style_weights), m=n_styles)
            if any(not (math.isfinite(float(w)) and float(w) >= 0) for w in self.style_weights) or not sum(
                float(w) for w in self.style_weights
            ) > 0:
                raise ConfigError("config.style_weights", value=tuple(self.style_weights))
        if not float(self.style_scale) > 0:
            raise ConfigError("config.style_scale", value=repr(self.style_scale))
        if self.scales is not None:
            s = [int(v) for v in self.scales]
            if not s or any(v < 16 for v in s) or s != sorted(set(s)):
                raise ConfigError("config.scales", value=tuple(self.scales))
            if self.size is not None and s[-1] > self.size:
                raise ConfigError("config.scales_beyond_size", value=tuple(s), size=self.size)
        if self.scale_steps is not None:
            if any(isinstance(n, bool) or int(n) != n or n < 0 for n in self.scale_steps):
                raise ConfigError("config.scale_steps", value=tuple(self.scale_steps))
        if int(self.preview_every) < 0:
            raise ConfigError("config.preview_every", value=repr(self.preview_every))
        if isinstance(self.seed, bool) or not hasattr(self.seed, "__index__") or not 0 <= self.seed < 2**63:
            raise ConfigError("config.seed", value=repr(self.seed))  # a signed 64-bit number (options.SEED_MAX)
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
                raise ConfigError("config.scale_steps_count", n=len(c.scale_steps), m=len(c.scales),
                                  scales=c.scales)
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


class ConfigError(InputError):
    """A :class:`TransferConfig` field (or the images given with it) that cannot be used: an id + parameters."""


class TransferError(TeachkitError, ValueError):
    """The optimisation cannot go on (the cost J or its gradient left float32's range): an id + parameters."""


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


def choose_dtype(dtype: str, device: torch.device, force: bool = False) -> tuple[torch.dtype | None, Message | None]:
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
    return None, Message("transfer.bf16_emulated", detail=native[1])


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
    gram=None,
) -> dict[str, torch.Tensor]:
    r"""The style targets: ``sum_i w_i * (M_G / M_S_i) * G[l](S_i)`` for every layer ``l``.

    ``styles`` are ``(1, 3, H, W)`` images in [0, 1]; ``generated_hw`` is the (height, width) of the
    image being generated, which fixes ``M_G = n_H n_W`` at each layer.  The weights are normalised
    to sum to 1 (None: equal).  The factor ``M_G / M_S`` makes a style image of any size give a
    target of the size the generated image's Gram matrix has (a Gram matrix sums over positions).
    ``gram(a) -> (n_C, n_C)`` computes a Gram matrix (default: :func:`teachkit.costs.gram_matrix`).
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
            g = style_target(gram(a) if gram else costs.gram_matrix(a)[0], m_s, m_g) * (float(w) / wsum)
            out[l] = g if l not in out else out[l] + g
    return out


# ---- one scale ---------------------------------------------------------------------------------


def backbone_for(backbone=None, config: TransferConfig | None = None):
    """The network to run: ``backbone`` itself when already loaded, else loaded by name (``backbone``
    or ``config.backbone``, with the config's pooling and device): the one "load one if none was given"."""
    if backbone is not None and not isinstance(backbone, str):
        return backbone
    from .features import load_backbone

    cfg = config or TransferConfig()
    return load_backbone(backbone or cfg.backbone, pooling=cfg.pooling, device=cfg.device)


def _style_list(styles) -> list:
    return [] if styles is None else [styles] if isinstance(styles, torch.Tensor) else list(styles)


def pyramid_levels(config: TransferConfig, height: int, width: int) -> int:
    """The levels of the image's parametrisation at one scale (config.pyramid, else default_pyramid)."""
    return int(config.pyramid) if config.pyramid is not None else default_pyramid(max(height, width))


def start_tensor(base: torch.Tensor, config: TransferConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """G0 made from ``base`` (the content at the working size: ``(1, 3, H, W)``, or its luminance) as
    ``config.init`` says: white noise (seeded by ``config.seed``, or drawn from ``generator``), the
    content itself, or ``(1 - init_noise) * content + init_noise * noise``.  The one place G0 is made."""
    if config.init == "content":
        return base.clone()
    noise = white_noise((1, *base.shape[1:]), config.seed, generator=generator).to(base.device)
    return noise if config.init == "noise" else (1 - config.init_noise) * base + config.init_noise * noise


@dataclass(frozen=True)
class Setup:
    """What does not change from scale to scale: the resolved config, the network, the layers the
    forward pass must reach, the precision and the cost functions.  Made once per job
    (:meth:`make`); :meth:`targets` then makes each scale's targets and weights."""

    config: TransferConfig
    net: Any
    content_layer: str
    style_layers: tuple[str, ...]
    layers: tuple[str, ...]  #: the forward pass stops at the deepest of these
    content_on: bool
    style_on: tuple[str, ...]
    autocast_dtype: torch.dtype | None
    dtype_warning: Message | None  #: the precision fall-back, as data (SlowDtypeWarning's text is its English)
    cost_functions: costs.CostFunctions

    @classmethod
    def make(cls, config: TransferConfig | None, n_styles: int | None, backbone=None,
             cost_functions: costs.CostFunctions | None = None, *, stacklevel: int = 2) -> "Setup":
        cfg = (config or TransferConfig()).resolved(n_styles)
        if n_styles == 0 and cfg.beta != 0:
            raise ConfigError("transfer.no_style_image")
        cf = cost_functions or costs.CostFunctions()
        if cf.custom and cfg.normalization not in ("lecture", "auto"):
            raise ConfigError("engine.cost_functions_normalization", value=repr(cfg.normalization))
        if (cf.layer_style_cost or cf.style_cost) is not None and (n_styles or 0) > 1:
            raise ConfigError("engine.cost_functions_one_style", n=n_styles)
        net = backbone_for(backbone, cfg)
        style_layers = tuple(net.check_layers(cfg.style_layers))
        content_layer = net.check_layers([cfg.content_layer])[0]
        autocast_dtype, warning = choose_dtype(cfg.dtype, net.device, cfg.force_dtype)
        if warning:
            import warnings

            warnings.warn(warning, SlowDtypeWarning, stacklevel=stacklevel)
        # Which layers must the forward pass reach?  Only those whose terms have a weight.
        relative = dict(zip(style_layers, cfg.layer_weights))
        needed = [content_layer] if cfg.alpha != 0 else []
        if cfg.beta != 0:
            needed += [l for l in style_layers if relative[l] != 0]
        depth = max((net.layer_index(l) for l in needed), default=-1)
        layers = tuple(l for l in dict.fromkeys([content_layer, *style_layers]) if net.layer_index(l) <= depth)
        return cls(cfg, net, content_layer, style_layers, layers, content_layer in layers,
                   tuple(l for l in style_layers if l in layers), autocast_dtype, warning, cf)

    def autocast(self):
        return torch.autocast(device_type=self.net.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def network_input(self, img: torch.Tensor) -> torch.Tensor:
        # channels-last (NHWC) input makes oneDNN run every convolution in NHWC (see CHANNELS_LAST)
        if CHANNELS_LAST and self.net.device.type == "cpu":
            return img.contiguous(memory_format=torch.channels_last)
        return img

    @torch.no_grad()
    def extract(self, img: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with self.autocast():
            return self.net.extract(self.network_input(img), list(layers))

    def targets(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> "ScaleTargets":
        """One scale's fixed targets (computed once, without gradients) and the weights J uses there.

        ``content`` ``(1, 3, H, W)`` in [0, 1] at the working size; ``styles`` the style images
        (any sizes, see :func:`blended_style_grams`; an own ``layer_style_cost`` gets the style
        resized to H x W)."""
        cfg, cf = self.config, self.cost_functions
        for t in [content, *styles]:
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[:2] != (1, 3):
                raise ValueError(f"expected image tensors of shape (1, 3, H, W), got {getattr(t, 'shape', t)}")
        dev = self.net.device
        content = content.detach().to(dev, torch.float32)
        styles = [s.detach().to(dev, torch.float32) for s in styles]
        height, width = int(content.shape[-2]), int(content.shape[-1])
        content_iq = None
        if cfg.preserve_color:
            yiq = rgb_to_yiq(content)
            content_iq, y_c = yiq[:, 1:], yiq[:, :1]
            mu, sd = y_c.mean(), y_c.std()
            grey = []
            for s in styles:  # the style's luminance, matched to the content's mean and spread
                y_s = _luminance(s)
                y_s = ((y_s - y_s.mean()) * (sd / y_s.std().clamp_min(1e-6)) + mu).clamp(0, 1)
                grey.append(y_s.expand(-1, 3, -1, -1))
            styles = grey
            content = y_c.expand(-1, 3, -1, -1)
        content_target = self.extract(content, [self.content_layer])[self.content_layer].detach() \
            if self.content_on else None
        style_acts: dict[str, torch.Tensor] = {}
        if (cf.layer_style_cost or cf.style_cost) is not None and styles and self.style_on:
            s = F.interpolate(styles[0], size=(height, width), mode="bilinear", align_corners=False) \
                if styles[0].shape[-2:] != (height, width) else styles[0]
            style_acts = {l: a.detach().float() for l, a in self.extract(s, self.style_on).items()}
        style_targets = blended_style_grams(
            self.net, [self.network_input(s) for s in styles], self.style_on, (height, width), cfg.style_weights,
            autocast_dtype=self.autocast_dtype, gram=cf.gram,
        ) if styles else {}
        weights = self._weights(content, content_target, style_targets, (height, width))
        return ScaleTargets(self, height, width, content, content_iq, content_target, style_targets, style_acts,
                            weights)

    def _weights(self, content, content_target, style_targets, hw) -> dict:
        """The weights J multiplies at this scale: the config's, or (auto) derived from the targets."""
        cfg = self.config
        relative = dict(zip(self.style_layers, cfg.layer_weights))
        if cfg.normalization != "auto":
            return {"alpha": cfg.alpha, "beta": cfg.beta, "layer_weights": relative, "tv_weight": cfg.tv_weight}
        shapes = {l: (self.net.channels[l], *feature_size(self.net.body, l, hw)) for l in self.style_on}
        reference = None
        if cfg.alpha != 0 and cfg.beta != 0 and self.style_on:  # measure style against G(C)
            fc = self.extract(content, self.style_on)
            reference = {l: self.cost_functions.gram(fc[l]) for l in self.style_on}
        auto = costs.auto_weights(
            content_target if cfg.alpha != 0 else None, style_targets, shapes, (3, *hw), cfg.alpha,
            {l: (relative[l] if cfg.beta != 0 else 0.0) for l in self.style_on}, cfg.tv_weight,
            style_reference=reference,
        )
        lam = {l: auto["layer_weights"].get(l, 0.0) for l in self.style_layers}
        return {"alpha": auto["alpha"], "beta": cfg.beta, "layer_weights": lam, "tv_weight": auto["tv_weight"]}


@dataclass(frozen=True)
class ScaleTargets:
    """One scale's fixed inputs: the content at the working size (grey RGB when preserving colour) and
    its chrominance, ``a[l](C)``, the style Gram targets, the style activations (own
    ``layer_style_cost`` only) and the weights J multiplies there."""

    setup: Setup
    height: int
    width: int
    content: torch.Tensor
    content_iq: torch.Tensor | None
    content_target: torch.Tensor | None
    style_targets: dict
    style_acts: dict
    weights: dict



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
    the precision fall-back's message, if any.  ``cost_functions``: a student's own
    :class:`teachkit.costs.CostFunctions` (the contract is in its docstring).  ``targets``: this
    scale's :class:`ScaleTargets`, already computed by an :class:`Engine` (then ``content``,
    ``styles``, ``config``, ``backbone`` and ``cost_functions`` are taken from them).

    ``__init__`` is four named steps: resolve (:meth:`Setup.make`), the targets and weights
    (:meth:`Setup.targets`), the start image (:meth:`initial_image`), the parameters
    (:meth:`_parameters`).
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
        cost_functions: costs.CostFunctions | None = None,
        targets: "ScaleTargets | None" = None,
    ):
        if targets is None:  # standalone (a lesson, a reconstruction): resolve here; the Engine passes its own
            styles = _style_list(styles)
            setup = Setup.make(config, len(styles), backbone, cost_functions, stacklevel=3)
            targets = setup.targets(content, styles)
        setup = targets.setup
        self.setup, self.targets = setup, targets
        self.config, self.net, self.device = setup.config, setup.net, setup.net.device
        self.style_layers, self.content_layer = list(setup.style_layers), setup.content_layer
        self.autocast_dtype, self.dtype_warning = setup.autocast_dtype, setup.dtype_warning
        self.cost_functions = setup.cost_functions
        self._layers, self._content_on, self._style_on = setup.layers, setup.content_on, list(setup.style_on)
        self.time_origin = time.perf_counter() if time_origin is None else time_origin
        self.height, self.width = targets.height, targets.width
        self.preserve_color = bool(self.config.preserve_color)
        self.content, self._content_iq = targets.content, targets.content_iq
        self.content_target, self.style_targets = targets.content_target, targets.style_targets
        self.weights = targets.weights
        self.layer_weights = self.weights["layer_weights"]
        self.params = self._parameters(self.initial_image(init, generator))
        self.levels = len(self.params)
        self._new_optimizer()
        self.history: list[dict] = []
        self.steps_done = 0
        self._scale: float | None = None  # see GRAD_RMS
        self._term_names = ["content", "style", *(f"style/{l}" for l in self.style_layers), "tv", "total"]

    # -- the named steps of __init__ -------------------------------------------------------------
    def initial_image(self, init: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The starting image G0 as optimised (RGB, or luminance when preserving colour), on the device:
        ``init`` resized to this scale, else as ``config.init`` says (:func:`start_tensor`)."""
        channels = 1 if self.preserve_color else 3
        if init is None:
            return start_tensor(self.content[:, :channels], self.config, generator)
        x0 = init.detach().to(self.device, torch.float32)
        if x0.dim() != 4 or x0.shape[0] != 1:
            raise ValueError(f"init must have shape (1, C, H, W), got {tuple(x0.shape)}")
        if x0.shape[1] == 3 and channels == 1:
            x0 = _luminance(x0)
        if x0.shape[-2:] != (self.height, self.width):
            x0 = F.interpolate(x0, size=(self.height, self.width), mode="bilinear", align_corners=False)
        return x0

    def _parameters(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """The image itself, plus (pyramid > 1) coarser images, all zero at first, whose bilinear
        upsamplings are added to it (see TransferConfig.pyramid)."""
        params = [x0.clamp(0, 1).contiguous().requires_grad_(True)]
        for k in range(1, pyramid_levels(self.config, self.height, self.width)):
            h, w = max(1, self.height >> k), max(1, self.width >> k)
            params.append(torch.zeros((1, x0.shape[1], h, w), device=self.device, requires_grad=True))
        return params


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

    def _render(self, x: torch.Tensor) -> torch.Tensor:
        """What the network sees: the pixels clamped to [0, 1], as RGB (grey when optimising luminance)."""
        x = x.clamp(0.0, 1.0)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def _objective(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """J(G), and its terms as one detached tensor on the device (in the order of
        ``_term_names``; ``nan`` for a term not computed).  Terms with weight 0 stay out of the gradient."""
        wts, cf = self.weights, self.cost_functions
        img = self._render(x)
        with self.setup.autocast():
            feats = self.net.extract(self.setup.network_input(img), self._layers) if self._layers else {}
        zero = torch.zeros((), device=self.device)
        nan = torch.full((), float("nan"), device=self.device)
        jc = None
        if self._content_on:
            a = feats[self.content_layer]
            a = a if wts["alpha"] != 0 else a.detach()
            jc = (costs.content_cost(self.content_target, a, self.config.normalization) if cf.content_cost is None
                  else cf.content(self.content_target.float(), a.float()))
        style_terms = {}
        for l in self._style_on:
            live = wts["beta"] != 0 and self.layer_weights[l] != 0
            style_terms[l] = self._style_term(l, feats[l] if live else feats[l].detach())
        js = sum((self.layer_weights[l] * t for l, t in style_terms.items()), zero)
        if cf.style_cost is not None and style_terms:
            js = cf.style(*map(list, zip(*[(self.targets.style_acts[l], feats[l].float(), self.layer_weights[l])
                                           for l in style_terms])))
        tv = costs.total_variation(img if wts["tv_weight"] != 0 else img.detach())
        jc0 = jc if jc is not None else zero
        if cf.total_cost is None:
            total = costs.total_cost(jc0, js, wts["alpha"], wts["beta"], tv, wts["tv_weight"])
        else:
            total = cf.total(jc0, js, wts["alpha"], wts["beta"]) + wts["tv_weight"] * tv
        all_style = len(style_terms) == len(self.style_layers)
        terms = [jc0 if jc is not None else nan, js if (all_style or wts["beta"] != 0) else nan,
                 *(style_terms.get(l, nan) for l in self.style_layers), tv, total]
        return total, torch.stack([torch.as_tensor(t, device=self.device).detach().float() for t in terms])

    def _style_term(self, layer: str, a: torch.Tensor) -> torch.Tensor:
        """``J_style[l]`` of G's activation ``a`` (teachkit's, or the CostFunctions' own)."""
        cf = self.cost_functions
        if cf.layer_style_cost is not None:
            return cf.layer_style(self.targets.style_acts[layer], a.float())
        gram_G = None if cf.gram_matrix is None else cf.gram(a)
        return costs.style_layer_cost(self.style_targets[layer], a, self.config.normalization, gram_G=gram_G)

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
                raise TransferError("transfer.cost_not_finite", value=rec["total"], step=step)
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
                        raise TransferError("transfer.gradient_overflow", value=f"{float(total):.3g}")
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
    message: str | Message = "",
    preview_every: int = 10,
    preview_last: bool = True,
    done: int = 0,
    total: int | None = None,
    time_limit: float | None = None,
    sync_every: int | None = None,
    deadline: float | None = None,
    scale: int = 0,
) -> tuple[list[dict], str | None]:
    """The loop every optimisation in teachkit runs: ``steps`` steps of ``st``, reported.

    After each step ``callback(Progress(task, done + i, total, values, image, message, scale=scale,
    size=..., weights=st.weights))`` is called (``image`` = the current image every ``preview_every``
    steps, and at the last step if ``preview_last``; ``preview_every=0``: never).
    It stops early -- returning what it has -- when the callback returns True or ``stop`` is set
    (reason ``'stopped'``), or ``time_limit`` seconds from now / the ``deadline``
    (``time.perf_counter()``) have passed (reason ``'time_limit'``).  ``sync_every`` (default: 1 on
    the CPU, 10 elsewhere) steps are taken between copies of the terms to the host.  Returns
    ``(records, reason)``: each record's ``step`` counted from ``done``; ``reason`` None when it ran
    all its steps without being asked to stop (a stop asked at the last step still counts).  A
    KeyboardInterrupt propagates; ``st.history`` has every step taken.
    """
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
    size = max(st.height, st.width)
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
            progress = Progress(task, done + i, total, values, image, message, scale=scale, size=size,
                                weights=st.weights)
            if report(callback, progress, stop):
                return records, "stopped"
            if deadline is not None and time.perf_counter() > deadline:
                return records, "time_limit"
    return records, None


# ---- the whole job -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalePlan:
    """One scale of a :class:`TransferPlan`: its 1-based ``index``, long side ``size`` and exact
    ``height`` x ``width`` in px, its ``steps``, the ``pyramid`` levels of its parametrisation and the
    ``weights`` J multiplies there (``alpha``, ``beta``, ``layer_weights`` = {layer: lambda[l]},
    ``tv_weight``; with ``auto`` derived from this scale's targets)."""

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
    """A config resolved once, against its images and network: what the engine will really do.

    ``config`` the resolved config (every default filled in), ``scales`` one :class:`ScalePlan` per
    scale (a scale with 0 steps, other than the last, is skipped), ``device``, ``dtype``
    ('float32' or 'bfloat16': what the network runs in; the costs are float32 anyway) and
    ``dtype_warning`` (the fall-back's message, if any), ``backbone`` the weights' id,
    ``content_layer``/``style_layers`` as checked against the network, and ``start``: how G0 is made
    (``config.init``: 'noise', 'content' or 'blend' with ``config.init_noise`` and ``config.seed``;
    :func:`initial_image` makes it).

    Made by the :class:`Engine` (``Engine(content, styles, config).plan``, or :func:`plan`), where
    the content and style images are known, since with ``auto`` the weights depend on them; the
    engine then runs exactly this plan, so the CLI's "weights used" line, the log, ``prepare``, the
    lessons and the charts read the same numbers the optimiser multiplied.
    """

    config: TransferConfig
    scales: tuple[ScalePlan, ...]
    device: str
    dtype: str
    dtype_warning: Any
    backbone: str
    content_layer: str
    style_layers: tuple[str, ...]
    start: str

    @property
    def steps(self) -> int:
        """Steps planned over all scales."""
        return sum(s.steps for s in self.scales)

    @property
    def weights(self) -> dict:
        """The weights of the last scale (the ones of the finished image)."""
        return self.scales[-1].weights

    @property
    def first(self) -> ScalePlan:
        """The scale the engine starts at (G0 is made at its size)."""
        return next(s for s in self.scales if s.steps or s is self.scales[-1])

    def scale(self, index: int) -> ScalePlan:
        """The scale with this 1-based index."""
        return self.scales[int(index) - 1]

    def weighted(self, record: dict) -> dict:
        """One step's record as what each part adds to J (:func:`weighted_record`), with the weights of
        the record's scale."""
        return weighted_record(record, self.scale(record.get("scale", len(self.scales))).weights)

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "scales": [s.to_dict() for s in self.scales], "device": self.device,
                "dtype": self.dtype, "backbone": self.backbone, "content_layer": self.content_layer,
                "style_layers": list(self.style_layers), "start": self.start, "steps": self.steps}


def weighted_record(record: dict, weights: dict) -> dict:
    """``{"step", "content": alpha J_content, "style": beta J_style, "tv": w_tv TV, "total": J}`` of one step:
    :func:`teachkit.costs.weighted_terms` with the weights the engine multiplied at that step (e.g.
    ``Progress.weights``), and the J the engine recorded.  The data of every cost chart; the parts
    add up to ``total``."""
    parts = costs.weighted_terms(record, weights["alpha"], weights["beta"], weights["tv_weight"])
    return {"step": record.get("step"), **parts, "total": record.get("total")}


@dataclass
class TransferResult:
    """What :func:`transfer` returns.

    ``image`` the result (PIL RGB; on an early stop the latest iterate, at the resolution of the
    scale it was working on), ``tensor`` the same as ``(1, 3, H, W)`` float in [0, 1], ``history``
    one dict per step (``step`` counted over all scales, ``scale`` 1-based index, ``size`` its long
    side in px, ``elapsed`` seconds since the start, and every cost term), ``costs`` the terms of
    the returned image, ``config`` the resolved config, ``stopped`` whether it ended early,
    ``stop_reason`` why (None, ``'time_limit'``, or ``'stopped'``: the callback, the stop event or
    Ctrl-C), ``seconds`` the wall time, ``plan`` the :class:`TransferPlan` it ran, ``weights`` the
    weights J used at the last scale (``plan.weights``).  ``steps_done`` of ``steps_planned``.
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
    plan: TransferPlan | None = None
    stop_reason: str | None = None
    time_limit: float | None = None

    @property
    def steps_done(self) -> int:
        return len(self.history)

    @property
    def steps_planned(self) -> int:
        return self.plan.steps if self.plan is not None else self.config.steps

    @property
    def time_limited(self) -> bool:
        """Whether it stopped because its time limit ran out."""
        return self.stop_reason == "time_limit"

    def stop_message(self) -> Message | None:
        """"stopped at the time limit after N of M steps" as a message (None unless it did)."""
        if not self.time_limited:
            return None
        return Message("engine.time_limit", {"seconds": self.time_limit, "done": self.steps_done,
                                             "total": self.steps_planned})

    def weighted_history(self) -> list[dict]:
        """Every step as what each part adds to J, each with the weights of its own scale."""
        return [self.plan.weighted(r) for r in self.history]

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "backbone": self.backbone,
            "size": list(self.image.size),
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "steps": len(self.history),
            "costs": _json_safe(self.costs),
            "weights": self.weights,
            "plan": self.plan.to_dict() if self.plan is not None else None,
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


def load_inputs(content, styles, config: TransferConfig):
    """Load (and check) the content and style images as PIL RGB images, before any long work.

    ``content``: a PIL image, a path or sample name, a tensor, ...; ``styles``: one or a list.
    Returns ``(content_pil, [style_pil, ...])``; the content has the config's size.
    """
    return _load_inputs(content, styles, config)[:2]


def _load_inputs(content, styles, config: TransferConfig):
    """:func:`load_inputs` and the config with a missing size filled in from the content."""
    from .samples import resolve_image

    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not styles:
        raise ConfigError("transfer.no_style_image")
    c, config = _load_content(content, config)
    style_side = max(16, round(max(c.size) * float(config.style_scale)))
    return c, [resolve_image(x, style_side, name="<style>") for x in styles], config


def _content_at(content_pil, side: int):
    """The content photo at long side ``side`` (as every scale of the engine sees it)."""
    from .images import resize_long_side

    return content_pil if side == max(content_pil.size) else resize_long_side(content_pil, side)


def _load_content(content, config: TransferConfig):
    """The content as a PIL image at the config's size, and the config with a missing size filled in
    from it (the one place ``size=None`` becomes a number)."""
    from .images import resize_long_side
    from .samples import resolve_image

    c = resolve_image(content, config.size, name="<content>")
    if config.size is None:
        return c, dataclasses.replace(config, size=max(c.size))
    if max(c.size) != config.size:
        c = resize_long_side(c, int(config.size))
    return c, config


def initial_image(content, config: TransferConfig | None = None):
    """The engine's starting image G0 for ``content`` and ``config``, as a PIL image, at the size of the
    engine's first scale (e.g. 128 px for the ``quick`` preset's 256 px): white noise, the photo or the
    two blended (``config.init``), seeded by ``config.seed`` -- exactly what step 1 starts from.
    No network pass (cheap enough for a page to show at once)."""
    from .images import to_pil, to_tensor

    content_pil, cfg = _load_content(content, config or TransferConfig())
    cfg = cfg.resolved()
    first = next(s for s, n in zip(cfg.scales, _scale_steps(cfg)) if n or s == cfg.scales[-1])
    base = to_tensor(_content_at(content_pil, first))
    if not cfg.preserve_color:
        return to_pil(start_tensor(base, cfg).clamp(0, 1))
    yiq = rgb_to_yiq(base)
    y0 = start_tensor(yiq[:, :1], cfg).clamp(0, 1)
    return to_pil(yiq_to_rgb(torch.cat([y0, yiq[:, 1:]], dim=1)).clamp(0, 1))


def _scale_steps(cfg: TransferConfig) -> list[int]:
    """Steps per scale of a resolved config (``scale_steps``, else :func:`split_steps`)."""
    return list(cfg.scale_steps) if cfg.scale_steps is not None else split_steps(cfg.steps, cfg.scales)


class Engine:
    """One style-transfer job, resolved once: images loaded and checked, config resolved, network and
    precision chosen, every scale's targets and weights computed -- the :class:`TransferPlan` --, then
    run (:meth:`run`).  :func:`transfer` is ``Engine(...).run(...)``; :func:`plan` is ``Engine(...).plan``.

    ``content``, ``styles``, ``config``, ``backbone`` and ``cost_functions`` as for :func:`transfer`.
    Making the plan costs one forward pass of each image per scale (the targets, which the run
    needs anyway and then reuses); no optimisation step.
    """

    def __init__(self, content, styles, config: TransferConfig | None = None, *, backbone=None,
                 cost_functions: costs.CostFunctions | None = None):
        from .images import resize_long_side, to_tensor

        self.t0 = time.perf_counter()
        content_pil, style_pils, cfg0 = _load_inputs(content, styles, config or TransferConfig())
        self.setup = setup = Setup.make(cfg0, len(style_pils), backbone, cost_functions, stacklevel=3)
        cfg = setup.config
        self._targets: list[ScaleTargets | None] = []
        scales = []
        for k, (side, n) in enumerate(zip(cfg.scales, _scale_steps(cfg)), start=1):
            if n == 0 and k < len(cfg.scales):  # skipped: no targets
                self._targets.append(None)
                continue
            c = to_tensor(_content_at(content_pil, side))
            s_side = max(16, round(side * float(cfg.style_scale)))
            s = [to_tensor(x if max(x.size) == s_side else resize_long_side(x, s_side)) for x in style_pils]
            t = setup.targets(c, s)
            self._targets.append(t)
            scales.append(ScalePlan(k, side, t.height, t.width, n, pyramid_levels(cfg, t.height, t.width),
                                    _json_weights(t.weights)))
        self.plan = TransferPlan(
            config=cfg, scales=tuple(scales), device=str(setup.net.device),
            dtype="bfloat16" if setup.autocast_dtype == torch.bfloat16 else "float32",
            dtype_warning=setup.dtype_warning, backbone=getattr(setup.net, "weights_id", ""),
            content_layer=setup.content_layer, style_layers=setup.style_layers, start=cfg.init,
        )

    def _scale(self, sp: ScalePlan, init: torch.Tensor | None, generator) -> StyleTransfer:
        return StyleTransfer(None, None, init=init, generator=generator, time_origin=self.t0,
                             targets=self._targets[sp.index - 1])

    def run(self, *, callback: ProgressCallback | None = None, stop: threading.Event | None = None,
            time_limit: float | None = None) -> TransferResult:
        """Run the plan (once: each scale's targets are handed to its StyleTransfer): one
        :class:`StyleTransfer` per scale, each started from the previous scale's result (upsampled),
        the first from G0.  See :func:`transfer`."""
        from .images import to_pil

        plan, cfg = self.plan, self.plan.config
        deadline = None if time_limit is None else time.perf_counter() + float(time_limit)
        generator = torch.Generator().manual_seed(int(cfg.seed))
        history: list[dict] = []
        reason: str | None = None
        st: StyleTransfer | None = None
        running: StyleTransfer | None = None  # the scale whose steps are not yet in history
        n_scales = len(cfg.scales)
        sp = plan.first
        try:
            for sp in plan.scales:
                if stop is not None and stop.is_set():
                    reason = "stopped"
                    break
                st = running = self._scale(sp, st.optimised() if st is not None else None, generator)
                self._targets[sp.index - 1] = None  # its StyleTransfer holds them now
                records, reason = run_steps(
                    st, sp.steps, callback=callback, stop=stop,
                    message=Message("progress.scale", k=sp.index, n=n_scales, side=sp.size),
                    preview_every=cfg.preview_every, preview_last=sp.index == n_scales, done=len(history),
                    total=plan.steps, deadline=deadline, scale=sp.index,
                )
                history += [dict(r, scale=sp.index) for r in records]
                running = None
                if reason:
                    if sp.index == n_scales and len(records) == sp.steps:  # asked at the very last step
                        reason = None
                    break
        except KeyboardInterrupt:
            reason = "stopped"
            if running is not None:  # keep the records of the steps the interrupted scale took
                base = len(history)
                history += [dict(r, step=base + j, scale=sp.index) for j, r in enumerate(running.history, start=1)]
        if st is None:  # stopped before the first step
            st = self._scale(plan.first, None, generator)
        tensor = st.tensor()
        return TransferResult(
            image=to_pil(tensor), tensor=tensor, history=history, config=cfg, stopped=reason is not None,
            seconds=time.perf_counter() - self.t0, costs=st.costs(), backbone=plan.backbone,
            weights=_json_weights(st.weights), plan=plan, stop_reason=reason, time_limit=time_limit,
        )


def plan(content, styles, config: TransferConfig | None = None, *, backbone=None,
         cost_functions: costs.CostFunctions | None = None) -> TransferPlan:
    """The :class:`TransferPlan` that :func:`transfer` would run for these images and config (scales,
    steps, the weights J multiplies at each scale, dtype, device, the start), without running it."""
    return Engine(content, styles, config, backbone=backbone, cost_functions=cost_functions).plan


def transfer(
    content,
    styles,
    config: TransferConfig | None = None,
    *,
    callback: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    backbone=None,
    time_limit: float | None = None,
    cost_functions: costs.CostFunctions | None = None,
) -> TransferResult:
    """Run style transfer (coarse-to-fine by default) and return a :class:`TransferResult`.

    ``content``: PIL image / path / sample name / tensor; ``styles``: one of these or a list.
    ``callback(Progress)`` is called after every step with ``values`` = the cost terms, ``image`` =
    the current image every ``config.preview_every`` steps, ``msg`` = "scale i/k: N px", ``scale`` /
    ``size`` the scale's index and long side and ``weights`` the weights J multiplies there; if it
    returns True, or ``stop`` is set, or the user presses Ctrl-C, or ``time_limit`` seconds have
    passed, the job stops and returns the latest image with ``stopped=True`` (``stop_reason``
    'stopped' or 'time_limit', ``steps_done`` of ``steps_planned``).  ``backbone``: an already
    loaded FeatureExtractor.  ``cost_functions``: a student's own :class:`teachkit.costs.CostFunctions`.

    Coarse-to-fine: one :class:`StyleTransfer` per scale in ``config.scales`` (default
    :func:`default_scales`), each started from the previous scale's result, upsampled; the
    first one starts from ``config.init``.  The steps are shared by :func:`split_steps` (or given per
    scale by ``config.scale_steps``).  The whole plan is ``result.plan`` (:class:`TransferPlan`).
    """
    engine = Engine(content, styles, config, backbone=backbone, cost_functions=cost_functions)
    return engine.run(callback=callback, stop=stop, time_limit=time_limit)


def _json_weights(w: dict) -> dict:
    return {"alpha": float(w["alpha"]), "beta": float(w["beta"]), "tv_weight": float(w["tv_weight"]),
            "layer_weights": {l: float(v) for l, v in w["layer_weights"].items()}}
