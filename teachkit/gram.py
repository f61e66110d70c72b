r"""Style as correlation between channels: Gram matrices to look at, and their figures.

The lecture defines the style of an image at layer ``l`` as the Gram matrix of that layer::

    G[l]_kk' = sum_i sum_j a[l]_ijk * a[l]_ijk'          (costs.gram_matrix)

one number for every pair of channels ``(k, k')``: large when the two channels fire strongly *at the
same places*.  The sum runs over every position ``(i, j)``, so *where* things are is forgotten --
only *what fires together* is kept.  This module computes the Gram matrix and its relatives for
display, and draws them:

* :func:`layer_activation` -- ``a[l]`` of one image (``G[l]`` is ``costs.gram_matrix`` of it);
* :func:`normalized_gram` -- ``G / (n_H n_W)``: the average over positions of ``a_k a_k'``;
* :func:`channel_correlation` -- the Pearson correlation of two channels across positions;
* :func:`style_layer_costs` -- ``J_style[l](S, G)`` of several layers (the target scaled by
  :func:`teachkit.costs.style_target`): the one computation behind every ``J_style[l]`` shown here;
* :func:`gram_figure`, :func:`gram_comparison_figure` -- heatmaps for one image (G and the
  correlation) or two (``G(S)``, ``G(G)``, their difference and ``J_style[l]``);
* :func:`pair_explainer`, :func:`pair_figure` -- one entry ``G_kk'`` taken apart: map ``k``, map
  ``k'``, their product, and the sum of the product, which *is* ``G_kk'``;
* :func:`shuffle_tiles`, :func:`position_blindness`, :func:`position_blindness_figure` -- shuffle the
  tiles of a picture: the Gram matrix hardly changes, the feature maps do;
* :func:`style_cost_bars_figure` -- ``J_style[l]`` per layer, e.g. during a transfer.

Images may be given as PIL images, ``(1, 3, H, W)`` / ``(3, H, W)`` tensors in ``[0, 1]``, or a sample
name / path (see :func:`teachkit.samples.resolve_image`).  Every figure function returns a
``matplotlib.figure.Figure`` built without pyplot, takes ``lang="en"`` or ``"zh"`` (all its text comes
from :mod:`teachkit.figtext`), and sizes its text so that the smallest is at least
:data:`MIN_TEXT_PX` pixels when the figure is shown :data:`SHOWN_PX` pixels wide.
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

__all__ = [
    "MIN_TEXT_PX",
    "SHOWN_PX",
    "to_input",
    "layer_activation",
    "normalized_gram",
    "channel_correlation",
    "style_layer_costs",
    "cluster_order",
    "select_channels",
    "gram_summary",
    "gram_figure",
    "gram_comparison",
    "gram_comparison_figure",
    "pair_explainer",
    "pick_pair",
    "pair_figure",
    "shuffle_tiles",
    "position_blindness",
    "position_blindness_figure",
    "style_values",
    "style_cost_bars_figure",
]

#: The figures' smallest text is at least MIN_TEXT_PX pixels high when a figure is shown SHOWN_PX
#: pixels wide (about the width of a page column in a 1280-px browser window).
MIN_TEXT_PX = 14
SHOWN_PX = 700


def _figure(lang: str, width: float, height: float) -> Figure:
    """A new figure; for Chinese the font is registered first (text objects take the font of their birth)."""
    if lang == "zh":
        use_cjk_font()
    return Figure(figsize=(width, height), layout="constrained")


_TEXT_PX = contextvars.ContextVar("teachkit_gram_text_px", default=None)


@contextlib.contextmanager
def text_size(px: float | None):
    """Within this block (this thread only), figures made here have their smallest text ``px`` pixels
    high at SHOWN_PX instead of MIN_TEXT_PX (the app's projector mode: 20)."""
    token = _TEXT_PX.set(px)
    try:
        yield
    finally:
        _TEXT_PX.reset(token)


def _pt(fig: Figure, scale: float = 1.0) -> float:
    """A font size (points) that is ``scale`` x MIN_TEXT_PX pixels once ``fig`` is shown SHOWN_PX wide
    (or ``scale`` x the size set by :func:`text_size`)."""
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


def _dead(f: torch.Tensor) -> torch.Tensor:
    """Which channels of ``f`` (C, P) are *dead*: (next to) no variance across positions."""
    return f.var(dim=1, unbiased=False) <= 1e-10 * f.pow(2).mean(dim=1) + 1e-30


def channel_correlation(a: torch.Tensor) -> torch.Tensor:
    r"""Pearson correlation between the channels of one activation, across positions: ``(C, C)``.

    ``torch.corrcoef`` of the channels.  With ``a_c`` the activation with each channel's mean
    removed ("centred") and ``P = n_H n_W``, this is::

        Cov  = normalized_gram(gram_matrix(a_c), P)           # the covariance matrix
        corr = Cov_kk' / sqrt(Cov_kk Cov_k'k')                 # in [-1, 1]

    the Gram matrix of the centred channels, normalised per position and by the two standard
    deviations.  ``+1``: the two channels rise and fall together everywhere; ``0``: unrelated;
    ``-1``: one fires where the other does not.

    A *dead* channel (zero variance: e.g. a ReLU that never fires on this image) has no defined
    correlation; its row and column are set to 0 and its diagonal entry to 1, so the result is
    NaN-free and every diagonal entry is 1.  ``a`` has shape ``(C, H, W)``, ``(1, C, H, W)`` or ``(C, P)``.
    """
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
    r"""``{layer: J_style[l](S, G)}``: one forward pass per image, every layer from it.

    ``J_style[l](S, G) = style_factor * ||style_target(G[l](S)) - G[l](G)||_F^2`` (see
    :func:`teachkit.costs.style_layer_cost` and :func:`style_target`: ``G(S)`` is scaled by
    ``M_G / M_S`` when the images differ in size, as the transfer engine does).  The same
    computation gives the ``J_style[l]`` of :func:`gram_comparison` (and so of the heatmap titles),
    so a page that shows both shows one number.
    """
    check_normalization(normalization)
    layers = net.check_layers(layers)
    x_S, x_G = to_input(image_S, size, net.device), to_input(image_G, size, net.device)
    with torch.no_grad():
        f_S, f_G = net.extract(x_S, layers), net.extract(x_G, layers)
    return {l: _style_term(f_S[l][0].float(), f_G[l][0].float(), normalization)[2] for l in layers}


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


def _shown(n: int, n_C: int, lang: str) -> str:
    return tr("gram.all", lang, n_C=n_C) if n == n_C else tr("gram.some", lang, n=n, n_C=n_C)


def _heatmap(fig, ax, M: np.ndarray, channels, title: str, cmap: str, norm, lang: str) -> None:
    """One matrix over the channels: every channel labelled up to 20 of them, else evenly spaced."""
    im = ax.imshow(M, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_title(title, fontsize=_pt(fig, 1.1))
    n = len(channels)
    ticks = list(range(n)) if n <= 20 else list(range(0, n, int(math.ceil(n / 10))))
    labels = [str(channels[i]) for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90, fontsize=_pt(fig))
    ax.set_yticks(ticks, labels, fontsize=_pt(fig))
    ax.set_xlabel(tr("gram.k2", lang), fontsize=_pt(fig))
    ax.set_ylabel(tr("gram.k", lang), fontsize=_pt(fig))
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=_pt(fig))
    cb.ax.yaxis.get_offset_text().set_fontsize(_pt(fig))


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
    """The numbers behind :func:`gram_figure`.

    Returns ``layer``, ``shape`` ``(n_C, n_H, n_W)``, ``gram`` (full ``G[l]``), ``correlation``
    (full, :func:`channel_correlation`) and ``channels`` (the displayed channels, in display order;
    all of them when ``full``).
    """
    a = layer_activation(net, image, layer, size)
    G = gram_matrix(a)
    corr = channel_correlation(a)
    channels = select_channels(G.diagonal(), corr, None if full else n_channels, order)
    n_C, n_H, n_W = a.shape
    return {"layer": layer, "shape": (n_C, n_H, n_W), "gram": G, "correlation": corr, "channels": channels}


def gram_figure(net, image, layer: str = "relu2_1", n_channels: int = 16, full: bool = False, order: str = "cluster",
                size: int | None = None, summary: Mapping[str, Any] | None = None, lang: str = "en") -> Figure:
    """One image at one layer: its Gram matrix ``G[l]`` and the channel correlation, side by side.

    Shows the ``n_channels`` most energetic channels (largest ``G_kk``), ordered so that correlated
    channels sit together; ``full=True`` shows every channel.  ``G`` is drawn on a square-root scale
    from 0 to its largest entry (the diagonal dominates); the correlation on ``[-1, 1]``.
    """
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
    _heatmap(fig, axes[0], G, ch, tr("gram.one_g", lang), cmap, norm, lang)
    _heatmap(fig, axes[1], C, ch, tr("gram.one_corr", lang), "RdBu_r", mcolors.Normalize(-1, 1), lang)
    fig.suptitle(tr("gram.one_title", lang, layer=s["layer"], shown=_shown(len(ch), n_C, lang), n_H=n_H, n_W=n_W),
                 fontsize=_pt(fig, 1.2))
    return fig


# ---- two images: G(S), G(G), difference, J_style[l] ------------------------------------------


def gram_comparison(net, image_S, image_G, layer: str, n_channels: int | None = 16, normalization: str = "lecture",
                    full: bool = False, order: str = "cluster", size: int | None = None) -> dict[str, Any]:
    r"""The numbers behind :func:`gram_comparison_figure`.

    Returns ``gram_S`` (the style target: ``G[l](S)`` scaled by :func:`style_target`), ``gram_G``,
    ``j_style`` (``J_style[l](S, G)``, the same computation as :func:`style_layer_costs`),
    ``channels`` (displayed, in display order), ``shape_S``, ``shape_G``, ``layer``, ``normalization``,
    ``rescaled_S`` (whether the sizes differ) and ``scale`` (``M_G / M_S``).  The channels shown are
    the most energetic ones, by the diagonal of ``G(S) + G(G)``; their order clusters the
    correlation of the two images' activations taken together.
    """
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
                           comparison: Mapping[str, Any] | None = None, lang: str = "en") -> Figure:
    """``G[l](S)``, ``G[l](G)`` and ``G[l](S) - G[l](G)`` as heatmaps, ``J_style[l]`` in the title.

    The ``n_channels`` most energetic channels (``full=True``: all), correlated channels together.

    Colour scales, chosen so that the *structure* shows: a photo's Gram matrix can be a hundred
    times smaller than a painting's, so on a shared scale it is black.  The two Gram matrices are
    each divided by their own diagonal, ``G_kk' / sqrt(G_kk G_k'k')`` (0..1 for ReLU layers: how much
    channels ``k`` and ``k'`` fire at the same places), on one fixed scale.  The difference is the raw
    ``G(S) - G(G)`` that ``J_style[l]`` sums (squared), on a diverging scale of its own centred on 0
    (signed square root, so that a few large entries do not wash out the rest).
    A fourth panel says how to read the figure.  ``J_style[l]`` is computed on the *whole* matrices
    with ``normalization`` (see :mod:`teachkit.costs`).
    """
    c = comparison if comparison is not None else gram_comparison(
        net, image_S, image_G, layer, n_channels, normalization, full, order, size)
    ch = c["channels"]
    GS = _np(c["gram_S"])[np.ix_(ch, ch)]
    GG = _np(c["gram_G"])[np.ix_(ch, ch)]
    s, g = labels
    fig = _figure(lang, 10, 9.8)
    axes = fig.subplots(2, 2)
    cs, cg = _by_diagonal(GS), _by_diagonal(GG)
    if min(cs.min(), cg.min()) >= 0:
        norm, cmap = mcolors.Normalize(0, 1), "magma"
    else:  # conv layers: both signs
        norm, cmap = mcolors.Normalize(-1, 1), "RdBu_r"
    _heatmap(fig, axes[0, 0], cs, ch, tr("gram.cmp_cos", lang, name=s), cmap, norm, lang)
    _heatmap(fig, axes[0, 1], cg, ch, tr("gram.cmp_cos", lang, name=g), cmap, norm, lang)
    _heatmap(fig, axes[1, 0], GS - GG, ch, tr("gram.cmp_diff", lang, s=s, g=g), "RdBu_r", _symmetric(GS - GG, sqrt=True), lang)
    note = axes[1, 1]
    note.axis("off")
    text = tr("gram.cmp_how", lang, s=s, g=g)
    if c.get("rescaled_S"):
        text += "\n\n" + tr("gram.rescaled", lang, s=s, f=c.get("scale", float("nan")))
    note.text(0.0, 1.0, text, va="top", ha="left", fontsize=_pt(fig), transform=note.transAxes, wrap=False)
    n_C = c["shape_G"][0]
    norm_name = tr(f"gram.norm.{c['normalization']}", lang)
    fig.suptitle(tr("gram.cmp_title", lang, layer=c["layer"], shown=_shown(len(ch), n_C, lang), s=s, g=g,
                    j=_num(c["j_style"])) + "   " + tr("gram.norm", lang, norm=norm_name), fontsize=_pt(fig, 1.2))
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
            raise InputError("gram.channel_range", name=name, value=repr(c), layer=layer, last=n_C - 1)
    k, k2 = int(k), int(k2)
    product = a[k] * a[k2]
    return {"layer": layer, "k": k, "k2": k2, "map_k": a[k], "map_k2": a[k2], "product": product,
            "product_sum": float(product.double().sum()), "gram": float(gram_matrix(a)[k, k2]),
            "correlation": float(channel_correlation(a[[k, k2]])[0, 1]), "image": x}


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
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cb.ax.tick_params(labelsize=_pt(fig))
    cb.ax.yaxis.get_offset_text().set_fontsize(_pt(fig))


def pair_figure(net, image, layer: str = "relu3_1", k: int | None = None, k2: int | None = None,
                which: str = "most", size: int | None = None, explained: Mapping[str, Any] | None = None,
                lang: str = "en") -> Figure:
    """The image, map ``k``, map ``k'`` and their product (2 x 2), titled ``Σ product = G_kk' = …``.

    When ``k``/``k2`` are not given the pair is picked by ``which`` (``'most'`` or ``'least'``
    correlated, see :func:`pick_pair`).
    """
    if explained is None:
        x = to_input(image, size)
        if k is None or k2 is None:
            k, k2, _ = pick_pair(layer_activation(net, x, layer), which)
        explained = pair_explainer(net, x, layer, k, k2)
    e = explained
    fig = _figure(lang, 10, 9.0)
    axes = fig.subplots(2, 2)
    _show_image(fig, axes[0, 0], e["image"], tr("gram.image", lang))
    _show_map(fig, axes[0, 1], e["map_k"], tr("gram.map", lang, which="k", c=e["k"]))
    _show_map(fig, axes[1, 0], e["map_k2"], tr("gram.map", lang, which="k'", c=e["k2"]))
    _show_map(fig, axes[1, 1], e["product"], tr("gram.product", lang), cmap="inferno")
    fig.suptitle(tr("gram.pair_title", lang, layer=e["layer"], sum=f"{e['product_sum']:.6g}", gram=f"{e['gram']:.6g}",
                    corr=f"{e['correlation']:+.2f}"), fontsize=_pt(fig, 1.2))
    return fig


# ---- position blindness ----------------------------------------------------------------------


def shuffle_tiles(image_tensor: torch.Tensor, tiles: int = 4, seed: int = 0) -> torch.Tensor:
    """Cut the image into a ``tiles x tiles`` grid and put the tiles back in a random order.

    ``image_tensor`` is ``(3, H, W)`` or ``(N, 3, H, W)``; the result has the same shape.  When ``H``
    or ``W`` is not a multiple of ``tiles``, the few leftover rows/columns at the bottom/right stay
    where they are.  The permutation is fixed by ``seed`` and moves every tile (for ``tiles > 1``).
    """
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
    r"""Shuffle the tiles of ``image`` and measure what changes.

    * ``gram_rel_diff`` = ``‖G[l](x) − G[l](x_shuffled)‖_F / ‖G[l](x)‖_F`` at ``layer_style``;
    * ``content_rel_diff`` = ``‖a[l](x) − a[l](x_shuffled)‖ / ‖a[l](x)‖`` at ``layer_content``.

    The Gram matrix sums over positions, so moving pieces around hardly changes it (only the new
    edges along the tile borders add a little); the feature maps themselves are moved, so they
    change a lot.  Also returns ``image`` and ``shuffled`` (tensors), the layers, ``tiles`` and ``seed``.
    More tiles mean more new edges along the borders, and a larger Gram change.
    """
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
    """Bars of ``J_style[l]`` per layer (from :func:`style_layer_costs`, or a transfer's progress).

    ``values``: ``{layer: J_style[l]}``, or ``Progress.values`` (``'style/<layer>'`` keys), or a
    ``Progress``.  With ``weights`` (``λ[l]``) a second bar shows each layer's share of the total,
    ``λ[l] J_style[l]``.  ``log=None`` picks a log scale when the values span more than 100x.
    """
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
