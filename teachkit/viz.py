"""Matplotlib figures shared by the CLI, the Streamlit app and notebooks.

Every function returns a ``matplotlib.figure.Figure`` (never calls ``plt.show``), built with the
object-oriented API so it is safe from several threads; save it with :func:`save_figure`.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from . import figtext


def save_figure(fig: Figure, path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (png/jpg/pdf/svg), checking the path first; returns the Path.

    Written under a temporary name and renamed when complete (never half a file on Ctrl-C)."""
    from .fileio import atomic_write
    from .images import check_output_path

    path = check_output_path(path, "figure")
    fmt = path.suffix[1:].lower().replace("jpg", "jpeg")
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


# ---- cost curves (transfer history) -----------------------------------------------------------


def plot_history(history, *, layers: bool = False, weights=None, title: str | None = None,
                 figsize=(7.5, 4.5), lang: str | None = None) -> Figure:
    """Each cost term of a transfer over the steps, on a log scale, in ``lang`` (default: the process's).

    ``history``: ``TransferResult.history`` (or ``StyleTransfer.history``, or a ``--log`` file's).
    ``layers=True`` adds a thin line per style layer.  ``weights`` (a ``TransferPlan``, each record
    weighted with its own scale's, or one weights dict) plots what each term adds to J
    (:func:`teachkit.costs.weighted_record`, the app's chart's data too), so the curves add up to the
    total; without it the unweighted terms.  Dotted lines mark the scale changes.  ``title`` None: the
    catalogue's; '' none.  Missing or non-positive values are left out.
    """
    import math

    from .costs import weighted_record
    from .messages import language

    lang = lang or language()
    _font_for(lang)
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    history = list(history or [])

    if weights is None:
        points = history
    else:
        points = [weights.weighted(r) if hasattr(weights, "weighted") else weighted_record(r, weights)
                  for r in history]

    def series(key):
        xs, ys = [], []
        for i, (r, p) in enumerate(zip(history, points)):
            v = p.get(key)
            if isinstance(v, (int, float)) and math.isfinite(float(v)) and v > 0:
                xs.append(r.get("step", i + 1))
                ys.append(float(v))
        return xs, ys

    weighted = weights is not None
    curves = [("content", "α·J_content" if weighted else "J_content", "tab:blue", 1.6, "-"),
              ("style", "β·J_style" if weighted else figtext.tr("viz.history_style", lang), "tab:red", 1.6, "-"),
              ("tv", "w_TV·TV" if weighted else figtext.tr("viz.history_tv", lang), "tab:green", 1.6, "-")]
    if layers:
        keys = list(dict.fromkeys(k for r in history for k in r if k.startswith("style/")))
        curves += [(k, f"β·λ[{k[6:]}]·J_style[{k[6:]}]" if weighted else f"J_style[{k[6:]}]", None, 0.8, "--")
                   for k in keys]
    curves.append(("total", figtext.tr("viz.history_total", lang), "black", 2.2, "-"))
    drawn = 0
    for key, label, colour, width, style in curves:
        xs, ys = series(key)
        if xs:
            ax.plot(xs, ys, color=colour, lw=width, ls=style, alpha=0.8 if style == "--" else 1.0, label=label)
            drawn += 1
    for prev, cur in zip(history, history[1:]):  # the scale changes of a coarse-to-fine run
        if cur.get("scale", 1) != prev.get("scale", 1) and "step" in cur:
            ax.axvline(cur["step"] - 0.5, color="grey", ls=":", lw=1)
            ax.text(cur["step"], 1.0, figtext.tr("viz.history_px", lang, size=cur.get("size", "")),
                    transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=8, color="grey")
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, figtext.tr("viz.history_empty", lang), ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(figtext.tr("viz.history_step", lang))
    ax.set_ylabel(figtext.tr("viz.history_weighted" if weighted else "viz.history_cost", lang))
    if title is None:
        title = figtext.tr("viz.history_title", lang)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


# ---- patches: units, layers ---------------------------------------------------------------------
#
# A unit = one channel of one layer (the same detector applied at every position).  Every figure
# names the channel and the layer and gives the receptive-field size; patches are the receptive
# fields cut out of the scanned images (grey where the field reaches over the image border, i.e.
# where the network saw zero padding).
#
# Text sizes: ``fontsize`` is the smallest text of a figure, in points; titles are larger.  The app
# shows a figure at 1 pt = 1 CSS px (see lessons/resources.py), so ``fontsize=14`` means 14 px text.



def _font_for(lang: str) -> None:
    """Register the Chinese font before a Chinese figure makes its first text (texts keep the
    font family they were made with)."""
    if lang != "en":
        figtext.use_cjk_font()


def unit_label(atlas, layer: str, unit: int, lang: str = "en") -> str:
    """``unit = channel 17 of layer relu3_1, receptive field 24×24 px`` in ``lang``."""
    rf = atlas.rf(layer)
    if lang == "en":
        return atlas.unit_label(layer, unit)
    return figtext.tr("viz.unit_label", lang, unit=int(unit), layer=layer, h=rf.size, w=rf.size_x)


def _show_patch(ax, img) -> None:
    """A patch, drawn with visible pixels when small (a 3x3 field stays three blocks wide)."""
    import numpy as np

    arr = np.asarray(img)
    ax.imshow(arr, interpolation="nearest" if max(arr.shape[:2]) < 64 else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _fmt_value(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def unit_figure(atlas, dataset, layer: str, unit: int, *, n: int | None = None,
                ncols: int | None = None, lang: str = "en", fontsize: float = 14.0,
                width: float | None = None) -> Figure:
    """A unit's top patches in a grid, best first, each with its activation value.

    Title: ``unit = channel N of layer L, receptive field S×S px``.  ``dataset`` may be None
    (the atlas re-opens its own images); ``n`` limits the number of patches.  ``fontsize`` is the
    smallest text (pt); ``width`` the figure width in inches (default: 2.3 per column).
    """
    import math

    _font_for(lang)
    hits = atlas.top(layer, unit, n)
    patches = atlas.patches(layer, unit, dataset, n)
    count = max(len(patches), 1)
    ncols = ncols or max(1, math.ceil(math.sqrt(count)))
    nrows = math.ceil(count / ncols)
    width = width or 2.3 * ncols + 0.4
    cell = (width - 0.2) / ncols
    fig = Figure(figsize=(width, cell * nrows + 0.45 * nrows * fontsize / 14 + 1.6 * fontsize / 14),
                 layout="constrained")
    fig.suptitle(unit_label(atlas, layer, unit, lang), fontsize=fontsize * 1.15, fontweight="bold", wrap=True)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, hit, img in zip(axes.flat, hits, patches):
        ax.set_axis_on()
        _show_patch(ax, img)
        ax.set_title(figtext.tr("viz.activation", lang, value=_fmt_value(hit.value)), fontsize=fontsize)
    m = atlas.meta
    note = figtext.tr("viz.unit_note_short", lang)
    if not hits:
        note = figtext.tr("viz.no_images", lang, name=m["dataset_name"])
    elif max(h.value for h in hits) <= 0:
        note = figtext.tr("viz.never_fired", lang)
    fig.supxlabel(note, fontsize=fontsize, color="0.3")
    return fig


def activation_map_figure(atlas, dataset, layer: str, unit: int, backbone=None, *,
                          image_index: int | None = None, rank: int = 0, lang: str = "en",
                          fontsize: float = 14.0, width: float = 11.0, stacked: bool = False) -> Figure:
    """A unit's activation over a whole scanned image (default: its best one).

    Left (``stacked``: top): the image with the receptive field of the strongest position drawn;
    right (bottom): the activation map laid over the image (each cell covers one feature-map step).
    """
    from matplotlib.patches import Rectangle

    _font_for(lang)
    am = atlas.activation_map(layer, unit, dataset, backbone, image_index=image_index, rank=rank)
    rf = am.rf
    h, w = am.values.shape
    size = atlas.image_size
    top, left, bottom, right = am.box
    if stacked:
        fig = Figure(figsize=(width, width * 1.6 + 1.6 * fontsize / 14), layout="constrained")
        ax_img, ax_map = fig.subplots(2, 1)
    else:
        fig = Figure(figsize=(width, width * 0.5 + 0.9 * fontsize / 14), layout="constrained")
        ax_img, ax_map = fig.subplots(1, 2)
    fig.suptitle(unit_label(atlas, layer, unit, lang), fontsize=fontsize * 1.15, fontweight="bold", wrap=True)
    # The field can reach over the border: show a little of the outside too.
    lo = min(-0.5, left - 0.5, top - 0.5) - 2
    hi = max(size - 0.5, right - 0.5, bottom - 0.5) + 2
    for ax in (ax_img, ax_map):
        ax.set_facecolor("0.5")
        ax.imshow(am.image, extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="antialiased")
        ax.set_xlim(lo, hi)
        ax.set_ylim(hi, lo)
        ax.set_xticks([])
        ax.set_yticks([])
    extent = (rf.offset_x - rf.stride_x / 2, rf.offset_x + rf.stride_x * (w - 0.5),
              rf.offset + rf.stride * (h - 0.5), rf.offset - rf.stride / 2)
    im = ax_map.imshow(am.values, extent=extent, cmap="inferno", alpha=0.7, interpolation="nearest")
    cbar = fig.colorbar(im, ax=ax_map, shrink=0.8)
    cbar.set_label(figtext.tr("viz.colorbar", lang), fontsize=fontsize)
    cbar.ax.tick_params(labelsize=fontsize)
    for ax, colour in ((ax_img, "yellow"), (ax_map, "cyan")):
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                               edgecolor=colour, linewidth=2.5))
    ax_img.set_title(figtext.tr("viz.map_image", lang, name=_image_name(atlas, dataset, am.image_index, lang)),
                     fontsize=fontsize)
    ax_map.set_title(figtext.tr("viz.map_values", lang, h=h, w=w, y=am.peak[0], x=am.peak[1]), fontsize=fontsize)
    return fig


def _image_name(atlas, dataset, index: int, lang: str = "en") -> str:
    """The scanned image as its dataset names it (a photo's file and which crop), else its number."""
    try:
        name = atlas.open_dataset(dataset).description(int(index))
        return name if isinstance(name, str) else name.text(lang)
    except Exception:  # noqa: BLE001 - a title only
        return f"#{index}"


def _patch_tile(img, px: int):
    """A patch resized to ``px`` x ``px`` (blocky when enlarged, smooth when reduced)."""
    import numpy as np
    from PIL import Image

    resample = Image.NEAREST if img.size[0] < px else Image.LANCZOS
    return np.asarray(img.convert("RGB").resize((px, px), resample))


def layer_overview_figure(atlas, dataset=None, layers=None, n_units: int = 4, *,
                          how: str = "most_active", per_unit: int | None = None,
                          units: dict | None = None, tile_px: int = 48, lang: str = "en",
                          fontsize: float = 14.0, columns: int | None = None, width: float | None = None) -> Figure:
    """The lecture's picture: a few units per layer, each with its top patches, layers side by side.

    Each layer is one panel, its units in a square grid (9 units: 3 x 3, as on the course's
    slide); each unit a small square block of its ``per_unit`` (default k) best patches.  Units
    are chosen by :func:`teachkit.patches.select_units` (``how``), or given per layer in ``units``.
    ``columns`` panels per row (default: all layers in one row), the whole ``width`` inches wide
    (default 3.6 per panel) -- two per row fits a web page with patches large enough to see.
    """
    import math

    import numpy as np

    from .patches import select_units

    _font_for(lang)
    layers = list(atlas.layers if layers is None else ([layers] if isinstance(layers, str) else layers))
    if not layers:
        raise ValueError("no layers to show")
    ds = atlas.open_dataset(dataset)
    per_unit = min(per_unit or atlas.k, atlas.k)
    g = math.ceil(math.sqrt(per_unit))  # a unit's block is g x g tiles
    gap, margin = 2, 12
    block = g * tile_px + (g - 1) * gap
    chosen = {layer: list((units or {}).get(layer) or select_units(atlas, layer, how, n_units, dataset=ds))
              for layer in layers}

    def canvas_of(layer: str, cols: int):
        n = len(chosen[layer])
        nrow = max(1, math.ceil(n / cols))
        canvas = np.full((nrow * block + (nrow - 1) * margin, cols * block + (cols - 1) * margin, 3), 255, np.uint8)
        for j, unit in enumerate(chosen[layer]):
            r, c = divmod(j, cols)
            y0, x0 = r * (block + margin), c * (block + margin)
            for t, patch in enumerate(atlas.patches(layer, unit, ds, per_unit)):
                ty, tx = divmod(t, g)
                y, x = y0 + ty * (tile_px + gap), x0 + tx * (tile_px + gap)
                canvas[y:y + tile_px, x:x + tile_px] = _patch_tile(patch, tile_px)
        return canvas

    m = atlas.meta
    title = figtext.tr("viz.overview_title", lang, net=m["backbone"], images=m["n_images"], name=m["dataset_name"])
    columns = max(1, min(int(columns or len(layers)), len(layers)))
    n_rows = math.ceil(len(layers) / columns)
    width = width or 3.6 * columns + 0.5
    panel = (width - 0.3) / columns
    fig = Figure(figsize=(width, n_rows * (panel + 0.75 * fontsize / 14) + 0.8 * fontsize / 14), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06)
    fig.suptitle(title, fontsize=fontsize * 1.15, fontweight="bold", wrap=True)
    axes = list(fig.subplots(n_rows, columns, squeeze=False).flat)
    for ax in axes:
        ax.set_axis_off()
    for ax, layer in zip(axes, layers):
        n = len(chosen[layer])
        ax.imshow(canvas_of(layer, max(1, math.ceil(math.sqrt(n)))), interpolation="antialiased")
        rf = atlas.rf(layer)
        ax.set_title(figtext.tr("viz.layer_rf", lang, layer=layer, h=rf.size, w=rf.size_x), fontsize=fontsize * 1.1)
    return fig


def smallest_text_pt(fig: Figure, *, drawn: bool = False) -> float | None:
    """The size (pt) of the smallest text that ``fig`` draws (None: no text).

    The figure is laid out first (tick labels exist only once it is drawn) unless ``drawn`` says
    that it has just been drawn as it is; hidden axes and empty texts do not count.
    """
    if not drawn:
        fig.draw_without_rendering()
    texts = [*fig.texts, getattr(fig, "_suptitle", None), getattr(fig, "_supxlabel", None),
             getattr(fig, "_supylabel", None)]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            for axis, labels in ((ax.xaxis, ax.get_xticklabels()), (ax.yaxis, ax.get_yticklabels())):
                if axis.get_visible():
                    texts += [axis.label, *labels]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    sizes = [t.get_fontsize() for t in texts if t is not None and t.get_visible() and t.get_text().strip()]
    return min(sizes) if sizes else None


def figure_png(fig: Figure, dpi: int = 144) -> bytes:
    """``fig`` rendered to PNG bytes on a white background (for web pages and caches).

    The PNG carries its smallest text size in its metadata (``teachkit:min_text_px``, in image
    pixels), so a page -- or a browser test -- can tell how large that text appears on screen.
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    # savefig has just laid the figure out: measuring now costs no second drawing
    smallest = smallest_text_pt(fig, drawn=True)
    data = buf.getvalue()
    if smallest is None:
        return data
    return png_with_text(data, "teachkit:min_text_px", f"{smallest * dpi / 72:.2f}")


def png_with_text(data: bytes, key: str, value: str) -> bytes:
    """PNG bytes with one more tEXt chunk (``key``: ``value``, Latin-1) right after the header chunk."""
    import struct
    import zlib

    signature, ihdr_end = 8, 8 + 12 + 13  # 8-byte signature, then IHDR: length, type, 13 data bytes, CRC
    if data[:signature] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    body = b"tEXt" + key.encode("latin-1") + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:ihdr_end] + chunk + data[ihdr_end:]
