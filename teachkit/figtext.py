"""Bilingual text for figures: one table of strings, and a CJK font for matplotlib.

Every module that draws a figure registers its own strings here at import time::

    figtext.register({"gram.title": {"en": "Gram matrix of {layer}", "zh": "{layer} 的格拉姆矩阵"}})

and looks them up with :func:`tr` and the caller's ``lang`` (``"en"`` or ``"zh"``).  A key missing in
one language is an error at registration, so a Chinese page never silently shows English.

:func:`use_cjk_font` (called by the first ``tr(key, "zh")``) registers a Chinese font shipped by a pip package (``mplfonts``: Noto Sans CJK SC,
OFL) with matplotlib's font manager, so figures render Chinese text on any machine.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Mapping

__all__ = ["CJK_FONT", "LANGS", "FontError", "cjk_font_path", "register", "tr", "use_cjk_font"]

LANGS = ("en", "zh")
_TABLE: dict[str, dict[str, str]] = {}


def register(strings: Mapping[str, Mapping[str, str]]) -> None:
    """Add ``{key: {"en": ..., "zh": ...}}`` to the table (both languages required)."""
    for key, texts in strings.items():
        missing = [lang for lang in LANGS if not texts.get(lang)]
        if missing:
            raise ValueError(f"figure text {key!r} lacks {', '.join(missing)}")
        old = _TABLE.get(key)
        if old is not None and dict(old) != dict(texts):
            raise ValueError(f"figure text {key!r} registered twice with different texts")
        _TABLE[key] = dict(texts)


def tr(key: str, lang: str = "en", **fmt) -> str:
    """The text for ``key`` in ``lang``, formatted with ``fmt``."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGS)}")
    if lang == "zh" and not _font_ready:
        use_cjk_font()  # a figure that shows Chinese text needs the font: register it on first use
    try:
        text = _TABLE[key][lang]
    except KeyError:
        raise KeyError(f"no figure text registered for {key!r}") from None
    return text.format(**fmt) if fmt else text


# ---- a Chinese font for matplotlib -------------------------------------------------------------

#: the family name of the font registered by :func:`use_cjk_font`
CJK_FONT = "Noto Sans CJK SC"
_FONT_FILE = "NotoSansCJKsc-Regular.otf"
_font_lock = threading.Lock()
_font_ready = False


class FontError(RuntimeError):
    """The Chinese font is missing (the ``mplfonts`` package is not installed)."""


def cjk_font_path() -> Path:
    """The Noto Sans CJK SC file shipped by the ``mplfonts`` package (found without importing it)."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise FontError("the Chinese figure font needs the package 'mplfonts' (pip install mplfonts)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "fonts" / _FONT_FILE
        if path.is_file():
            return path
    raise FontError(f"the package 'mplfonts' has no fonts/{_FONT_FILE}; reinstall it (pip install -U mplfonts)")


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
