"""teachkit.viz and teachkit.figtext: bilingual figure text, the Chinese font, readable text sizes."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from teachkit import figtext, viz


def test_figtext_reads_figures_po_in_both_languages_and_refuses_unknowns():
    assert figtext.tr("gram.k", "en") == "channel k" and figtext.tr("gram.k", "zh") == "通道 k"
    assert figtext.tr("gram.all", "zh", n_C=64) == "全部 64 个通道"
    with pytest.raises(ValueError, match="unknown language"):
        figtext.tr("gram.k", "fr")
    with pytest.raises(KeyError, match="no figure text"):
        figtext.tr("test_viz.nothing", "en")


def test_chinese_text_is_drawn_with_the_shipped_font():
    """Every glyph of a Chinese title is found (matplotlib warns about any missing glyph)."""
    path = figtext.cjk_font_path()
    assert path.is_file() and path.suffix == ".otf"
    figtext.use_cjk_font()
    fig = Figure(figsize=(3, 1))
    fig.text(0.1, 0.5, "格拉姆矩阵：通道的相关性", fontsize=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would fail the test
        png = viz.figure_png(fig, dpi=72)
    # the characters were drawn: the picture is not blank
    arr = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert (arr < 128).sum() > 200


def test_bold_chinese_title_finds_the_font_without_a_warning(caplog):
    """The shipped font has one weight; a bold title must use it without 'Failed to find font weight'."""
    import logging

    from matplotlib import font_manager

    figtext.use_cjk_font()
    fig = Figure(figsize=(3, 1))
    fig.suptitle("格拉姆矩阵", fontsize=14, fontweight="bold")
    with caplog.at_level(logging.WARNING, logger="matplotlib.font_manager"):
        viz.figure_png(fig, dpi=72)
    assert not [r for r in caplog.records if "Failed to find font weight" in r.getMessage()]
    bold = font_manager.FontProperties(family=figtext.CJK_FONT, weight="bold")
    assert font_manager.fontManager.findfont(bold, fallback_to_default=False) == str(figtext.cjk_font_path())


def test_smallest_text_is_measured_and_written_into_the_png():
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.set_title("title", fontsize=18)
    ax.set_xlabel("x", fontsize=12)
    ax.tick_params(labelsize=9)
    ax.plot([0, 1], [0, 1])
    assert viz.smallest_text_pt(fig) == 9
    png = viz.figure_png(fig, dpi=144)
    meta = Image.open(io.BytesIO(png)).info
    assert float(meta["teachkit:min_text_px"]) == pytest.approx(9 * 144 / 72)
    assert viz.smallest_text_pt(Figure()) is None


def test_the_text_chunk_keeps_the_png_and_the_figure_is_drawn_no_more_than_savefig_does(monkeypatch):
    """figure_png measures the text on savefig's own drawing (a page figure is not drawn twice)."""
    def figure():
        fig = Figure(figsize=(3, 2))
        ax = fig.add_subplot()
        ax.imshow(np.arange(64).reshape(8, 8))
        ax.set_title("t", fontsize=11)
        ax.tick_params(labelsize=13)
        return fig

    draws = []
    real_draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(1), real_draw(self, renderer))[1])
    figure().savefig(io.BytesIO(), format="png", dpi=72, bbox_inches="tight", facecolor="white")
    plain = len(draws)
    draws.clear()
    png = viz.figure_png(figure(), dpi=72)
    assert len(draws) <= plain
    img = Image.open(io.BytesIO(png))
    img.load()  # every chunk's CRC is checked while decoding
    assert img.info["teachkit:min_text_px"] == "11.00"
    buf = io.BytesIO()
    figure().savefig(buf, format="png", dpi=72, bbox_inches="tight", facecolor="white")
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(buf)))
    with pytest.raises(ValueError, match="not a PNG"):
        viz.png_with_text(b"GIF89a" + bytes(40), "k", "v")


class _Atlas:
    """The little of an Atlas that the figures use: two layers, three units, planted patches."""

    layers = ["relu1_1", "relu2_1"]
    k = 4
    image_size = 32
    meta = {"backbone": "vgg19", "n_images": 3, "dataset_name": "toy"}

    class _RF:
        def __init__(self, size):
            self.size = self.size_x = size

    def rf(self, layer):
        return self._RF(3 if layer == "relu1_1" else 10)

    def unit_label(self, layer, unit):
        return f"unit = channel {unit} of layer {layer}, receptive field {self.rf(layer).size}×{self.rf(layer).size} px"

    def top(self, layer, unit, n=None):
        from collections import namedtuple

        Hit = namedtuple("Hit", "value")
        return [Hit(100.0 - i) for i in range(n or self.k)]

    def patches(self, layer, unit, dataset=None, n=None):
        return [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(n or self.k)]

    def open_dataset(self, dataset=None):
        return None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lesson1_figures_speak_the_language_and_keep_their_font_size(lang):
    atlas = _Atlas()
    unit = viz.unit_figure(atlas, None, "relu2_1", 1, ncols=2, lang=lang, fontsize=15)
    overview = viz.layer_overview_figure(atlas, None, n_units=2, units={"relu1_1": [0, 1], "relu2_1": [1, 2]},
                                         lang=lang, fontsize=16, columns=2, width=8)
    for fig, size in ((unit, 15), (overview, 16)):
        assert size <= viz.smallest_text_pt(fig) <= size * 1.2
        texts = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
        chinese = any("\u4e00" <= ch <= "\u9fff" for ch in texts)
        assert chinese == (lang == "zh"), texts
        for t in fig.findobj(lambda a: hasattr(a, "get_fontfamily") and hasattr(a, "get_text")):
            if any("\u4e00" <= ch <= "\u9fff" for ch in t.get_text()):  # drawn with the Chinese font
                assert figtext.CJK_FONT in t.get_fontfamily(), t.get_text()
    if lang == "en":  # the English title is the atlas's own label
        assert unit._suptitle.get_text() == "unit = channel 1 of layer relu2_1, receptive field 10×10 px"
    else:
        assert unit._suptitle.get_text() == "单元 = relu2_1 层的第 1 个通道，感受野 10×10 像素"
    # one panel per layer, two per row
    titles = [ax.get_title() for ax in overview.axes]
    assert titles[0].startswith("relu1_1") and titles[1].startswith("relu2_1")
    assert overview.get_figwidth() == 8


def test_plot_history_weighted_draws_each_part_with_its_scales_weights():
    """Weighted curves: alpha*J_content, beta*J_style, w_tv*TV with each record's own scale's weights
    (a coarse-to-fine 'auto' run has different weights per scale); J is the recorded total."""
    from teachkit.transfer import ScalePlan, TransferPlan

    w1 = {"alpha": 2.0, "beta": 3.0, "tv_weight": 0.5, "layer_weights": {"relu1_1": 1.0}}
    w2 = {"alpha": 0.5, "beta": 3.0, "tv_weight": 0.25, "layer_weights": {"relu1_1": 2.0}}
    plan = TransferPlan(None, (ScalePlan(1, 16, 16, 16, 1, 1, w1), ScalePlan(2, 32, 32, 32, 1, 1, w2)),
                        "cpu", "float32", None, "", "relu4_2", ("relu1_1",))
    history = [{"step": 1, "scale": 1, "content": 1.0, "style": 2.0, "tv": 4.0, "total": 10.0, "style/relu1_1": 2.0},
               {"step": 2, "scale": 2, "content": 4.0, "style": 1.0, "tv": 4.0, "total": 6.0, "style/relu1_1": 0.5}]
    fig = viz.plot_history(history, layers=True, weights=plan, lang="en")
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].get_lines() if ln.get_label()[0] != "_"}
    assert lines["α·J_content"] == [2.0, 2.0]
    assert lines["β·J_style"] == [6.0, 3.0]
    assert lines["w_TV·TV"] == [2.0, 1.0]
    assert lines["β·λ[relu1_1]·J_style[relu1_1]"] == [6.0, 3.0]
    assert lines[figtext.tr("viz.history_total", "en")] == [10.0, 6.0]
    unweighted = viz.plot_history(history, lang="en")
    labels = {ln.get_label(): list(ln.get_ydata()) for ln in unweighted.axes[0].get_lines()}
    assert labels["J_content"] == [1.0, 4.0]


def test_plot_history_speaks_the_language_it_is_given_or_the_process_speaks():
    from teachkit.messages import using_language

    history = [{"step": 1, "content": 1.0, "style": 2.0, "tv": 4.0, "total": 10.0}]
    with using_language("zh"):
        fig = viz.plot_history(history)  # what the 中文 notebook calls: no lang given
    words = [fig.axes[0].get_title(), fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel(),
             *(t.get_text() for t in fig.axes[0].get_legend().get_texts())]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in w) for w in words[:3]), words
    assert figtext.tr("viz.history_total", "zh") in words and "J(G), the total" not in words
    en = viz.plot_history(history, lang="en")
    assert en.axes[0].get_xlabel() == figtext.tr("viz.history_step", "en")


# ---- no two texts of a figure overlap (issue 26): measured on the figure's own text extents ----------


def _overlaps(fig) -> tuple[int, list]:
    """What figure_png writes into the PNG: the number of overlapping pairs, and the first pair."""
    import json

    info = Image.open(io.BytesIO(viz.figure_png(fig, dpi=100))).info
    return int(info["teachkit:overlaps"]), json.loads(info.get("teachkit:overlap", "[]"))


def test_the_overlap_check_catches_planted_overlaps_and_passes_texts_apart():
    def planted(*texts, rotation=0):
        fig = Figure(figsize=(4, 2))
        for x, y, s in texts:
            fig.text(x, y, s, fontsize=14, rotation=rotation if s == "turned" else 0)
        return fig

    assert _overlaps(planted((0.1, 0.5, "a title here"), (0.2, 0.5, "a label"))) == (1, ["a title here", "a label"])
    assert _overlaps(planted((0.1, 0.5, "one"), (0.1, 0.55, "two"))) == (1, ["one", "two"])  # one over the other
    assert _overlaps(planted((0.1, 0.5, "left"), (0.6, 0.5, "right"))) == (0, [])  # side by side
    assert _overlaps(planted((0.1, 0.2, "low"), (0.1, 0.7, "high"))) == (0, [])  # one above the other
    # two labels on one line that touch ("a = 819a = 815"): run together, though their boxes do not cross
    fig = Figure(figsize=(4, 2))
    first = fig.text(0.1, 0.5, "a = 819", fontsize=14)
    fig.draw_without_rendering()
    right = first.get_window_extent(fig._get_renderer()).x1 / fig.bbox.width
    fig.text(right + 0.002, 0.5, "a = 815", fontsize=14)
    assert _overlaps(fig) == (1, ["a = 819", "a = 815"])
    # tick labels are texts too: crowded channel numbers on an axis are caught, hidden axes are not
    fig = Figure(figsize=(2, 2))
    ax = fig.add_subplot()
    ax.set_xticks(range(40), [str(100 + i) for i in range(40)], fontsize=14)
    assert _overlaps(fig)[0] > 10
    ax.set_axis_off()
    assert _overlaps(fig) == (0, [])


class _MapAtlas(_Atlas):
    """... with five layers, activation maps, and large activation values (four digits: the widest labels)."""

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]

    def rf(self, layer):
        return self._RF({"relu1_1": 3, "relu2_1": 10, "relu3_1": 24, "relu4_1": 68, "relu5_1": 156}[layer])

    def top(self, layer, unit, n=None):
        from collections import namedtuple

        return [namedtuple("Hit", "value image_index")(2819.4 - 13 * i, 0) for i in range(n or self.k)]

    def activation_map(self, layer, unit, dataset=None, backbone=None, image_index=None, rank=0):
        from types import SimpleNamespace

        rf = SimpleNamespace(offset=1.0, offset_x=1.0, stride=2, stride_x=2, size=5, size_x=5)
        return SimpleNamespace(values=np.random.default_rng(0).random((16, 16)), image=np.zeros((32, 32, 3)),
                               image_index=0, peak=(3, 4), box=(4, 6, 9, 11), rf=rf)

    def open_dataset(self, dataset=None):
        """A teacher's photo with a long name (the map's title must wrap, not widen the figure)."""
        from types import SimpleNamespace

        return SimpleNamespace(description=lambda i: "our_school_trip_to_the_mountains_day_two.jpg, crop 1/3 at (x=341, y=385)")


# the two far ends (the browser walks check the pages in all four): English at the page's text size, Chinese
# (wider glyphs) at the projector's
@pytest.mark.parametrize("lang, px", [("en", 14), ("zh", 20)], ids=["en-normal", "zh-projector"])
def test_lesson1_and_history_figures_have_no_overlapping_texts(lang, px):
    """The app's sizes (lessons/resources.py): the text is px high in the column the figure is shown in."""
    atlas = _MapAtlas()
    atlas.k = 9
    figs = {
        "unit": viz.unit_figure(atlas, None, "relu1_1", 1, ncols=3, lang=lang, width=5.0, fontsize=px * 5 * 72 / 330),
        "map": viz.activation_map_figure(atlas, None, "relu1_1", 1, lang=lang, stacked=True, width=5.5,
                                         fontsize=px * 5.5 * 72 / 413),
        "overview": viz.layer_overview_figure(atlas, None, n_units=4, lang=lang, columns=1 if px >= 20 else 2,
                                              width=11.0, fontsize=px * 11 * 72 / 760,
                                              units={layer: [0, 1, 2, 3] for layer in atlas.layers}),
        "overview_slide": viz.layer_overview_figure(atlas, None, n_units=4, per_unit=4, lang=lang, width=16.0,
                                                    fontsize=px * 16 * 72 / 1200,  # lessons/slides_deck.py
                                                    units={layer: [0, 1, 2, 3] for layer in atlas.layers}),
        "history": viz.plot_history([{"step": i, "content": 50 / i, "style": 1e4 / i ** 2, "total": 9e3 / i,
                                      "scale": 1 + (i > 20), "size": 128 * (1 + (i > 20))} for i in range(1, 40)],
                                    lang=lang),
    }
    for name, fig in figs.items():
        assert _overlaps(fig) == (0, []), (name, lang, px)
    # a long photo name wraps: the saved figure keeps its own width (+ savefig's 0.1-inch pad each side), so
    # its text is not shrunk on the page (2 % more: a wrapped line may touch the edge)
    for name in ("unit", "map"):
        width = Image.open(io.BytesIO(viz.figure_png(figs[name], dpi=100))).size[0]
        assert width <= (figs[name].get_figwidth() + 0.2) * 100 * 1.02, (name, lang, width)
