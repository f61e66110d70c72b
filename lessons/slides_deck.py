"""The deck of lessons/slides.py, in the lecture's order: each maker returns what to show (PNG bytes, an
image, a list of images or (image, caption) pairs, a LaTeX string; None: not prepared yet), the point is the
text's ``slide_<name>`` section.  Slide figures are one row, to fit a projector's screen large."""

from __future__ import annotations

import re

from teachkit.lessons import jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.lessons.i18n import sections
from teachkit.features import DEFAULT_STYLE_LAYERS
from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE

SLIDE_PX = 1200  #: the width (CSS px) a one-row slide figure is shown at on a 1280-px screen: its text is sized for it


def _atlas():
    builder = jobs.atlas_builder(cfg.atlas_default_dataset(), res.backbone(), DEFAULT_STYLE_LAYERS)
    return builder.atlas if builder.done.wait(0.1) else None


@res.cached(16)
def overview_row_png(atlas, lang: str, px: int) -> bytes:
    """Lesson 1's overview in one row: four units per layer, four patches each (large enough to see)."""
    from teachkit.viz import layer_overview_figure

    return res.fig_png(layer_overview_figure(atlas, None, n_units=4, per_unit=4, lang=lang, width=16.0,
                                             fontsize=res.fontsize_for(16.0, SLIDE_PX, px)))


@res.cached(16)
def wide_png(kind: str, lang: str, px: int) -> bytes:
    """Lesson 5's pair and heatmaps in one row each (teachkit.gram's ``wide`` layouts)."""
    from teachkit.gram import SHOWN_PX, gram_comparison_figure, pair_figure, text_size

    net, size = res.load_net(), res.l5_size()
    with text_size(px * SHOWN_PX / SLIDE_PX):
        if kind == "pair":
            k, k2, _ = res.l5_pair(DEFAULT_STYLE, res.L5_LAYER, res.L5_PAIR, size)
            return res.fig_png(pair_figure(net, res.picture(DEFAULT_STYLE, size), res.L5_LAYER, k=k, k2=k2, lang=lang,
                                           wide=True))
        g = res.open_png(res.l5_g_png("content", DEFAULT_STYLE))
        return res.fig_png(gram_comparison_figure(net, res.picture(DEFAULT_STYLE, size), g, res.L5_LAYER, lang=lang,
                                                  wide=True))


def _overview(lang, px):
    atlas = _atlas()
    return None if atlas is None else overview_row_png(atlas, lang, px)


def _patches(lang, px):
    atlas = _atlas()
    if atlas is None:
        return None
    unit = res.units(atlas, res.L1_LAYER, res.L1_HOW)[0]
    return [res.unit_png(atlas, res.L1_LAYER, unit, lang, px), res.where_png(atlas, res.L1_LAYER, unit, 0, lang, px)]


def _gallery(lang, px):
    """C, S and the finished G of the first gallery pair."""
    from teachkit.prepare import GALLERY

    item = res.prepared("gallery", *GALLERY[0])
    return None if item is None else [res.sample(item.meta["content"], 384), res.sample(item.meta["style"], 384),
                                      item.final]


def _frames(lang, px):
    """G along the run of that pair: the start, two frames on the way and the end, with their steps."""
    from teachkit.lessons.i18n import tr
    from teachkit.prepare import GALLERY

    item = res.prepared("gallery", *GALLERY[0])
    if item is None:
        return None
    last = len(item.images) - 1
    picks = sorted({0, last // 3, 2 * last // 3, last})
    return [(item.images[i], tr("p3_step_n", n=item.labels[i])) for i in picks]


def _formula(page: str, section: str, index: int = 0):
    """The ``index``-th display formula ($$ ... $$) of a lesson text's section: the lesson's own."""
    return lambda lang, px: re.findall(r"\$\$(.+?)\$\$", sections(lang, page)[section], re.S)[index].strip()


#: (lesson number, its text file, the slide's section, what to show) in the lecture's order
SLIDES = [
    (1, "1_layers", "slide_patches", _patches),
    (1, "1_layers", "slide_overview", _overview),
    (2, "2_style_transfer", "slide_gallery", _gallery),
    (3, "3_cost", "slide_formula", _formula("3_cost", "intro")),
    (4, "4_content", "slide_jcontent", _formula("4_content", "intro")),
    (4, "4_content", "slide_grid", lambda lang, px: getattr(res.prepared("content", DEFAULT_CONTENT), "images", None)),
    (5, "5_style", "slide_pair", lambda lang, px: wide_png("pair", lang, px)),
    (5, "5_style", "slide_gram", _formula("5_style", "gram")),
    (5, "5_style", "slide_jstyle", _formula("5_style", "gram", 1)),
    (5, "5_style", "slide_heatmaps", lambda lang, px: wide_png("heatmaps", lang, px)),
    (5, "5_style", "slide_layers", _formula("5_style", "layers")),
    (5, "5_style", "slide_shuffle",
     lambda lang, px: res.shuffle_png(DEFAULT_STYLE, res.L5_TILES, res.l5_size(), lang, px)),
    (6, "6_run", "slide_example", _frames),
]
