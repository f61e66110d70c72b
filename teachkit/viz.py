"""Matplotlib figures shared by the CLI, the Streamlit app and notebooks: each function returns a ``Figure``
built without pyplot (safe from several threads); :func:`figure_png` renders one and says in its metadata
how its text came out (smallest size, overlapping texts)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from . import figtext


def save_figure(fig: Figure, path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (png/jpg/pdf/svg; checked first, written whole or not at all); returns it."""
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
    """Each cost term of a transfer's ``history`` over the steps, log scale, in ``lang`` (default: the
    process's); ``layers``: a thin line per style layer.  With ``weights`` (a ``TransferPlan`` or one weights
    dict) what each term adds to J (:func:`teachkit.costs.weighted_record`).  Dotted lines mark the scale
    changes; ``title`` None: the catalogue's, '' none."""
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
# A unit = one channel of one layer; its patches are its receptive fields in the scanned images (grey
# where a field reaches over the border).  ``fontsize``: a figure's smallest text, in points.


def _font_for(lang: str) -> None:
    """The Chinese font registered before a Chinese figure's first text (a text keeps its font)."""
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
    """A unit's top ``n`` patches in a grid, best first, each with its activation value, under
    :func:`unit_label`; ``dataset`` None: the atlas's own; ``width`` in inches (default 2.3 per column)."""
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
    """A unit's activation over a whole scanned image (default: its best one): the image with the receptive
    field of the strongest position, and the activation map laid over it (``stacked``: one above the other)."""
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
                     fontsize=fontsize, wrap=True)  # a long photo name and crop: two lines, not a wider figure
    ax_map.set_title(figtext.tr("viz.map_values", lang, h=h, w=w, y=am.peak[0], x=am.peak[1]), fontsize=fontsize)
    return fig


def _image_name(atlas, dataset, index: int, lang: str = "en", longest: int = 24) -> str:
    """The scanned image as its dataset names it (a photo's file and which crop), else its number; a word
    longer than ``longest`` (a teacher's long file name) keeps its ends, so that the title can wrap."""
    try:
        name = atlas.open_dataset(dataset).description(int(index))
        name = name if isinstance(name, str) else name.text(lang)
    except Exception:  # noqa: BLE001 - a title only
        return f"#{index}"
    half = (longest - 1) // 2
    return " ".join(w if len(w) <= longest else f"{w[:half]}…{w[-half:]}" for w in name.split(" "))


def zoom(img, factor: int = 3):
    """The middle ``1/factor`` of a picture, enlarged back to its size, pixels kept square (what is lost in
    fine detail shows)."""
    w, h = img.size
    left, top = w * (factor - 1) // (2 * factor), h * (factor - 1) // (2 * factor)
    return img.crop((left, top, left + w // factor, top + h // factor)).resize((w, h), resample=0)  # 0: nearest


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
    """The lecture's picture: per layer a panel of ``n_units`` units in a square grid (chosen by
    :func:`teachkit.patches.select_units` ``how``, or given in ``units``), each a block of its ``per_unit``
    best patches; ``columns`` panels per row (default: all in one), ``width`` inches (default 3.6 a panel)."""
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
    line = fontsize * 1.25 / 72  # inches a line of text takes: panel titles have 3, the title 2
    fig = Figure(figsize=(width, n_rows * (panel + 3.8 * line) + 2.8 * line), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.2)
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


def _tick_labels(axis) -> list:
    """The tick labels ``axis`` draws: those of the (major and minor) ticks inside its view."""
    lo, hi = sorted(axis.get_view_interval())
    tol, out = 1e-9 * max(abs(lo), abs(hi), 1e-300), []
    for locs, ticks in ((axis.get_majorticklocs(), axis.get_major_ticks),
                        (axis.get_minorticklocs(), axis.get_minor_ticks)):
        out += [label for tick, loc in zip(ticks(len(locs)), locs) if lo - tol <= loc <= hi + tol
                for label in (tick.label1, tick.label2)]
    return out


def drawn_texts(fig: Figure) -> list:
    """The texts ``fig`` draws as laid out now: its own, and per visible axes (colour bars too) titles, texts,
    legend and, where its axis is on, labels, offset texts and the tick labels in view (none hidden or empty)."""
    texts = list(fig.texts)
    for ax in (a for top in fig.axes for a in (top, *top.child_axes) if a.get_visible()):  # colour bars: children
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis) if ax.axison else ():
            texts += [axis.label, axis.offsetText, *_tick_labels(axis)] if axis.get_visible() else []
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]:
        texts += [*legend.get_texts(), legend.get_title()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def smallest_text_pt(fig: Figure, *, drawn: bool = False) -> float | None:
    """The size (pt) of the smallest text ``fig`` draws (None: none), laid out first unless just ``drawn``."""
    if not drawn:
        fig.draw_without_rendering()
    sizes = [t.get_fontsize() for t in drawn_texts(fig)]
    return min(sizes) if sizes else None


def text_overlaps(fig: Figure, renderer=None) -> list[tuple[str, str]]:
    """The pairs of texts of ``fig`` (their strings) whose extents on ``renderer`` (None: laid out first) overlap
    by more than a font's leading (0.15 of its size), or that run together on one line (closer than 1/4)."""
    if renderer is None:
        fig.draw_without_rendering()
        renderer = fig._get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer), renderer.points_to_pixels(t.get_fontsize()),
              t.get_rotation()) for t in drawn_texts(fig)]
    out = []
    for i, (a, box_a, px_a, turn_a) in enumerate(boxes):
        for b, box_b, px_b, turn_b in boxes[i + 1:]:
            wide = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            high = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            one_line = turn_a == turn_b and high > 0.5 * min(box_a.height, box_b.height)
            if high > 0.15 * min(px_a, px_b) and (wide > 1 or (one_line and wide > -0.25 * min(px_a, px_b))):
                out.append((a, b))
    return out


def figure_png(fig: Figure, dpi: int = 144) -> bytes:
    """``fig`` as PNG bytes on white, its metadata measured on savefig's own drawing: the smallest text
    (``teachkit:min_text_px``, image pixels) and the pairs of texts that overlap (``teachkit:overlaps``, the
    first pair's strings as JSON in ``teachkit:overlap``), for a page or a browser test to check."""
    import io
    import json

    measured = {}

    def measure(event):  # the last drawing is savefig's real one (a tight bbox draws once before it)
        measured.update(pt=smallest_text_pt(fig, drawn=True), overlaps=text_overlaps(fig, event.renderer))

    buf = io.BytesIO()
    hook = fig.canvas.mpl_connect("draw_event", measure)
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        fig.canvas.mpl_disconnect(hook)
    data, pairs = buf.getvalue(), measured.get("overlaps", [])
    if measured.get("pt") is not None:
        data = png_with_text(data, "teachkit:min_text_px", f"{measured['pt'] * dpi / 72:.2f}")
    if pairs:
        data = png_with_text(data, "teachkit:overlap", json.dumps(pairs[0]))  # ASCII: tEXt is Latin-1
    return png_with_text(data, "teachkit:overlaps", str(len(pairs)))


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
