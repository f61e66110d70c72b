r"""Style as correlation between channels: Gram matrices to look at, and their figures.

The lecture defines the style of an image at layer ``l`` as the Gram matrix of that layer::

    G[l]_kk' = sum_i sum_j a[l]_ijk * a[l]_ijk'          (costs.gram_matrix)

one number for every pair of channels ``(k, k')``: large when the two channels fire strongly *at the
same places*.  The sum runs over every position ``(i, j)``, so *where* things are is forgotten --
only *what fires together* is kept.  This module computes the Gram matrix and its relatives for
display, and draws them:

* :func:`layer_gram` -- ``G[l]`` of one image (``costs.gram_matrix``, nothing recomputed here);
* :func:`normalized_gram` -- ``G / (n_H n_W)``: the average over positions of ``a_k a_k'``, which
  does not grow with the image size;
* :func:`channel_correlation` -- the Pearson correlation of two channels across positions: the
  Gram matrix of the *centred* channels, normalised per position, divided by the two standard
  deviations (see the function for the exact relation);
* :func:`gram_figure`, :func:`gram_comparison_figure` -- heatmaps for one image (G and the
  correlation) or two (``G(S)``, ``G(G)``, their difference and ``J_style[l]``);
* :func:`pair_explainer`, :func:`pair_figure` -- one entry ``G_kk'`` taken apart: map ``k``, map
  ``k'``, their product, and the sum of the product, which *is* ``G_kk'``;
* :func:`shuffle_tiles`, :func:`position_blindness`, :func:`position_blindness_figure` -- shuffle the
  tiles of a picture: the Gram matrix hardly changes, the feature maps do;
* :func:`style_cost_bars_figure` -- ``J_style[l]`` per layer, e.g. during a transfer.

Images may be given as PIL images, ``(1, 3, H, W)`` / ``(3, H, W)`` tensors in ``[0, 1]``, or a sample
name / path (see :func:`teachkit.images.resolve_image`).  Every figure function returns a
``matplotlib.figure.Figure`` built without pyplot; the matching ``*_data`` style functions
(:func:`gram_comparison`, :func:`gram_summary`, ...) return the numbers behind it.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

from .costs import NORMALIZATIONS, gram_matrix, style_layer_cost

__all__ = [
    "to_input",
    "layer_activation",
    "layer_gram",
    "normalized_gram",
    "channel_correlation",
    "cluster_order",
    "select_channels",
    "gram_summary",
    "gram_figure",
    "gram_comparison",
    "gram_comparison_figure",
    "pair_explainer",
    "pick_pair",
    "most_correlated_pair",
    "least_correlated_pair",
    "pair_figure",
    "shuffle_tiles",
    "position_blindness",
    "position_blindness_figure",
    "style_values",
    "style_cost_bars_figure",
]


# ---- inputs ----------------------------------------------------------------------------------


def to_input(image, size: int | None = None, device=None) -> torch.Tensor:
    """Any image the package accepts -> a ``(1, 3, H, W)`` float tensor in ``[0, 1]``.

    ``image`` is a PIL image, a tensor ``(3, H, W)`` / ``(1, 3, H, W)`` with values in ``[0, 1]``, or a
    sample name / path (:func:`teachkit.images.resolve_image`).  ``size`` scales the long side
    (``None`` keeps the size).  Raises ``ImageError`` / ``ValueError`` for bad input.
    """
    from PIL import Image

    from . import images

    if isinstance(image, torch.Tensor):
        x = image.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected one RGB image of shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        if not torch.is_floating_point(x):
            raise ValueError(f"expected a float image tensor with values in [0, 1], got dtype {x.dtype}")
        x = x.float()
        if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3 or not torch.isfinite(x).all()):
            raise ValueError("image tensor values must lie in [0, 1]")
        x = x.clamp(0, 1)
        if size is not None:
            h, w = x.shape[-2:]
            s = size / max(h, w)
            new = (max(1, round(h * s)), max(1, round(w * s)))
            if new != (h, w):
                x = torch.nn.functional.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
                x = x.clamp(0, 1)
    else:
        if isinstance(image, Image.Image):
            pil = images.load_image(image, size=size)
        elif isinstance(image, (str, os.PathLike)):
            pil = images.resolve_image(image, size)
        else:
            pil = images.load_image(image, size=size)
        x = images.to_tensor(pil)
    if min(x.shape[-2:]) < 8:
        raise ValueError(f"image is {x.shape[-1]}x{x.shape[-2]} px: too small for the network (at least 8 px)")
    return x.to(device) if device is not None else x


def _net_device(net) -> torch.device:
    dev = getattr(net, "device", None)
    if isinstance(dev, torch.device):
        return dev
    return next(net.parameters()).device


def layer_activation(net, image, layer: str, size: int | None = None) -> torch.Tensor:
    """The activation ``a[l]`` of one image at ``layer``: shape ``(n_C, n_H, n_W)`` (no gradient)."""
    net.check_layers([layer])
    x = to_input(image, size, _net_device(net))
    with torch.no_grad():
        return net.extract(x, [layer])[layer][0].float()


# ---- the matrices ----------------------------------------------------------------------------


def layer_gram(net, image, layer: str, size: int | None = None) -> torch.Tensor:
    r"""``G[l]_kk' = sum_ij a[l]_ijk a[l]_ijk'`` of one image: a ``(n_C, n_C)`` tensor.

    Computed by :func:`teachkit.costs.gram_matrix` on the activation of ``layer``.
    """
    return gram_matrix(layer_activation(net, image, layer, size))


def normalized_gram(G: torch.Tensor, n_positions) -> torch.Tensor:
    r"""``G / (n_H n_W)``: the Gram matrix per position.

    Entry ``(k, k')`` becomes the *average* over the ``n_H n_W`` positions of ``a_k a_k'`` (the
    uncentred second moment of the two channels).  The raw ``G`` grows with the number of positions
    (a larger picture has a larger Gram matrix); this one does not, so pictures of different sizes
    can be compared.  ``n_positions`` is ``n_H * n_W`` or the pair ``(n_H, n_W)``.

    Relation with :func:`channel_correlation`: with ``mu_k`` the mean of channel ``k`` and ``C`` the
    covariance, ``normalized_gram(G)_kk' = C_kk' + mu_k mu_k'``; the correlation is
    ``C_kk' / sqrt(C_kk C_k'k')``.
    """
    if isinstance(n_positions, (tuple, list)):
        if len(n_positions) != 2:
            raise ValueError(f"n_positions must be n_H*n_W or (n_H, n_W), not {n_positions!r}")
        n_positions = int(n_positions[0]) * int(n_positions[1])
    n = float(n_positions)
    if not n > 0:
        raise ValueError(f"n_positions must be positive, not {n_positions!r}")
    return G / n


def _flat_channels(a: torch.Tensor) -> torch.Tensor:
    """(C, H, W), (1, C, H, W) or (C, P) -> (C, P) float32."""
    if a.dim() == 4:
        if a.shape[0] != 1:
            raise ValueError(f"expected the activation of one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.dim() == 3:
        a = a.flatten(1)
    if a.dim() != 2:
        raise ValueError(f"expected an activation (C, H, W), (1, C, H, W) or (C, P), got {tuple(a.shape)}")
    return a.detach().float()


def channel_correlation(a: torch.Tensor) -> torch.Tensor:
    r"""Pearson correlation between the channels of one activation, across positions: ``(C, C)``.

    With ``a_c`` the activation with each channel's mean removed ("centred") and ``P = n_H n_W``::

        Cov  = normalized_gram(gram_matrix(a_c), P)           # the covariance matrix
        corr = Cov_kk' / sqrt(Cov_kk Cov_k'k')                 # in [-1, 1]

    so the correlation is the Gram matrix of the centred channels, normalised per position and by
    the two standard deviations.  ``+1``: the two channels rise and fall together everywhere;
    ``0``: unrelated; ``-1``: one fires where the other does not.

    A *dead* channel (zero variance: e.g. a ReLU that never fires on this image) has no defined
    correlation; its row and column are set to 0 and its diagonal entry to 1, so the result is
    NaN-free and every diagonal entry is 1.

    ``a`` has shape ``(C, H, W)``, ``(1, C, H, W)`` or ``(C, P)``.
    """
    f = _flat_channels(a)
    n_C, P = f.shape
    if P < 1:
        raise ValueError("the activation has no positions")
    centred = f - f.mean(dim=1, keepdim=True)
    cov = normalized_gram(gram_matrix(centred.unsqueeze(-1)), P)
    var = cov.diagonal().clamp(min=0)
    mean_sq = f.pow(2).mean(dim=1)
    dead = var <= 1e-10 * mean_sq + 1e-30
    std = torch.where(dead, torch.ones_like(var), var.sqrt())
    corr = cov / (std[:, None] * std[None, :])
    corr[dead, :] = 0.0
    corr[:, dead] = 0.0
    corr = corr.clamp(-1.0, 1.0)
    corr.fill_diagonal_(1.0)
    return corr


# ---- choosing and ordering channels for a readable picture -----------------------------------


def cluster_order(corr: torch.Tensor | np.ndarray) -> list[int]:
    """An order of the channels that puts correlated channels next to each other.

    Average-linkage hierarchical clustering (scipy) of the distance ``1 - corr``; the leaves of the
    tree, left to right.  Without scipy: channels sorted by the leading eigenvector of ``corr``.
    """
    c = np.asarray(corr.detach().cpu() if isinstance(corr, torch.Tensor) else corr, dtype=np.float64)
    n = c.shape[0]
    if n <= 2:
        return list(range(n))
    c = np.nan_to_num((c + c.T) / 2.0)
    try:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        dist = np.clip(1.0 - c, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        tree = linkage(squareform(dist, checks=False), method="average", optimal_ordering=n <= 128)
        return [int(i) for i in leaves_list(tree)]
    except ImportError:  # pragma: no cover - scipy comes with scikit-image
        _, vecs = np.linalg.eigh(c)
        return [int(i) for i in np.argsort(vecs[:, -1], kind="stable")]


def select_channels(energy: torch.Tensor, corr: torch.Tensor, n_channels: int | None, order: str = "cluster") -> list[int]:
    """The ``n_channels`` most energetic channels (largest ``energy``), ordered for display.

    ``order='cluster'``: correlated channels together (:func:`cluster_order`); ``'index'``: by
    channel number; ``'energy'``: strongest first.  ``n_channels=None`` keeps every channel.
    """
    if order not in ("cluster", "index", "energy"):
        raise ValueError(f"order must be 'cluster', 'index' or 'energy', not {order!r}")
    n_C = energy.numel()
    if n_channels is None:
        n = n_C
    else:
        n = int(n_channels)
        if n < 1:
            raise ValueError(f"n_channels must be at least 1, not {n_channels!r}")
        n = min(n, n_C)
    strongest = torch.argsort(energy.detach().cpu(), descending=True, stable=True)[:n].tolist()
    if order == "energy":
        return strongest
    chosen = sorted(strongest)
    if order == "index":
        return chosen
    sub = corr.detach().cpu()[chosen][:, chosen]
    return [chosen[i] for i in cluster_order(sub)]


# ---- heatmap helpers -------------------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _tick_channels(ax, channels: Sequence[int]) -> None:
    n = len(channels)
    if n <= 40:
        ticks = list(range(n))
    else:
        step = int(math.ceil(n / 16))
        ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    fs = 6 if n > 24 else 7
    ax.set_xticklabels([str(channels[i]) for i in ticks], rotation=90, fontsize=fs)
    ax.set_yticklabels([str(channels[i]) for i in ticks], fontsize=fs)
    ax.set_xlabel("channel k'", fontsize=8)
    ax.set_ylabel("channel k", fontsize=8)


def _heatmap(fig, ax, M: np.ndarray, channels, title: str, cmap: str, norm) -> None:
    im = ax.imshow(M, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    _tick_channels(ax, channels)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=7)


def _gram_norm(*mats: np.ndarray):
    """A shared colour scale for Gram matrices (square-root scale: the diagonal dominates)."""
    lo = min(float(m.min()) for m in mats)
    hi = max(float(m.max()) for m in mats)
    if hi <= lo:
        hi = lo + 1.0
    if lo >= 0:
        return mcolors.PowerNorm(gamma=0.5, vmin=0.0, vmax=hi), "magma"
    m = max(abs(lo), abs(hi))
    return mcolors.Normalize(vmin=-m, vmax=m), "RdBu_r"


def _diverging_norm(M: np.ndarray):
    m = float(np.abs(M).max())
    if m <= 0:
        m = 1.0
    return mcolors.Normalize(vmin=-m, vmax=m)


# ---- one image: G and the correlation --------------------------------------------------------


def gram_summary(net, image, layer: str, n_channels: int | None = 32, full: bool = False, order: str = "cluster",
                 size: int | None = None) -> dict[str, Any]:
    """The numbers behind :func:`gram_figure`.

    Returns ``layer``, ``shape`` ``(n_C, n_H, n_W)``, ``gram`` (full ``G[l]``), ``normalized``
    (``G / (n_H n_W)``), ``correlation`` (full, :func:`channel_correlation`) and ``channels`` (the
    displayed channels, in display order; all of them when ``full``).
    """
    a = layer_activation(net, image, layer, size)
    G = gram_matrix(a)
    corr = channel_correlation(a)
    channels = select_channels(G.diagonal(), corr, None if full else n_channels, order)
    n_C, n_H, n_W = a.shape
    return {
        "layer": layer,
        "shape": (n_C, n_H, n_W),
        "gram": G,
        "normalized": normalized_gram(G, (n_H, n_W)),
        "correlation": corr,
        "channels": channels,
    }


def gram_figure(net, image, layer: str = "relu2_1", n_channels: int = 32, full: bool = False, order: str = "cluster",
                size: int | None = None, summary: Mapping[str, Any] | None = None) -> Figure:
    """One image at one layer: its Gram matrix ``G[l]`` and the channel correlation, side by side.

    Shows the ``n_channels`` most energetic channels (largest ``G_kk``), ordered so that correlated
    channels sit together; ``full=True`` shows every channel.
    """
    s = summary if summary is not None else gram_summary(net, image, layer, n_channels, full, order, size)
    ch = s["channels"]
    G = _np(s["gram"])[np.ix_(ch, ch)]
    C = _np(s["correlation"])[np.ix_(ch, ch)]
    n_C, n_H, n_W = s["shape"]
    fig = Figure(figsize=(11, 5.0), layout="constrained")
    axes = fig.subplots(1, 2)
    norm, cmap = _gram_norm(G)
    _heatmap(fig, axes[0], G, ch, "Gram matrix  G[l]_kk' = Σ_ij a_ijk a_ijk'  (√ colour scale)", cmap, norm)
    _heatmap(fig, axes[1], C, ch, "correlation of channels k, k' across positions", "RdBu_r",
             mcolors.Normalize(vmin=-1, vmax=1))
    shown = "all" if len(ch) == n_C else f"the {len(ch)} strongest of"
    fig.suptitle(f"{s['layer']}: {shown} {n_C} channels, {n_H}x{n_W} positions", fontsize=11)
    return fig


# ---- two images: G(S), G(G), difference, J_style[l] ------------------------------------------


def gram_comparison(net, image_S, image_G, layer: str, n_channels: int | None = 32, normalization: str = "lecture",
                    full: bool = False, order: str = "cluster", size: int | None = None) -> dict[str, Any]:
    r"""The numbers behind :func:`gram_comparison_figure`.

    Returns ``gram_S``, ``gram_G`` (full ``G[l]`` of each image), ``j_style`` (``J_style[l](S, G)``
    from :func:`teachkit.costs.style_layer_cost` with ``normalization``), ``channels`` (displayed,
    in display order), ``shape_S``, ``shape_G`` and ``layer``.  The channels shown are the most
    energetic ones, by the diagonal of ``G(S) + G(G)``; their order clusters the correlation of the
    two images' activations taken together.

    ``G(S)`` and ``G(G)`` are compared at the same number of positions: the raw Gram matrix grows
    with the number of positions, so when the two images differ in size ``G(S)`` is multiplied by
    ``M_G / M_S`` (``M = n_H n_W``; ``rescaled_S`` says so), as the transfer engine does.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {normalization!r}")
    a_S = layer_activation(net, image_S, layer, size)
    a_G = layer_activation(net, image_G, layer, size)
    G_S, G_G = gram_matrix(a_S), gram_matrix(a_G)
    m_S, m_G = a_S.shape[-2] * a_S.shape[-1], a_G.shape[-2] * a_G.shape[-1]
    rescaled = m_S != m_G
    if rescaled:  # a Gram matrix sums over positions: bring G(S) to G's number of positions
        G_S = normalized_gram(G_S, m_S) * m_G
    j = style_layer_cost(G_S, a_G, normalization, gram_G=G_G)
    both = torch.cat([a_S.flatten(1), a_G.flatten(1)], dim=1)
    corr = channel_correlation(both)
    channels = select_channels((G_S + G_G).diagonal(), corr, None if full else n_channels, order)
    return {
        "layer": layer,
        "gram_S": G_S,
        "gram_G": G_G,
        "j_style": float(j),
        "normalization": normalization,
        "channels": channels,
        "shape_S": tuple(a_S.shape),
        "shape_G": tuple(a_G.shape),
        "rescaled_S": rescaled,
    }


def gram_comparison_figure(net, image_S, image_G, layer: str = "relu2_1", n_channels: int = 32,
                           normalization: str = "lecture", full: bool = False, order: str = "cluster",
                           size: int | None = None, labels: tuple[str, str] = ("S", "G"),
                           comparison: Mapping[str, Any] | None = None) -> Figure:
    """Heatmaps of ``G[l](S)``, ``G[l](G)`` and ``G[l](S) - G[l](G)``, with ``J_style[l]`` in the title.

    ``n_channels`` most energetic channels (``full=True``: all), correlated channels together.  The
    two Gram heatmaps share one colour scale; the difference has its own, centred on 0.  ``J_style[l]``
    is computed on the *whole* matrices with ``normalization`` (see :mod:`teachkit.costs`).
    """
    c = comparison if comparison is not None else gram_comparison(
        net, image_S, image_G, layer, n_channels, normalization, full, order, size)
    ch = c["channels"]
    GS = _np(c["gram_S"])[np.ix_(ch, ch)]
    GG = _np(c["gram_G"])[np.ix_(ch, ch)]
    D = GS - GG
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    axes = fig.subplots(1, 3)
    norm, cmap = _gram_norm(GS, GG)
    s, g = labels
    _heatmap(fig, axes[0], GS, ch, f"G[l]({s})  (√ colour scale)", cmap, norm)
    _heatmap(fig, axes[1], GG, ch, f"G[l]({g})  (same scale)", cmap, norm)
    _heatmap(fig, axes[2], D, ch, f"G[l]({s}) − G[l]({g})", "RdBu_r", _diverging_norm(D))
    n_C = c["shape_G"][0]
    shown = "all" if len(ch) == n_C else f"{len(ch)} strongest of"
    fig.suptitle(
        f"{c['layer']} ({shown} {n_C} channels):  J_style[l]({s}, {g}) = {c['j_style']:.4g}"
        f"   [{c['normalization']} normalisation]",
        fontsize=11,
    )
    return fig


# ---- one entry of G taken apart: the two-channel explainer ----------------------------------


def pair_explainer(net, image, layer: str, k: int, k2: int, size: int | None = None) -> dict[str, Any]:
    r"""Take ``G[l]_kk'`` apart for one image.

    Returns ``map_k`` and ``map_k2`` (the two channels' activation maps, ``(n_H, n_W)``), ``product``
    (their element-wise product), ``product_sum`` (``product.sum()``), ``gram`` (``G[l]_kk'`` from
    :func:`teachkit.costs.gram_matrix`; equal to ``product_sum`` to float precision), ``correlation``
    (Pearson, :func:`channel_correlation`), ``k``, ``k2``, ``layer`` and ``image`` (the input tensor).
    """
    x = to_input(image, size)
    a = layer_activation(net, x, layer)
    n_C = a.shape[0]
    for name, c in (("k", k), ("k2", k2)):
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < n_C:
            raise ValueError(f"channel {name}={c!r} is out of range: {layer} has channels 0..{n_C - 1}")
    k, k2 = int(k), int(k2)
    m1, m2 = a[k], a[k2]
    product = m1 * m2
    G = gram_matrix(a)
    corr = channel_correlation(a[[k, k2]])
    return {
        "layer": layer,
        "k": k,
        "k2": k2,
        "map_k": m1,
        "map_k2": m2,
        "product": product,
        "product_sum": float(product.double().sum()),
        "gram": float(G[k, k2]),
        "correlation": float(corr[0, 1]),
        "image": x,
    }


def pick_pair(a: torch.Tensor, which: str = "most", min_active: float = 0.05) -> tuple[int, int, float]:
    """The pair of distinct channels ``(k, k', corr)`` with the highest (``'most'``) or lowest
    (``'least'``: most negative) Pearson correlation, among the *active* channels.

    A channel is active when it is not dead and is positive on at least ``min_active`` of the
    positions (so a channel that fires at one lone pixel is not picked).  When fewer than two
    channels qualify, every non-dead channel is considered.
    """
    if which not in ("most", "least"):
        raise ValueError(f"which must be 'most' or 'least', not {which!r}")
    f = _flat_channels(a)
    corr = channel_correlation(f)
    var = f.var(dim=1, unbiased=False)
    alive = var > 1e-10 * f.pow(2).mean(dim=1) + 1e-30
    active = alive & ((f > 0).float().mean(dim=1) >= min_active)
    if int(active.sum()) < 2:
        active = alive
    idx = torch.nonzero(active).flatten()
    if idx.numel() < 2:
        raise ValueError("the layer has fewer than two active channels on this image")
    sub = corr[idx][:, idx].clone()
    mask = torch.ones_like(sub, dtype=torch.bool).triu(1)
    if which == "most":
        sub[~mask] = -math.inf
        flat = int(torch.argmax(sub))
    else:
        sub[~mask] = math.inf
        flat = int(torch.argmin(sub))
    i, j = divmod(flat, sub.shape[1])
    return int(idx[i]), int(idx[j]), float(corr[idx[i], idx[j]])


def most_correlated_pair(net, image, layer: str, min_active: float = 0.05, size: int | None = None) -> tuple[int, int, float]:
    """``(k, k', correlation)``: the two active channels that fire together most (see :func:`pick_pair`)."""
    return pick_pair(layer_activation(net, image, layer, size), "most", min_active)


def least_correlated_pair(net, image, layer: str, min_active: float = 0.05, size: int | None = None) -> tuple[int, int, float]:
    """``(k, k', correlation)``: the two active channels with the most negative correlation -- one
    fires where the other is quiet, so their product, and ``G_kk'``, stay small."""
    return pick_pair(layer_activation(net, image, layer, size), "least", min_active)


def _show_image(ax, x: torch.Tensor, title: str) -> None:
    ax.imshow(x[0].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_map(fig, ax, m: torch.Tensor, title: str, cmap: str = "viridis", vmax: float | None = None) -> None:
    arr = m.detach().cpu().double().numpy()
    im = ax.imshow(arr, cmap=cmap, vmin=0.0 if arr.min() >= 0 else None, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=7)


def pair_figure(net, image, layer: str = "relu3_1", k: int | None = None, k2: int | None = None,
                which: str = "most", size: int | None = None, explained: Mapping[str, Any] | None = None) -> Figure:
    """The image, map ``k``, map ``k'`` and their product, titled ``Σ product = G_kk' = …``.

    When ``k``/``k2`` are not given the pair is picked by ``which`` (``'most'`` or ``'least'``
    correlated, see :func:`pick_pair`).
    """
    if explained is None:
        x = to_input(image, size)
        if k is None or k2 is None:
            k, k2, _ = pick_pair(layer_activation(net, x, layer), which)
        explained = pair_explainer(net, x, layer, k, k2)
    e = explained
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 4)
    _show_image(axes[0], e["image"], "image")
    _show_map(fig, axes[1], e["map_k"], f"channel k = {e['k']}")
    _show_map(fig, axes[2], e["map_k2"], f"channel k' = {e['k2']}")
    _show_map(fig, axes[3], e["product"], "product  a_k · a_k'  (position by position)", cmap="inferno")
    fig.suptitle(
        f"{e['layer']}:  Σ product = G_kk' = {e['product_sum']:.6g}   "
        f"(gram_matrix gives {e['gram']:.6g};  correlation of k, k' = {e['correlation']:+.2f})",
        fontsize=11,
    )
    return fig


# ---- position blindness ----------------------------------------------------------------------


def shuffle_tiles(image_tensor: torch.Tensor, tiles: int = 4, seed: int = 0) -> torch.Tensor:
    """Cut the image into a ``tiles x tiles`` grid and put the tiles back in a random order.

    ``image_tensor`` is ``(3, H, W)`` or ``(N, 3, H, W)``; the result has the same shape.  When ``H``
    or ``W`` is not a multiple of ``tiles``, the few leftover rows/columns at the bottom/right stay
    where they are.  The permutation is fixed by ``seed`` and moves every tile (for ``tiles > 1``).
    """
    if isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer)) or tiles < 1:
        raise ValueError(f"tiles must be a whole number >= 1, not {tiles!r}")
    x = image_tensor
    if x.dim() not in (3, 4):
        raise ValueError(f"expected an image of shape (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    th, tw = H // tiles, W // tiles
    if th < 1 or tw < 1:
        raise ValueError(f"cannot cut a {W}x{H} image into {tiles}x{tiles} tiles")
    n = tiles * tiles
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=gen)
    for _ in range(100):  # a derangement: every tile moves (about 1 draw in e tries)
        if n == 1 or not bool((perm == torch.arange(n)).any()):
            break
        perm = torch.randperm(n, generator=gen)
    else:
        perm = torch.arange(n).roll(1)
    out = x.clone()
    for dst, src in enumerate(perm.tolist()):
        dr, dc = divmod(dst, tiles)
        sr, sc = divmod(src, tiles)
        out[..., dr * th:(dr + 1) * th, dc * tw:(dc + 1) * tw] = x[..., sr * th:(sr + 1) * th, sc * tw:(sc + 1) * tw]
    return out


def _rel(diff: torch.Tensor, ref: torch.Tensor) -> float:
    den = float(ref.double().norm())
    return float(diff.double().norm()) / den if den > 0 else 0.0


def position_blindness(net, image, layer_style: str = "relu2_1", layer_content: str = "relu4_2", tiles: int = 2,
                       seed: int = 0, size: int | None = None) -> dict[str, Any]:
    r"""Shuffle the tiles of ``image`` and measure what changes.

    * ``gram_rel_diff`` = ``‖G[l](x) − G[l](x_shuffled)‖_F / ‖G[l](x)‖_F`` at ``layer_style``;
    * ``content_rel_diff`` = ``‖a[l](x) − a[l](x_shuffled)‖ / ‖a[l](x)‖`` at ``layer_content``.

    The Gram matrix sums over positions, so moving pieces around hardly changes it (only the new
    edges along the tile borders add a little); the feature maps themselves are moved, so they
    change a lot.  Also returns ``image`` and ``shuffled`` (tensors), the layers, ``tiles`` and ``seed``.
    With the defaults (2 x 2 tiles, Gram at ``relu2_1``, features at ``relu4_2``) on the sample photos
    at 256 px, the Gram matrix changes by 4-11 % and the features by 120-130 % (at 64 px: 13-28 %
    against 95-120 %).  More tiles mean more new edges along the borders, and a larger Gram change.
    """
    net.check_layers([layer_style, layer_content])
    x = to_input(image, size, _net_device(net))
    xs = shuffle_tiles(x, tiles, seed)
    layers = list(dict.fromkeys([layer_style, layer_content]))
    with torch.no_grad():
        f = net.extract(torch.cat([x, xs]), layers)
    a_s, a_ss = f[layer_style][0], f[layer_style][1]
    G, Gs = gram_matrix(a_s), gram_matrix(a_ss)
    c, cs = f[layer_content][0], f[layer_content][1]
    return {
        "image": x.cpu(),
        "shuffled": xs.cpu(),
        "layer_style": layer_style,
        "layer_content": layer_content,
        "tiles": int(tiles),
        "seed": int(seed),
        "gram_rel_diff": _rel(G - Gs, G),
        "content_rel_diff": _rel(c - cs, c),
    }


def position_blindness_figure(net, image, layer_style: str = "relu2_1", layer_content: str = "relu4_2",
                              tiles: int = 2, seed: int = 0, size: int | None = None,
                              result: Mapping[str, Any] | None = None) -> Figure:
    """The image and its tile-shuffled copy, with the two relative differences (Gram vs features)."""
    r = result if result is not None else position_blindness(net, image, layer_style, layer_content, tiles, seed, size)
    fig = Figure(figsize=(10, 5.4), layout="constrained")
    axes = fig.subplots(1, 2)
    _show_image(axes[0], r["image"], "x")
    _show_image(axes[1], r["shuffled"], f"x with its {r['tiles']}x{r['tiles']} tiles shuffled")
    fig.suptitle(
        "The Gram matrix forgets where things are\n"
        f"style  (Gram at {r['layer_style']}):  ‖G(x) − G(shuffled)‖ / ‖G(x)‖ = {r['gram_rel_diff']:.3f}\n"
        f"content (features at {r['layer_content']}):  ‖a(x) − a(shuffled)‖ / ‖a(x)‖ = {r['content_rel_diff']:.3f}",
        fontsize=11,
    )
    return fig


# ---- style cost per layer --------------------------------------------------------------------


def style_values(values) -> dict[str, float]:
    """``{layer: J_style[l]}`` from a plain dict, from ``Progress.values`` (keys ``'style/relu1_1'``,
    other keys ignored) or from a :class:`teachkit.progress.Progress`."""
    if hasattr(values, "values") and not isinstance(values, Mapping):
        values = values.values  # a Progress
    if not isinstance(values, Mapping):
        raise ValueError("expected a dict layer -> J_style[l], or Progress.values")
    prefixed = {k[len("style/"):]: v for k, v in values.items() if isinstance(k, str) and k.startswith("style/")}
    chosen = prefixed if prefixed else {k: v for k, v in values.items() if "/" not in str(k) and k != "total"}
    return {str(k): float(v) for k, v in chosen.items()}


def style_cost_bars_figure(values, weights: Mapping[str, float] | None = None, log: bool | None = None,
                           title: str | None = None) -> Figure:
    """Bars of ``J_style[l]`` per layer (e.g. from a transfer's progress callback).

    ``values``: ``{layer: J_style[l]}``, or ``Progress.values`` (``'style/<layer>'`` keys), or a
    ``Progress``.  With ``weights`` (``λ[l]``) a second bar shows each layer's share of the total,
    ``λ[l] J_style[l]``.  ``log=None`` picks a log scale when the values span more than 100x.
    """
    vals = style_values(values)
    if not vals:
        raise ValueError("no style values to draw (expected keys like 'style/relu1_1')")
    layers = list(vals)
    v = np.array([vals[l] for l in layers], dtype=np.float64)
    fig = Figure(figsize=(max(5.0, 1.1 * len(layers) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    xs = np.arange(len(layers))
    if weights:
        w = np.array([float(weights.get(l, 0.0)) for l in layers])
        ax.bar(xs - 0.2, v, width=0.4, label="J_style[l]", color="#4c72b0")
        ax.bar(xs + 0.2, w * v, width=0.4, label="λ[l] · J_style[l]", color="#dd8452")
        ax.legend(fontsize=8)
        shown = np.concatenate([v, w * v])
    else:
        bars = ax.bar(xs, v, color="#4c72b0")
        for b, val in zip(bars, v):
            ax.annotate(f"{val:.3g}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
        shown = v
    pos = shown[shown > 0]
    if log is None:
        log = pos.size > 0 and pos.max() / pos.min() > 100
    if log and pos.size:
        ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(layers, fontsize=8)
    ax.set_ylabel("J_style[l]")
    total = float((np.array([float(weights.get(l, 0.0)) for l in layers]) * v).sum()) if weights else float(v.sum())
    what = "Σ λ[l]·J_style[l]" if weights else "Σ J_style[l]"
    ax.set_title(title or f"style cost per layer  ({what} = {total:.4g})", fontsize=10)
    return fig
