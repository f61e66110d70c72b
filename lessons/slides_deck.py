"""The slide deck of the slide mode (lessons/slides.py): one figure and its one-line point per slide, in the
lecture's order.  Each maker returns what to show (PNG bytes, a PIL image, a list of images, a LaTeX
string) or None when it has not been prepared yet; the point is the lesson text's ``slide_<name>`` section.
"""

from __future__ import annotations

from teachkit.lessons import jobs
from teachkit.lessons import resources as res
from teachkit.lessons import settings as cfg
from teachkit.features import DEFAULT_STYLE_LAYERS
from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE


def _atlas():
    builder = jobs.atlas_builder(cfg.atlas_default_dataset(), res.backbone(), DEFAULT_STYLE_LAYERS)
    return builder.atlas if builder.done.wait(0.1) else None


def _overview(lang, px):
    atlas = _atlas()
    return None if atlas is None else res.overview_png(atlas, lang, px)


def _patches(lang, px):
    atlas = _atlas()
    if atlas is None:
        return None
    unit = res.units(atlas, res.L1_LAYER, res.L1_HOW)[0]
    return res.unit_png(atlas, res.L1_LAYER, unit, lang, px)


def _gallery(lang, px):
    from teachkit.prepare import GALLERY

    item = res.prepared("gallery", *GALLERY[0])
    return None if item is None else item.final


def _content_grid(lang, px):
    item = res.prepared("content", DEFAULT_CONTENT)
    return None if item is None else item.images


def _pair(lang, px):
    k, k2, _ = res.l5_pair(DEFAULT_STYLE, res.L5_LAYER, res.L5_PAIR, res.l5_size())
    return res.pair_png_kk(DEFAULT_STYLE, res.L5_LAYER, k, k2, res.l5_size(), lang, px)


#: (lesson number, its text file, the slide's section, what to show) in the lecture's order
SLIDES = [
    (1, "1_layers", "slide_patches", _patches),
    (1, "1_layers", "slide_overview", _overview),
    (2, "2_style_transfer", "slide_gallery", _gallery),
    (3, "3_cost", "slide_formula",
     lambda lang, px: r"J(G) = \alpha\,J_{\text{content}}(C,G) + \beta\,J_{\text{style}}(S,G)"),
    (4, "4_content", "slide_grid", _content_grid),
    (5, "5_style", "slide_pair", _pair),
    (5, "5_style", "slide_heatmaps", lambda lang, px: res.comparison_png(
        DEFAULT_STYLE, res.l5_g_png("content", DEFAULT_STYLE), res.L5_LAYER, res.l5_size(), lang, px)),
    (5, "5_style", "slide_shuffle", lambda lang, px: res.shuffle_png(DEFAULT_STYLE, res.L5_TILES, res.l5_size(), lang, px)),
    (6, "6_run", "slide_example", _gallery),
]

