r"""The cost functions of neural style transfer, each written once, with its formula.

Notation (the lecture's): ``a[l]`` is the activation of layer ``l``, a volume of ``n_H x n_W x n_C``
numbers; in PyTorch it has shape ``(N, n_C, n_H, n_W)``.  ``C`` is the content image, ``S`` the style
image and ``G`` the image being generated.

* content cost  ``J_content(C, G) = 1/2 * || a[l](C) - a[l](G) ||^2``
* Gram matrix   ``G[l]_kk' = sum_i sum_j a[l]_ijk * a[l]_ijk'``
* style cost    ``J_style[l](S, G) = 1 / (2 n_H n_W n_C) * || G[l](S) - G[l](G) ||_F^2``
* all layers    ``J_style(S, G) = sum_l lambda[l] * J_style[l](S, G)``
* the total     ``J(G) = alpha * J_content(C, G) + beta * J_style(S, G) (+ w_tv * TV(G))``

Normalisation
-------------
The constant in front of each cost is a choice; the lecture notes say so too, since alpha, beta
and lambda[l] can absorb it.  Four are offered:

``auto`` (default)
    the ``lecture`` costs, with ``alpha`` and ``lambda[l]`` chosen from the targets so that every
    term is measured against its own size (:func:`auto_weights`)::

        alpha_eff     = alpha / J_content(C, 0)     = alpha / (1/2 ||a[l](C)||^2)
        lambda_eff[l] = w[l]  / J_style[l](S, C)    = w[l] * 2 n_H n_W n_C / ||G[l](S) - G[l](C)||_F^2
        w_tv_eff      = w_tv  / (n_C n_H n_W of the image)

    ``J(C, 0)`` is the cost of an all-zero activation, ``J_style[l](S, C)`` the style cost of the
    content photo itself: each weighted term is then a pure number (the relative change of the
    content; the share of the way from the photo's style to S's still to go, 1 for G = C), so one set
    of ``alpha``, ``beta``, ``w[l]`` fits every pair.  Without a content term (``alpha = 0``) style is
    measured against ``J_style[l](S, 0)``; the distance is floored at ``REFERENCE_FLOOR * ||G[l](S)||^2``.
``lecture``
    content ``1/2``; style ``1 / (2 n_H n_W n_C)`` -- the formulas above.
``gatys``
    content ``1/2`` (Gatys et al. 2016); style ``1 / (4 n_C^2 (n_H n_W)^2)``.
``none``
    content ``1``; style ``1``: plain sums of squares.

For one layer, ``gatys`` style cost = ``lecture`` style cost * ``1 / (2 n_C n_H n_W)`` and
``none`` = ``lecture`` * ``2 n_H n_W n_C``: a constant factor per layer (see :func:`style_factor`);
``auto`` has the ``lecture`` constants (only its weights differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .messages import InputError, TeachkitError

__all__ = [
    "NORMALIZATIONS",
    "CostFunctions",
    "check_normalization",
    "weighted_record",
    "style_target",
    "gram_matrix",
    "content_cost",
    "style_factor",
    "style_layer_cost",
    "style_cost",
    "total_variation",
    "total_cost",
    "auto_weights",
]

NORMALIZATIONS = ("auto", "lecture", "gatys", "none")

#: auto_weights with a style reference: ``||G(S) - G(C)||^2`` is floored at this share of ``||G(S)||^2``
#: (a content photo whose style nearly equals S's at a layer must not give that layer an enormous weight)
REFERENCE_FLOOR = 1e-2


def _f32(t: torch.Tensor) -> torch.Tensor:
    """At least float32: half/bfloat16 are upcast, float64 is kept (so gradcheck can run in double)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def check_normalization(normalization: str) -> None:
    """An InputError (a ValueError) unless ``normalization`` is one of :data:`NORMALIZATIONS`: the one
    check (gram.py and the transfer config call it too)."""
    if normalization not in NORMALIZATIONS:
        raise InputError("config.choice", name="normalization", choices=", ".join(NORMALIZATIONS),
                         value=repr(normalization))


class _Gram(torch.autograd.Function):
    """``F F^T`` with a one-product backward: both factors are F, so the gradient is ``(dG + dG^T) F``
    (autograd would take two ``(n_C x n_C) @ (n_C x M)`` products)."""

    @staticmethod
    def forward(ctx, f):
        ctx.save_for_backward(f)
        return f @ f.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad):
        (f,) = ctx.saved_tensors
        return (grad + grad.transpose(-1, -2)) @ f


def gram_matrix(a: torch.Tensor) -> torch.Tensor:
    r"""The style (Gram) matrix of one layer: ``G_kk' = sum_i sum_j a_ijk a_ijk'``.

    Entry ``(k, k')`` sums, over every position ``(i, j)`` of the layer, the product of channel ``k``
    and channel ``k'``: large when the two channels fire at the same places.

    ``a`` has shape ``(n_C, n_H, n_W)`` or ``(N, n_C, n_H, n_W)``; the result is ``(n_C, n_C)`` or
    ``(N, n_C, n_C)``.  Always computed in float32 or float64 (even under bfloat16 autocast), since the sums
    run over many positions.
    """
    if a.dim() not in (3, 4):
        raise ValueError(f"expected an activation of shape (N, C, H, W) or (C, H, W), got {tuple(a.shape)}")
    with torch.autocast(device_type=a.device.type, enabled=False):
        f = _f32(a).flatten(-2)  # (..., n_C, n_H * n_W)
        return _Gram.apply(f)


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor, normalization: str = "lecture") -> torch.Tensor:
    r"""``J_content(C, G) = 1/2 * || a[l](C) - a[l](G) ||^2`` (sum over every element).

    With ``normalization='none'`` the factor 1/2 is dropped.  Computed in float32.
    """
    check_normalization(normalization)
    if a_C.shape != a_G.shape:
        raise ValueError(f"content activations differ in shape: {tuple(a_C.shape)} vs {tuple(a_G.shape)}")
    with torch.autocast(device_type=a_G.device.type, enabled=False):
        sq = (_f32(a_C) - _f32(a_G)).pow(2).sum()
    return sq if normalization == "none" else 0.5 * sq


def style_factor(n_H: int, n_W: int, n_C: int, normalization: str = "lecture") -> float:
    r"""The constant in front of ``||G[l](S) - G[l](G)||_F^2`` for one layer.

    ``lecture`` and ``auto``: ``1 / (2 n_H n_W n_C)``; ``gatys``: ``1 / (4 n_C^2 (n_H n_W)^2)``;
    ``none``: ``1``.
    """
    check_normalization(normalization)
    if normalization in ("lecture", "auto"):
        return 1.0 / (2.0 * n_H * n_W * n_C)
    if normalization == "gatys":
        return 1.0 / (4.0 * n_C**2 * (n_H * n_W) ** 2)
    return 1.0


def style_layer_cost(
    gram_S: torch.Tensor, a_G: torch.Tensor, normalization: str = "lecture", gram_G: torch.Tensor | None = None
) -> torch.Tensor:
    r"""``J_style[l](S, G) = 1 / (2 n_H n_W n_C) * || G[l](S) - G[l](G) ||_F^2`` (for ``lecture``).

    ``gram_S`` is the target Gram matrix (style image, already computed); ``a_G`` the activation of the
    generated image at the same layer, whose ``n_H, n_W, n_C`` set the constant (see
    :func:`style_factor`).  ``gram_G`` may be passed when already computed from ``a_G``.
    """
    n_C, n_H, n_W = a_G.shape[-3:]
    if gram_G is None:
        gram_G = gram_matrix(a_G)
    if gram_S.shape[-2:] != gram_G.shape[-2:]:
        raise ValueError(f"Gram matrices differ in shape: {tuple(gram_S.shape)} vs {tuple(gram_G.shape)}")
    diff = (_f32(gram_S) - _f32(gram_G)).pow(2).sum()
    return style_factor(n_H, n_W, n_C, normalization) * diff


def style_target(gram_S: torch.Tensor, positions_S: int, positions_G: int) -> torch.Tensor:
    r"""``G[l](S) * M_G / M_S``: the style target for an image ``G`` with another number of positions.

    A Gram matrix sums over the ``M = n_H n_W`` positions of its layer, so a style image and ``G`` of
    different sizes could never match; scaled by ``M_G / M_S`` (the exact feature-map sizes) they can.
    Returned unchanged when the two numbers agree.
    """
    m_S, m_G = int(positions_S), int(positions_G)
    if m_S < 1 or m_G < 1:
        raise ValueError(f"numbers of positions must be >= 1, not M_S={positions_S!r}, M_G={positions_G!r}")
    return gram_S if m_S == m_G else gram_S / m_S * m_G


def style_cost(
    grams_S: Mapping[str, torch.Tensor],
    feats_G: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    normalization: str = "lecture",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""``J_style(S, G) = sum_l lambda[l] * J_style[l](S, G)``.

    ``grams_S`` maps layer -> target Gram, ``feats_G`` layer -> activation of G, ``weights`` layer ->
    ``lambda[l]``.  Returns the weighted sum and the unweighted ``J_style[l]`` of every layer.
    """
    terms = {l: style_layer_cost(grams_S[l], feats_G[l], normalization) for l in weights}
    total = sum(float(weights[l]) * terms[l] for l in terms)
    if not terms:
        total = torch.zeros(())
    return total, terms


def total_variation(image: torch.Tensor) -> torch.Tensor:
    r"""``TV(G) = sum_ij (G_{i+1,j} - G_ij)^2 + (G_{i,j+1} - G_ij)^2``, summed over channels.

    A smoothness prior: it penalises differences between neighbouring pixels, which removes the
    high-frequency noise that the network cannot see.
    """
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return _f32(dy).pow(2).sum() + _f32(dx).pow(2).sum()


def total_cost(
    j_content: torch.Tensor | float,
    j_style: torch.Tensor | float,
    alpha: float,
    beta: float,
    tv: torch.Tensor | float = 0.0,
    tv_weight: float = 0.0,
):
    r"""``J(G) = alpha * J_content(C, G) + beta * J_style(S, G) + w_tv * TV(G)``."""
    return alpha * j_content + beta * j_style + tv_weight * tv


def auto_weights(
    content_target: torch.Tensor | None,
    style_targets: Mapping[str, torch.Tensor],
    style_shapes: Mapping[str, tuple[int, int, int]],
    image_shape: tuple[int, ...],
    alpha: float,
    layer_weights: Mapping[str, float],
    tv_weight: float,
    style_reference: Mapping[str, torch.Tensor] | None = None,
) -> dict:
    r"""The weights of the ``auto`` normalisation (see the module docstring).

    ``alpha_eff = alpha / (1/2 ||a[l](C)||^2)``,
    ``lambda_eff[l] = w[l] * 2 n_H n_W n_C / max(||G[l](S) - G[l](C)||_F^2, REFERENCE_FLOOR ||G[l](S)||_F^2)``
    (without ``style_reference``: ``w[l] * 2 n_H n_W n_C / ||G[l](S)||_F^2``) and
    ``w_tv_eff = w_tv / numel(image)``.

    ``content_target`` is ``a[l](C)`` (None: no content term, alpha_eff = 0), ``style_targets``
    maps layer -> ``G[l](S)`` (already at the generated image's number of positions),
    ``style_shapes`` layer -> ``(n_C, n_H, n_W)`` of the *generated* image's activation,
    ``image_shape`` the generated image's shape, ``layer_weights`` layer -> ``w[l]``,
    ``style_reference`` layer -> ``G[l](C)``, the content photo's Gram matrices (same size).
    Returns ``{"alpha": alpha_eff, "layer_weights": {layer: lambda_eff}, "tv_weight": w_tv_eff}``.
    A target of zero size (an image that excites nothing at that layer) is a ValueError.
    """
    out: dict = {"alpha": 0.0, "layer_weights": {}, "tv_weight": 0.0}
    if content_target is not None and alpha != 0:
        ref = float(content_cost(content_target, torch.zeros_like(content_target), "lecture"))
        if not ref > 0:
            raise InputError("transfer.content_all_zero")
        out["alpha"] = float(alpha) / ref
    for l, w in layer_weights.items():
        if w == 0:
            out["layer_weights"][l] = 0.0
            continue
        n_C, n_H, n_W = style_shapes[l]
        size = float(_f32(style_targets[l]).pow(2).sum())
        if style_reference is not None and size > 0:
            far = float((_f32(style_targets[l]) - _f32(style_reference[l])).pow(2).sum())
            size = max(far, REFERENCE_FLOOR * size)
        if not size > 0:
            raise InputError("transfer.style_all_zero", layer=l)
        out["layer_weights"][l] = float(w) / (style_factor(n_H, n_W, n_C, "lecture") * size)
    n = 1
    for d in image_shape:
        n *= int(d)
    out["tv_weight"] = float(tv_weight) / n
    return out


def weighted_record(record: Mapping, weights: Mapping) -> dict:
    r"""One step's record as what each part adds to ``J(G) = alpha J_content + beta J_style + w_tv TV``:
    ``{"step", "content": alpha J_content, "style": beta J_style, "tv": w_tv TV, "total": J}`` and, for each
    ``style/<layer>`` of the record, ``beta lambda[l] J_style[l]``.

    ``record`` holds the engine's unweighted terms, ``weights`` the ones it multiplied at that step
    (``TransferPlan``, ``Progress.weights``): the data of every cost chart; the parts add up to ``total``.
    A part whose weight is 0 is 0 (the engine may not have computed its term: ``nan``/``None``).
    """
    def part(key: str, weight: float) -> float:
        v = record.get(key)
        return 0.0 if not weight or v is None else float(weight) * float(v)

    beta, lam = weights["beta"], weights["layer_weights"]
    out = {"step": record.get("step"), "content": part("content", weights["alpha"]), "style": part("style", beta),
           "tv": part("tv", weights["tv_weight"]), "total": record.get("total")}
    for key in record:
        if key.startswith("style/"):
            out[key] = part(key, float(beta) * float(lam.get(key[len("style/"):], 0.0)))
    return out


def _layer_style_cost(a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
    """``J_style[l]`` from the two activations (the lecture's normalisation): the reference
    ``CostFunctions.layer_style_cost``."""
    return style_layer_cost(gram_matrix(a_S), a_G, "lecture")


@dataclass(frozen=True)
class CostFunctions:
    r"""A student's own cost functions, run by teachkit's one optimisation loop in place of its own.

    Pass one to :class:`teachkit.transfer.StyleTransfer` or :func:`teachkit.transfer.transfer` as
    ``cost_functions=``.  Every field is optional; ``None`` means teachkit's own function.  Every
    activation handed over is a float32 tensor in the engine's layout ``(1, n_C, n_H, n_W)`` (the
    lecture's ``n_H x n_W x n_C`` volume, channels first); every function must return a 0-dim tensor
    (or ``(n_C, n_C)`` for ``gram_matrix``) built from torch operations, so that the gradient flows
    back to the pixels.  The functions compute the lecture's formulas (``lecture`` constants), so the
    config's normalisation must be ``'lecture'`` or ``'auto'``.

    ``content_cost(a_C, a_G) -> J_content``
        ``1/2 ||a[l](C) - a[l](G)||^2``; ``a_C`` the content target, ``a_G`` G's activation.
    ``gram_matrix(a) -> G``
        ``G_kk' = sum_ij a_ijk a_ijk'``, shape ``(n_C, n_C)`` (``(1, n_C, n_C)`` is accepted too).
        Used for the style targets (every style image) and for G's Gram matrices; the engine still
        scales a style image's Gram matrix by ``M_G / M_S`` and applies the ``lecture`` constant.
    ``layer_style_cost(a_S, a_G) -> J_style[l]``
        ``1 / (2 n_H n_W n_C) ||G[l](S) - G[l](G)||_F^2`` from the two activations.  When given, the
        engine resizes the style image to G's working size (so ``a_S`` and ``a_G`` have the same
        shape) and keeps its activation at each style layer; one style image only.  It then uses
        neither its own nor the student's ``gram_matrix`` for J (only for ``auto``'s weights).
    ``style_cost(a_S, a_G, lambdas) -> J_style``
        ``sum_l lambda[l] J_style[l]`` over lists (one entry per style layer), in place of the engine's
        weighted sum; it gets the style image's activations as ``layer_style_cost`` does.
    ``total_cost(J_content, J_style, alpha, beta) -> J``
        ``alpha J_content + beta J_style``, where ``J_style = sum_l lambda[l] J_style[l]`` (the
        engine weighs the layers) and the weights are the effective ones (``auto``: derived from the
        targets).  The engine adds ``w_tv TV(G)`` to what it returns.

    ``CostFunctions.reference()`` holds teachkit's own functions in these signatures: with it the
    result equals a run without ``cost_functions`` (same seed, same steps) to float tolerance.
    """

    content_cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    gram_matrix: Callable[[torch.Tensor], torch.Tensor] | None = None
    layer_style_cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    total_cost: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor] | None = None
    style_cost: Callable[[list, list, list], torch.Tensor] | None = None

    @classmethod
    def reference(cls) -> "CostFunctions":
        """teachkit's own functions, in the signatures above (the oracle for a student's)."""
        return cls(content_cost=content_cost, gram_matrix=gram_matrix, layer_style_cost=_layer_style_cost,
                   total_cost=total_cost)

    @property
    def custom(self) -> bool:
        """Whether any function replaces teachkit's own."""
        return any(f is not None for f in vars(self).values())

    # the engine's calls: the student's function, its result checked to be a tensor
    def content(self, a_C: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.content_cost(a_C, a_G), "content_cost")

    def layer_style(self, a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.layer_style_cost(a_S, a_G), "layer_style_cost")

    def style(self, a_S: list, a_G: list, lambdas: list) -> torch.Tensor:
        return _as_tensor(self.style_cost(a_S, a_G, lambdas), "style_cost")

    def total(self, j_content, j_style, alpha: float, beta: float) -> torch.Tensor:
        return _as_tensor(self.total_cost(j_content, j_style, alpha, beta), "total_cost")

    def gram(self, a: torch.Tensor) -> torch.Tensor:
        """``G[l]`` of ``a`` ``(1, n_C, n_H, n_W)`` as ``(n_C, n_C)`` float32, by the student's function or
        teachkit's."""
        n_C = a.shape[-3]
        if self.gram_matrix is None:
            return gram_matrix(a).reshape(n_C, n_C)
        with torch.autocast(device_type=a.device.type, enabled=False):
            return _as_tensor(self.gram_matrix(_f32(a)), "gram_matrix").float().reshape(n_C, n_C)


class CostFunctionError(TeachkitError, TypeError):
    """An own cost function returned something the engine cannot use: an id + parameters."""


def _as_tensor(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CostFunctionError("engine.cost_function_result", name=name, kind=type(value).__name__)
    return value
