r"""Style as correlation between channels: Gram matrices to look at, and their figures.

The style of an image at layer ``l`` is its Gram matrix ``G[l]_kk' = sum_ij a[l]_ijk a[l]_ijk'``
(:func:`teachkit.costs.gram_matrix`): large when channels k and k' fire at the same places, blind to
where.  Here: the matrices and their relatives for display, the channels worth showing, and the figures
(heatmaps, one entry taken apart, shuffled tiles, J_style[l] per layer).  Images: PIL images, image
tensors in [0, 1] or a sample name / path.  Every figure returns a ``Figure`` built without pyplot, in
``lang`` ('en' or 'zh', words from :mod:`teachkit.figtext`), its smallest text :data:`MIN_TEXT_PX` pixels
high when shown :data:`SHOWN_PX` wide (:func:`text_size` changes it).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

from .costs import check_normalization, gram_matrix, style_layer_cost, style_target
from .fileio import check_int
from .messages import InputError
from .figtext import tr, use_cjk_font

__all__ = ["MIN_TEXT_PX", "SHOWN_PX", "to_input", "layer_activation", "normalized_gram", "channel_correlation",
           "style_layer_costs", "cluster_order", "select_channels", "gram_summary", "gram_figure", "gram_comparison",
           "gram_comparison_figure", "pair_explainer", "pick_pair", "pair_figure", "shuffle_tiles",
           "position_blindness", "position_blindness_figure", "style_values", "style_cost_bars_figure"]

MIN_TEXT_PX, SHOWN_PX = 14, 700  #: smallest text (px) of a figure shown SHOWN_PX wide (a 1280-px page's column)


def _figure(lang: str, width: float, height: float) -> Figure:
    """A new figure (the Chinese font registered first: a text keeps the font it was made with)."""
    if lang == "zh":
        use_cjk_font()
    return Figure(figsize=(width, height), layout="constrained")


_TEXT_PX = contextvars.ContextVar("teachkit_gram_text_px", default=None)


@contextlib.contextmanager
def text_size(px: float | None):
    """Figures made in this block (this thread) have their smallest text ``px`` pixels high (projector: 20)."""
    token = _TEXT_PX.set(px)
    try:
        yield
    finally:
        _TEXT_PX.reset(token)


def _pt(fig: Figure, scale: float = 1.0) -> float:
    """The font size (pt) ``scale`` x the text size's pixels high when ``fig`` is shown SHOWN_PX wide."""
    return scale * (_TEXT_PX.get() or MIN_TEXT_PX) * fig.get_figwidth() * 72.0 / SHOWN_PX


def _num(v: float) -> str:
    return f"{v:.4g}"


# ---- inputs ----------------------------------------------------------------------------------


def to_input(image, size: int | None = None, device=None) -> torch.Tensor:
    """Any image the package accepts -> a ``(1, 3, H, W)`` float tensor in ``[0, 1]``: a PIL image, an
    image tensor (checked by :func:`teachkit.images.tensor_image`) or a sample name / path.  ``size``
    scales the long side.  One readable error for bad input."""
    from . import images
    from .samples import resolve_image

    if isinstance(image, torch.Tensor):
        x = images.tensor_image(image)
        if size is not None:
            h, w = x.shape[-2:]
            s = size / max(h, w)
            new = (max(1, round(h * s)), max(1, round(w * s)))
            if new != (h, w):
                x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    else:
        x = images.to_tensor(resolve_image(image, size))
    if min(x.shape[-2:]) < 8:
        raise InputError("gram.image_too_small", width=x.shape[-1], height=x.shape[-2], min=8)
    return x.to(device) if device is not None else x


def layer_activation(net, image, layer: str, size: int | None = None) -> torch.Tensor:
    """The activation ``a[l]`` of one image at ``layer``: shape ``(n_C, n_H, n_W)`` (no gradient)."""
    net.check_layers([layer])
    x = to_input(image, size, net.device)
    with torch.no_grad():
        return net.extract(x, [layer])[layer][0].float()


# ---- the matrices ----------------------------------------------------------------------------


def normalized_gram(G: torch.Tensor, n_positions) -> torch.Tensor:
    r"""``G / (n_H n_W)``: the Gram matrix per position (the mean of ``a_k a_k'`` over the positions), which
    does not grow with the picture.  ``n_positions``: ``n_H * n_W`` or ``(n_H, n_W)``.  With ``mu_k`` the
    channel means and ``C`` the covariance, it is ``C_kk' + mu_k mu_k'``."""
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


def _dead(f: torch.Tensor) -> torch.Tensor:
    """Which channels of ``f`` (C, P) are *dead*: (next to) no variance across positions."""
    return f.var(dim=1, unbiased=False) <= 1e-10 * f.pow(2).mean(dim=1) + 1e-30


def channel_correlation(a: torch.Tensor) -> torch.Tensor:
    r"""Pearson correlation between the channels of one activation ``(C, H, W)``, ``(1, C, H, W)`` or
    ``(C, P)``, across positions: ``(C, C)`` -- the Gram matrix of the centred channels, per position,
    divided by the two standard deviations.  A *dead* channel (no variance) gets 0 off the diagonal and 1
    on it (NaN-free)."""
    f = _flat_channels(a)
    if f.shape[1] < 1:
        raise ValueError("the activation has no positions")
    n_C = f.shape[0]
    corr = torch.corrcoef(f.double()).reshape(n_C, n_C).float().nan_to_num(0.0)
    dead = _dead(f)
    corr[dead, :] = 0.0
    corr[:, dead] = 0.0
    corr = corr.clamp(-1.0, 1.0)
    corr.fill_diagonal_(1.0)
    return corr


def _style_term(a_S: torch.Tensor, a_G: torch.Tensor, normalization: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(target ``G(S) M_G/M_S``, ``G(G)``, ``J_style[l](S, G)``) from the activations (C, H, W)."""
    target = style_target(gram_matrix(a_S), a_S.shape[-2] * a_S.shape[-1], a_G.shape[-2] * a_G.shape[-1])
    G_G = gram_matrix(a_G)
    return target, G_G, float(style_layer_cost(target, a_G, normalization, gram_G=G_G))


def style_layer_costs(net, image_S, image_G, layers: Sequence[str], normalization: str = "lecture",
                      size: int | None = None) -> dict[str, float]:
    r"""``{layer: J_style[l](S, G)}`` (:func:`teachkit.costs.style_layer_cost`, ``G(S)`` scaled by ``M_G / M_S``
    as the engine does): one forward pass per image; the same number as :func:`gram_comparison`'s."""
    check_normalization(normalization)
    layers = net.check_layers(layers)
    x_S, x_G = to_input(image_S, size, net.device), to_input(image_G, size, net.device)
    with torch.no_grad():
        f_S, f_G = net.extract(x_S, layers), net.extract(x_G, layers)
    return {l: _style_term(f_S[l][0].float(), f_G[l][0].float(), normalization)[2] for l in layers}


# ---- choosing and ordering channels for a readable picture -----------------------------------


def cluster_order(corr: torch.Tensor | np.ndarray) -> list[int]:
    """An order of the channels with correlated ones side by side: the leaves of an average-linkage
    clustering (scipy) of ``1 - corr``; without scipy, by the leading eigenvector of ``corr``."""
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
    """The ``n_channels`` most energetic channels (None: all), in the ``order`` shown: 'cluster' (correlated
    together, :func:`cluster_order`), 'index' or 'energy' (strongest first)."""
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


def _shown(n: int, n_C: int, lang: str) -> str:
    return tr("gram.all", lang, n_C=n_C) if n == n_C else tr("gram.some", lang, n=n, n_C=n_C)


def _short(v: float, _pos=None) -> str:
    """A colour-bar label that needs no offset text over the bar (which ran into the titles): 0.5, 2e10."""
    return f"{v:.2g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _colorbar(fig, ax, im) -> None:
    """A colour bar attached to ``ax`` (an inset: it stays beside a square heatmap in any layout)."""
    from matplotlib.ticker import FuncFormatter

    cb = fig.colorbar(im, cax=ax.inset_axes([1.04, 0.0, 0.06, 1.0]), format=FuncFormatter(_short))
    cb.ax.tick_params(labelsize=_pt(fig))


def _heatmap(fig, ax, M: np.ndarray, channels, title: str, cmap: str, norm, lang: str, columns: int) -> None:
    """One matrix over the channels, one of ``columns`` side by side: as many channel numbers as fit."""
    im = ax.imshow(M, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_title(title, fontsize=_pt(fig, 1.1), pad=0.6 * _pt(fig))  # clear of the top channel's number
    side = (fig.get_figwidth() / columns) * 72 - 8 * _pt(fig)  # the heatmap's side (pt) beside its labels and bar
    n = len(channels)
    ticks = list(range(0, n, math.ceil(n / max(2, side / (1.6 * _pt(fig))))))
    labels = [str(channels[i]) for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90, fontsize=_pt(fig))
    ax.set_yticks(ticks, labels, fontsize=_pt(fig))
    ax.set_xlabel(tr("gram.k2", lang), fontsize=_pt(fig))
    ax.set_ylabel(tr("gram.k", lang), fontsize=_pt(fig))
    _colorbar(fig, ax, im)


def _symmetric(M: np.ndarray, sqrt: bool = False):
    """A diverging scale centred on 0 that just holds ``M`` (``sqrt``: signed square-root scale)."""
    m = float(np.abs(M).max()) or 1.0
    if not sqrt:
        return mcolors.Normalize(vmin=-m, vmax=m)
    return mcolors.FuncNorm((lambda v: np.sign(v) * np.sqrt(np.abs(v)), lambda v: np.sign(v) * v * v), vmin=-m, vmax=m)


def _by_diagonal(G: np.ndarray) -> np.ndarray:
    """``G_kk' / sqrt(G_kk G_k'k')``: each entry relative to the two channels' own energies.

    The diagonal becomes 1 (0 for a channel that never fires); for ReLU activations the entries lie
    in [0, 1]: how much the two channels fire at the same places, whatever their strength.
    """
    d = np.sqrt(np.clip(np.diag(G), 0.0, None))
    den = np.outer(d, d)
    return np.divide(G, den, out=np.zeros_like(G), where=den > 0)


# ---- one image: G and the correlation --------------------------------------------------------


def gram_summary(net, image, layer: str, n_channels: int | None = 16, full: bool = False, order: str = "cluster",
                 size: int | None = None) -> dict[str, Any]:
    """The numbers behind :func:`gram_figure`: ``layer``, ``shape`` ``(n_C, n_H, n_W)``, the full ``gram`` and
    ``correlation``, and the ``channels`` shown, in order (all when ``full``)."""
    a = layer_activation(net, image, layer, size)
    G = gram_matrix(a)
    corr = channel_correlation(a)
    channels = select_channels(G.diagonal(), corr, None if full else n_channels, order)
    n_C, n_H, n_W = a.shape
    return {"layer": layer, "shape": (n_C, n_H, n_W), "gram": G, "correlation": corr, "channels": channels}


def gram_figure(net, image, layer: str = "relu2_1", n_channels: int = 16, full: bool = False, order: str = "cluster",
                size: int | None = None, summary: Mapping[str, Any] | None = None, lang: str = "en") -> Figure:
    """One image at one layer: its Gram matrix ``G[l]`` (square-root colour scale: the diagonal dominates)
    and the channel correlation (on [-1, 1]), side by side, for the ``n_channels`` most energetic
    channels (``full``: all), correlated channels together."""
    s = summary if summary is not None else gram_summary(net, image, layer, n_channels, full, order, size)
    ch = s["channels"]
    G = _np(s["gram"])[np.ix_(ch, ch)]
    C = _np(s["correlation"])[np.ix_(ch, ch)]
    n_C, n_H, n_W = s["shape"]
    fig = _figure(lang, 10, 5.6)
    axes = fig.subplots(1, 2)
    if G.min() >= 0:
        norm, cmap = mcolors.PowerNorm(gamma=0.5, vmin=0.0, vmax=float(G.max()) or 1.0), "magma"
    else:  # a conv layer: entries of both signs
        norm, cmap = _symmetric(G), "RdBu_r"
    _heatmap(fig, axes[0], G, ch, tr("gram.one_g", lang), cmap, norm, lang, 2)
    _heatmap(fig, axes[1], C, ch, tr("gram.one_corr", lang), "RdBu_r", mcolors.Normalize(-1, 1), lang, 2)
    fig.suptitle(tr("gram.one_title", lang, layer=s["layer"], shown=_shown(len(ch), n_C, lang), n_H=n_H, n_W=n_W),
                 fontsize=_pt(fig, 1.2))
    return fig


# ---- two images: G(S), G(G), difference, J_style[l] ------------------------------------------


def gram_comparison(net, image_S, image_G, layer: str, n_channels: int | None = 16, normalization: str = "lecture",
                    full: bool = False, order: str = "cluster", size: int | None = None) -> dict[str, Any]:
    r"""The numbers behind :func:`gram_comparison_figure`: ``gram_S`` (the style target, scaled by
    :func:`style_target`), ``gram_G``, ``j_style`` (as :func:`style_layer_costs`), ``channels`` (the most
    energetic by the diagonal of ``G(S) + G(G)``, clustered), ``shape_S``, ``shape_G``, ``layer``,
    ``normalization``, ``rescaled_S`` (sizes differ) and ``scale`` (``M_G / M_S``)."""
    check_normalization(normalization)
    a_S = layer_activation(net, image_S, layer, size)
    a_G = layer_activation(net, image_G, layer, size)
    G_S, G_G, j = _style_term(a_S, a_G, normalization)
    m_S, m_G = a_S.shape[-2] * a_S.shape[-1], a_G.shape[-2] * a_G.shape[-1]
    corr = channel_correlation(torch.cat([a_S.flatten(1), a_G.flatten(1)], dim=1))
    channels = select_channels((G_S + G_G).diagonal(), corr, None if full else n_channels, order)
    return {"layer": layer, "gram_S": G_S, "gram_G": G_G, "j_style": j, "normalization": normalization,
            "channels": channels, "shape_S": tuple(a_S.shape), "shape_G": tuple(a_G.shape),
            "rescaled_S": m_S != m_G, "scale": m_G / m_S}


def gram_comparison_figure(net, image_S, image_G, layer: str = "relu2_1", n_channels: int = 16,
                           normalization: str = "lecture", full: bool = False, order: str = "cluster",
                           size: int | None = None, labels: tuple[str, str] = ("S", "G"),
                           comparison: Mapping[str, Any] | None = None, lang: str = "en", wide: bool = False) -> Figure:
    """``G[l](S)`` and ``G[l](G)``, each divided by its own diagonal (a photo's Gram matrix can be a hundred
    times smaller than a painting's), and the raw ``G[l](S) - G[l](G)`` (signed square-root scale) as
    heatmaps, ``J_style[l]`` in the title, a fourth panel on how to read them (``wide``: one row of three)."""
    c = comparison if comparison is not None else gram_comparison(
        net, image_S, image_G, layer, n_channels, normalization, full, order, size)
    ch = c["channels"]
    GS = _np(c["gram_S"])[np.ix_(ch, ch)]
    GG = _np(c["gram_G"])[np.ix_(ch, ch)]
    s, g = labels
    columns = 3 if wide else 2
    fig = _figure(lang, 15, 6.2) if wide else _figure(lang, 10, 10.4)
    axes = list(fig.subplots(1, 3).flat) if wide else list(fig.subplots(2, 2).flat)
    cs, cg = _by_diagonal(GS), _by_diagonal(GG)
    if min(cs.min(), cg.min()) >= 0:
        norm, cmap = mcolors.Normalize(0, 1), "magma"
    else:  # conv layers: both signs
        norm, cmap = mcolors.Normalize(-1, 1), "RdBu_r"
    _heatmap(fig, axes[0], cs, ch, tr("gram.cmp_cos", lang, name=s), cmap, norm, lang, columns)
    _heatmap(fig, axes[1], cg, ch, tr("gram.cmp_cos", lang, name=g), cmap, norm, lang, columns)
    _heatmap(fig, axes[2], GS - GG, ch, tr("gram.cmp_diff", lang, s=s, g=g), "RdBu_r",
             _symmetric(GS - GG, sqrt=True), lang, columns)
    if not wide:
        axes[3].axis("off")
        text = tr("gram.cmp_how", lang, s=s, g=g)
        if c.get("rescaled_S"):
            text += "\n\n" + tr("gram.rescaled", lang, s=s, f=c.get("scale", float("nan")))
        axes[3].text(0.1, 1.0, text, va="top", ha="left", fontsize=_pt(fig), transform=axes[3].transAxes)
    norm_name = tr(f"gram.norm.{c['normalization']}", lang)
    fig.suptitle(tr("gram.cmp_title", lang, layer=c["layer"], shown=_shown(len(ch), c["shape_G"][0], lang), s=s, g=g,
                    j=_num(c["j_style"])) + "   " + tr("gram.norm", lang, norm=norm_name), fontsize=_pt(fig, 1.2))
    return fig


# ---- one entry of G taken apart: the two-channel explainer ----------------------------------


def pair_explainer(net, image, layer: str, k: int, k2: int, size: int | None = None) -> dict[str, Any]:
    r"""``G[l]_kk'`` of one image taken apart: ``map_k``, ``map_k2``, their ``product``, its sum ``product_sum``,
    ``gram`` (from :func:`teachkit.costs.gram_matrix`: the same number), ``correlation``, ``k``, ``k2``, ``layer``
    and ``image`` (the input tensor)."""
    x = to_input(image, size)
    a = layer_activation(net, x, layer)
    n_C = a.shape[0]
    for name, c in (("k", k), ("k2", k2)):
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < n_C:
            raise InputError("gram.channel_range", name=name, value=repr(c), layer=layer, last=n_C - 1)
    k, k2 = int(k), int(k2)
    product = a[k] * a[k2]
    return {"layer": layer, "k": k, "k2": k2, "map_k": a[k], "map_k2": a[k2], "product": product,
            "product_sum": float(product.double().sum()), "gram": float(gram_matrix(a)[k, k2]),
            "correlation": float(channel_correlation(a[[k, k2]])[0, 1]), "image": x}


def pick_pair(a: torch.Tensor, which: str = "most", min_active: float = 0.05) -> tuple[int, int, float]:
    """The two channels ``(k, k', corr)`` with the highest (``'most'``) or lowest (``'least'``) correlation
    among those positive on at least ``min_active`` of the positions (else among all that are not dead)."""
    if which not in ("most", "least"):
        raise ValueError(f"which must be 'most' or 'least', not {which!r}")
    f = _flat_channels(a)
    corr = channel_correlation(f)
    alive = ~_dead(f)
    active = alive & ((f > 0).float().mean(dim=1) >= min_active)
    if int(active.sum()) < 2:
        active = alive
    idx = torch.nonzero(active).flatten()
    if idx.numel() < 2:
        raise InputError("gram.few_active_channels")
    sub = corr[idx][:, idx].clone()
    upper = torch.ones_like(sub, dtype=torch.bool).triu(1)
    sub[~upper] = -math.inf if which == "most" else math.inf
    flat = int(torch.argmax(sub) if which == "most" else torch.argmin(sub))
    i, j = divmod(flat, sub.shape[1])
    return int(idx[i]), int(idx[j]), float(corr[idx[i], idx[j]])


def _show_image(fig, ax, x: torch.Tensor, title: str) -> None:
    ax.imshow(x[0].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(title, fontsize=_pt(fig, 1.1))
    ax.set_xticks([])
    ax.set_yticks([])


def _show_map(fig, ax, m: torch.Tensor, title: str, cmap: str = "viridis") -> None:
    arr = m.detach().cpu().double().numpy()
    im = ax.imshow(arr, cmap=cmap, vmin=0.0 if arr.min() >= 0 else None, interpolation="nearest")
    ax.set_title(title, fontsize=_pt(fig, 1.1))
    ax.set_xticks([])
    ax.set_yticks([])
    _colorbar(fig, ax, im)


def pair_figure(net, image, layer: str = "relu3_1", k: int | None = None, k2: int | None = None,
                which: str = "most", size: int | None = None, explained: Mapping[str, Any] | None = None,
                lang: str = "en", wide: bool = False) -> Figure:
    """The image, map ``k``, map ``k'`` and their product (2 x 2; ``wide``: in one row), titled
    ``Σ product = G_kk' = …``; without ``k``/``k2`` the pair is picked by ``which`` (:func:`pick_pair`)."""
    if explained is None:
        x = to_input(image, size)
        if k is None or k2 is None:
            k, k2, _ = pick_pair(layer_activation(net, x, layer), which)
        explained = pair_explainer(net, x, layer, k, k2)
    e = explained
    fig = _figure(lang, 16, 5.2) if wide else _figure(lang, 10, 9.0)
    axes = list(fig.subplots(1, 4).flat) if wide else list(fig.subplots(2, 2).flat)
    _show_image(fig, axes[0], e["image"], tr("gram.image", lang))
    _show_map(fig, axes[1], e["map_k"], tr("gram.map", lang, which="k", c=e["k"]))
    _show_map(fig, axes[2], e["map_k2"], tr("gram.map", lang, which="k'", c=e["k2"]))
    _show_map(fig, axes[3], e["product"], tr("gram.product", lang), cmap="inferno")
    fig.suptitle(tr("gram.pair_title", lang, layer=e["layer"], sum=f"{e['product_sum']:.6g}", gram=f"{e['gram']:.6g}",
                    corr=f"{e['correlation']:+.2f}"), fontsize=_pt(fig, 1.2))
    return fig


# ---- position blindness ----------------------------------------------------------------------


def shuffle_tiles(image_tensor: torch.Tensor, tiles: int = 4, seed: int = 0) -> torch.Tensor:
    """``(3, H, W)`` or ``(N, 3, H, W)`` cut into ``tiles x tiles`` and put back in an order fixed by ``seed``
    that moves every tile; leftover rows and columns (H, W not multiples of ``tiles``) stay."""
    tiles = check_int("tiles", tiles, 1)
    x = image_tensor
    if x.dim() not in (3, 4):
        raise ValueError(f"expected an image of shape (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    th, tw = H // tiles, W // tiles
    if th < 1 or tw < 1:
        raise InputError("gram.tiles", width=W, height=H, tiles=tiles)
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
    r"""Shuffle the tiles of ``image`` and measure what changes: ``gram_rel_diff`` =
    ``‖G(x) − G(x')‖ / ‖G(x)‖`` at ``layer_style`` (small: only the new tile borders add a little) and
    ``content_rel_diff`` = ``‖a(x) − a(x')‖ / ‖a(x)‖`` at ``layer_content`` (large); also ``image``,
    ``shuffled``, the layers, ``tiles`` and ``seed``."""
    net.check_layers([layer_style, layer_content])
    x = to_input(image, size, net.device)
    xs = shuffle_tiles(x, tiles, seed)
    with torch.no_grad():
        f = net.extract(torch.cat([x, xs]), list(dict.fromkeys([layer_style, layer_content])))
    G, Gs = gram_matrix(f[layer_style][0]), gram_matrix(f[layer_style][1])
    c, cs = f[layer_content][0], f[layer_content][1]
    return {"image": x.cpu(), "shuffled": xs.cpu(), "layer_style": layer_style, "layer_content": layer_content,
            "tiles": int(tiles), "seed": int(seed), "gram_rel_diff": _rel(G - Gs, G),
            "content_rel_diff": _rel(c - cs, c)}


def position_blindness_figure(net, image, layer_style: str = "relu2_1", layer_content: str = "relu4_2",
                              tiles: int = 2, seed: int = 0, size: int | None = None,
                              result: Mapping[str, Any] | None = None, lang: str = "en") -> Figure:
    """The image and its tile-shuffled copy, with the two relative differences (Gram vs features)."""
    r = result if result is not None else position_blindness(net, image, layer_style, layer_content, tiles, seed, size)
    fig = _figure(lang, 10, 6.4)
    axes = fig.subplots(1, 2)
    _show_image(fig, axes[0], r["image"], "x")
    _show_image(fig, axes[1], r["shuffled"], tr("gram.shuffled", lang, t=r["tiles"]))
    fig.suptitle(tr("gram.blind_title", lang, ls=r["layer_style"], lc=r["layer_content"],
                    g=f"{r['gram_rel_diff']:.3f}", c=f"{r['content_rel_diff']:.3f}"), fontsize=_pt(fig, 1.15))
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
                           title: str | None = None, lang: str = "en") -> Figure:
    """Bars of ``J_style[l]`` per layer (``values``: as :func:`style_values` takes them); with ``weights``
    (``λ[l]``) a second bar, ``λ[l] J_style[l]``.  ``log=None``: a log scale when the values span > 100x."""
    vals = style_values(values)
    if not vals:
        raise ValueError("no style values to draw (expected keys like 'style/relu1_1')")
    layers = list(vals)
    v = np.array([vals[l] for l in layers], dtype=np.float64)
    fig = _figure(lang, 8, 4.8)
    ax = fig.subplots()
    xs = np.arange(len(layers))
    if weights:
        w = np.array([float(weights.get(l, 0.0)) for l in layers])
        ax.bar(xs - 0.2, v, width=0.4, label="J_style[l]", color="#4c72b0")
        ax.bar(xs + 0.2, w * v, width=0.4, label="λ[l] · J_style[l]", color="#dd8452")
        ax.legend(fontsize=_pt(fig))
        shown, total, what = np.concatenate([v, w * v]), float((w * v).sum()), "Σ λ[l]·J_style[l]"
    else:
        bars = ax.bar(xs, v, color="#4c72b0")
        for b, val in zip(bars, v):
            ax.annotate(f"{val:.3g}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=_pt(fig))
        shown, total, what = v, float(v.sum()), "Σ J_style[l]"
    pos = shown[shown > 0]
    if log is None:
        log = pos.size > 0 and pos.max() / pos.min() > 100
    if log and pos.size:
        ax.set_yscale("log")
    ax.margins(y=0.12)  # room for the value labels under the title
    ax.set_xticks(xs, layers, fontsize=_pt(fig))
    ax.tick_params(axis="y", labelsize=_pt(fig))
    ax.yaxis.get_offset_text().set_fontsize(_pt(fig))
    ax.set_xlabel(tr("gram.layer", lang), fontsize=_pt(fig))
    ax.set_ylabel("J_style[l]", fontsize=_pt(fig))
    ax.set_title(title or tr("gram.bars_title", lang, what=what, total=_num(total)), fontsize=_pt(fig, 1.15))
    return fig
