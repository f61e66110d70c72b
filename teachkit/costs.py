r"""The cost functions of neural style transfer, each written once with its formula in its docstring.

Notation (the lecture's): ``a[l]`` is layer ``l``'s activation, ``n_H x n_W x n_C`` numbers, in PyTorch
``(N, n_C, n_H, n_W)``; ``C`` the content, ``S`` the style, ``G`` the generated image.  The constant in
front of each cost is a choice (alpha, beta, lambda[l] absorb it); :data:`NORMALIZATIONS`:

* ``lecture``: content ``1/2``, style ``1 / (2 n_H n_W n_C)``; ``gatys``: content ``1/2``, style
  ``1 / (4 n_C^2 (n_H n_W)^2)``; ``none``: both ``1`` (see :func:`style_factor`).
* ``auto`` (default): the ``lecture`` costs, with weights measured against each term's own size
  (:func:`auto_weights`), so that one set of alpha, beta, w[l] fits every pair of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .messages import InputError, TeachkitError

__all__ = [
    "NORMALIZATIONS", "CostFunctions", "check_normalization", "weighted_record", "style_target", "gram_matrix",
    "content_cost", "style_factor", "style_layer_cost", "style_cost", "total_variation", "total_cost", "auto_weights",
]

NORMALIZATIONS = ("auto", "lecture", "gatys", "none")

#: auto_weights floors ``||G(S) - G(C)||^2`` at this share of ``||G(S)||^2`` (a photo whose style nearly
#: equals S's at a layer must not give that layer an enormous weight)
REFERENCE_FLOOR = 1e-2


def _f32(t: torch.Tensor) -> torch.Tensor:
    """At least float32: half/bfloat16 are upcast, float64 is kept (so gradcheck can run in double)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def check_normalization(normalization: str) -> None:
    """An InputError (a ValueError) unless ``normalization`` is one of :data:`NORMALIZATIONS`."""
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
    r"""The style (Gram) matrix ``G[l]_kk' = sum_i sum_j a[l]_ijk a[l]_ijk'``: large where channels k and k'
    fire at the same places.  ``(N,) n_C, n_H, n_W`` -> ``(N,) n_C, n_C``, in float32 even under autocast."""
    if a.dim() not in (3, 4):
        raise ValueError(f"expected an activation of shape (N, C, H, W) or (C, H, W), got {tuple(a.shape)}")
    with torch.autocast(device_type=a.device.type, enabled=False):
        f = _f32(a).flatten(-2)  # (..., n_C, n_H * n_W)
        return _Gram.apply(f)


def content_cost(a_C: torch.Tensor, a_G: torch.Tensor, normalization: str = "lecture") -> torch.Tensor:
    r"""``J_content(C, G) = 1/2 * || a[l](C) - a[l](G) ||^2`` (``'none'``: without the 1/2), in float32."""
    check_normalization(normalization)
    if a_C.shape != a_G.shape:
        raise ValueError(f"content activations differ in shape: {tuple(a_C.shape)} vs {tuple(a_G.shape)}")
    with torch.autocast(device_type=a_G.device.type, enabled=False):
        sq = (_f32(a_C) - _f32(a_G)).pow(2).sum()
    return sq if normalization == "none" else 0.5 * sq


def style_factor(n_H: int, n_W: int, n_C: int, normalization: str = "lecture") -> float:
    r"""The constant in front of ``||G[l](S) - G[l](G)||_F^2`` under each normalisation."""
    check_normalization(normalization)
    if normalization in ("lecture", "auto"):
        return 1.0 / (2.0 * n_H * n_W * n_C)
    if normalization == "gatys":
        return 1.0 / (4.0 * n_C**2 * (n_H * n_W) ** 2)
    return 1.0


def style_layer_cost(
    gram_S: torch.Tensor, a_G: torch.Tensor, normalization: str = "lecture", gram_G: torch.Tensor | None = None
) -> torch.Tensor:
    r"""``J_style[l](S, G) = 1 / (2 n_H n_W n_C) * || G[l](S) - G[l](G) ||_F^2`` (``lecture``; the shape of
    ``a_G`` sets the constant); ``gram_G`` when already computed from ``a_G``."""
    n_C, n_H, n_W = a_G.shape[-3:]
    if gram_G is None:
        gram_G = gram_matrix(a_G)
    if gram_S.shape[-2:] != gram_G.shape[-2:]:
        raise ValueError(f"Gram matrices differ in shape: {tuple(gram_S.shape)} vs {tuple(gram_G.shape)}")
    diff = (_f32(gram_S) - _f32(gram_G)).pow(2).sum()
    return style_factor(n_H, n_W, n_C, normalization) * diff


def style_target(gram_S: torch.Tensor, positions_S: int, positions_G: int) -> torch.Tensor:
    r"""``G[l](S) * M_G / M_S``: a Gram matrix sums over ``M = n_H n_W`` positions, so a style image of
    another size is matched once scaled to G's number of positions."""
    m_S, m_G = int(positions_S), int(positions_G)
    if m_S < 1 or m_G < 1:
        raise ValueError(f"numbers of positions must be >= 1, not M_S={positions_S!r}, M_G={positions_G!r}")
    return gram_S if m_S == m_G else gram_S / m_S * m_G


def style_cost(grams_S: Mapping[str, torch.Tensor], feats_G: Mapping[str, torch.Tensor], weights: Mapping[str, float],
               normalization: str = "lecture") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""``J_style(S, G) = sum_l lambda[l] * J_style[l](S, G)`` (``weights``: layer -> lambda[l]), and each
    unweighted ``J_style[l]``."""
    terms = {l: style_layer_cost(grams_S[l], feats_G[l], normalization) for l in weights}
    total = sum(float(weights[l]) * terms[l] for l in terms)
    if not terms:
        total = torch.zeros(())
    return total, terms


def total_variation(image: torch.Tensor) -> torch.Tensor:
    r"""``TV(G) = sum_ij (G_{i+1,j} - G_ij)^2 + (G_{i,j+1} - G_ij)^2`` over channels: a smoothness prior
    against the high-frequency noise the network cannot see."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return _f32(dy).pow(2).sum() + _f32(dx).pow(2).sum()


def total_cost(j_content: torch.Tensor | float, j_style: torch.Tensor | float, alpha: float, beta: float,
               tv: torch.Tensor | float = 0.0, tv_weight: float = 0.0):
    r"""``J(G) = alpha * J_content(C, G) + beta * J_style(S, G) + w_tv * TV(G)``."""
    return alpha * j_content + beta * j_style + tv_weight * tv


def auto_weights(content_target: torch.Tensor | None, style_targets: Mapping[str, torch.Tensor],
                 style_shapes: Mapping[str, tuple[int, int, int]], image_shape: tuple[int, ...], alpha: float,
                 layer_weights: Mapping[str, float], tv_weight: float,
                 style_reference: Mapping[str, torch.Tensor] | None = None) -> dict:
    r"""The ``auto`` weights, each term measured against its own size (``J_content(C, 0)``, ``J_style[l](S, C)``)::

        alpha_eff = alpha / (1/2 ||a[l](C)||^2),   w_tv_eff = w_tv / numel(G)
        lambda_eff[l] = w[l] * 2 n_H n_W n_C / max(||G[l](S) - G[l](C)||_F^2, REFERENCE_FLOOR ||G[l](S)||_F^2)

    (``style_reference`` = ``G[l](C)``; without it, or without a content term, ``G[l](C)`` counts as 0).
    ``style_shapes`` are G's ``(n_C, n_H, n_W)``.  A target that is all zero is an InputError.
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
    out["tv_weight"] = float(tv_weight) / math.prod(int(d) for d in image_shape)
    return out


def weighted_record(record: Mapping, weights: Mapping) -> dict:
    r"""One step's unweighted terms as what each adds to J with the ``weights`` of that step: ``content`` =
    alpha J_content, ``style`` = beta J_style, ``tv`` = w_tv TV, ``style/<l>`` = beta lambda[l] J_style[l], and
    ``step``, ``total``; a part of weight 0 is 0 (its term may be nan).  The data of every cost chart."""
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
    """``J_style[l]`` from the two activations: the reference ``CostFunctions.layer_style_cost``."""
    return style_layer_cost(gram_matrix(a_S), a_G, "lecture")


@dataclass(frozen=True)
class CostFunctions:
    r"""A student's own cost functions, which the one optimisation loop runs in place of teachkit's
    (``cost_functions=`` of :func:`teachkit.transfer.transfer`); ``None`` fields stay teachkit's.

    Each gets float32 activations ``(1, n_C, n_H, n_W)`` and returns a tensor built by torch operations
    (so the gradient reaches the pixels), with the ``lecture`` constants (normalisation 'lecture' or 'auto'):
    ``content_cost(a_C, a_G)``; ``gram_matrix(a) -> (n_C, n_C)`` (the engine still scales the style's by
    ``M_G / M_S``); ``layer_style_cost(a_S, a_G)`` (the style resized to G's size; one style image);
    ``style_cost(a_S, a_G, lambdas)`` over lists of layers; ``total_cost(J_content, J_style, alpha, beta)``
    with the effective weights (the engine adds ``w_tv TV``).  :meth:`reference` is teachkit's own set.
    """

    content_cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    gram_matrix: Callable[[torch.Tensor], torch.Tensor] | None = None
    layer_style_cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    total_cost: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor] | None = None
    style_cost: Callable[[list, list, list], torch.Tensor] | None = None

    @classmethod
    def reference(cls) -> "CostFunctions":
        """teachkit's own functions in these signatures (the oracle for a student's)."""
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
        """``G[l]`` of ``a`` as ``(n_C, n_C)`` float32, by the student's function or teachkit's."""
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
