"""Slide mode: one figure and its one-line point per screen, large, in the lecture's order (lessons 1-6).

← / → (or the buttons) go back and on.  The figures are the lessons' own, from the same caches (made
once per process, or prepared by ``teachkit prepare``); the one-line points are the ``slide_<name>``
sections of each lesson's text, so a slide says what its lesson says.
"""

from __future__ import annotations

import streamlit as st

from teachkit.lessons import guide
from teachkit.lessons import resources as res
from teachkit.lessons.i18n import lang, text, tr

from teachkit.lessons.slides_deck import SLIDES

LANG, PX = lang(), guide.PROJECTOR_PX  # slides are for the back of the room: the projector's text size always

_SLIDE_CSS = """
<style>
[data-testid="stMainBlockContainer"] h2 { font-size: 2.6rem; line-height: 1.25; }
</style>
"""

def _move(step: int) -> None:
    """A button's callback: the slide changes before the page is drawn, so both buttons know where we are."""
    st.session_state["slide_i"] = max(0, min(int(st.session_state.get("slide_i", 0)) + step, len(SLIDES) - 1))


i = max(0, min(int(st.session_state.get("slide_i", 0)), len(SLIDES) - 1))
st.session_state["slide_i"] = i
nav_back, nav_where, nav_next = st.columns([1, 4, 1], vertical_alignment="center")
nav_back.button(tr("slides_prev"), key="slide_prev", icon=":material/arrow_back:", shortcut="Left",
                disabled=i == 0, width="stretch", on_click=_move, args=(-1,))
nav_next.button(tr("slides_next"), key="slide_next", icon=":material/arrow_forward:", shortcut="Right",
                disabled=i == len(SLIDES) - 1, width="stretch", on_click=_move, args=(1,))
lesson, page, section, make = SLIDES[i]
nav_where.caption(tr("slides_count", i=i + 1, n=len(SLIDES), lesson=lesson, title=tr(f"title_{lesson}")) + "  \n"
                  + tr("slides_keys"))

st.html(_SLIDE_CSS)
st.header(text(page, section))
shown = make(LANG, PX)
if shown is None:
    st.info(tr("slides_missing"))
elif isinstance(shown, str):
    st.latex(shown)
elif isinstance(shown, bytes):
    res.show_png(shown)
elif isinstance(shown, list):
    cols = st.columns(len(shown))
    for col, img in zip(cols, shown):
        col.image(img, width="stretch")
else:
    st.image(shown, width="stretch")
