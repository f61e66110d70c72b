"""Bilingual text for figures, and a CJK font for matplotlib.

The words of the figures are messages like every other (:mod:`teachkit.messages`): ids in the
gettext domain ``figures`` -- ``teachkit/locale/{en,zh}/LC_MESSAGES/figures.po`` -- read with Babel
through :func:`teachkit.messages.domain_catalogue`.  A figure looks its words up with :func:`tr` and
the caller's ``lang`` (``"en"`` or ``"zh"``)::

    ax.set_title(figtext.tr("viz.layer_rf", lang, layer=layer, h=24, w=24))

``tests/test_messages.py`` checks that both languages have every id with the same parameters and
that the code uses each one.

:func:`use_cjk_font` (called by the first ``tr(key, "zh")``) registers a Chinese font shipped by a pip
package (``mplfonts``: Noto Sans CJK SC, OFL) with matplotlib's font manager, so figures render
Chinese text on any machine.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Mapping

from .messages import LOCALE_DIR, TeachkitError, domain_catalogue

__all__ = ["CJK_FONT", "DOMAIN", "LANGS", "FontError", "cjk_font_path", "figure_texts", "tr",
           "use_cjk_font"]

LANGS = ("en", "zh")
DOMAIN = "figures"  #: the gettext domain of figure texts (figures.po)


def figure_texts(lang: str) -> dict[str, str]:
    """The figure texts of one language: id -> text, from ``locale/<lang>/LC_MESSAGES/figures.po``."""
    return domain_catalogue(LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po")


def tr(key: str, lang: str = "en", **fmt) -> str:
    """The text for ``key`` in ``lang``, formatted with ``fmt``."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGS)}")
    if lang == "zh" and not _font_ready:
        use_cjk_font()  # a figure that shows Chinese text needs the font: register it on first use
    text = figure_texts(lang).get(key)
    if text is None:
        raise KeyError(f"no figure text {key!r} in {DOMAIN}.po")
    return text.format(**fmt) if fmt else text


# ---- a Chinese font for matplotlib -------------------------------------------------------------

#: the family name of the font registered by :func:`use_cjk_font`
CJK_FONT = "Noto Sans CJK SC"
_FONT_FILE = "NotoSansCJKsc-Regular.otf"
_font_lock = threading.Lock()
_font_ready = False


class FontError(TeachkitError, RuntimeError):
    """The Chinese font is missing (the ``mplfonts`` package is not installed): an id with parameters."""


def cjk_font_path() -> Path:
    """The Noto Sans CJK SC file shipped by the ``mplfonts`` package (found without importing it)."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise FontError("figure_font.no_mplfonts")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "fonts" / _FONT_FILE
        if path.is_file():
            return path
    raise FontError("figure_font.file_missing", file=f"fonts/{_FONT_FILE}")


def _all_weights(font_manager) -> None:
    """The bundled file has one weight (400); list it under every other weight too, so a bold title
    finds it (drawn at its own weight) instead of matplotlib warning at every bold text."""
    import dataclasses

    entries = [f for f in font_manager.fontManager.ttflist if f.name == CJK_FONT]
    have = {f.weight for f in entries}
    if entries:
        for weight in range(100, 1000, 100):
            if weight not in have:
                font_manager.fontManager.ttflist.append(dataclasses.replace(entries[0], weight=weight))
        cached = getattr(font_manager.fontManager, "_findfont_cached", None)
        if cached is not None and hasattr(cached, "cache_clear"):
            cached.cache_clear()  # forget earlier (warned) look-ups


def use_cjk_font() -> str:
    """Register Noto Sans CJK SC with matplotlib's font manager (once) and add it as a fallback font.

    Latin text keeps matplotlib's default sans-serif font; glyphs that font lacks (Chinese) come from
    Noto Sans CJK SC.  Returns the family name.  Safe to call from several threads.
    """
    global _font_ready
    with _font_lock:
        if not _font_ready:
            import matplotlib
            from matplotlib import font_manager

            font_manager.fontManager.addfont(str(cjk_font_path()))
            _all_weights(font_manager)
            families = list(matplotlib.rcParams["font.family"])
            if CJK_FONT not in families:
                # a fallback after the usual family: Latin letters and digits keep their usual look
                matplotlib.rcParams["font.family"] = families + [CJK_FONT]
            matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font has no U+2212 glyph
            _font_ready = True
    return CJK_FONT
