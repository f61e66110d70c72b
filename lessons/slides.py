"""Slide mode: one figure or formula and its one-line point per screen, in the lecture's order (← / → or
the buttons; lessons/slides_deck.py).  A slide fits the screen: the sidebar starts closed, a figure is as
high as the window leaves room for (checked at 1280×800 and 1920×1080 in Chromium)."""

from __future__ import annotations

import streamlit as st

from teachkit.lessons import guide
from teachkit.lessons.i18n import lang, text, tr

from teachkit.lessons.slides_deck import SLIDES

LANG, PX = lang(), guide.PROJECTOR_PX  # slides are for the back of the room: the projector's text size always

_SLIDE_CSS = """
<style>
[data-testid="stMainBlockContainer"] { padding-top: 3.9rem; padding-bottom: 0.5rem; }
[data-testid="stMainBlockContainer"] h2 { font-size: clamp(1.6rem, 2.6vw, 3rem); line-height: 1.25; padding-top: 0; }
[data-testid="stMain"] [data-testid="stImage"] img { max-height: calc(100vh - 10.5rem - min(6.5vw, 7.5rem));
  object-fit: contain; }
[data-testid="stMain"] .katex-display > .katex { font-size: min(2.8vw, 5vh); }
[data-testid="stMain"] button p { white-space: nowrap; }
</style>
"""


def _move(step: int) -> None:
    """A button's callback: the slide changes before the page is drawn, so both buttons know where we are."""
    st.session_state["slide_i"] = max(0, min(int(st.session_state.get("slide_i", 0)) + step, len(SLIDES) - 1))


i = max(0, min(int(st.session_state.get("slide_i", 0)), len(SLIDES) - 1))
st.session_state["slide_i"] = i
nav = st.container(horizontal=True, gap="small", vertical_alignment="center")
nav.button(tr("slides_prev"), key="slide_prev", icon=":material/arrow_back:", shortcut="Left",
           disabled=i == 0, width="content", on_click=_move, args=(-1,))
nav.button(tr("slides_next"), key="slide_next", icon=":material/arrow_forward:", shortcut="Right",
           disabled=i == len(SLIDES) - 1, width="content", on_click=_move, args=(1,))
lesson, page, section, make = SLIDES[i]
nav.caption(tr("slides_count", i=i + 1, n=len(SLIDES), lesson=lesson, title=tr(f"title_{lesson}")) + " · "
            + tr("slides_keys"))

st.html(_SLIDE_CSS)
st.header(text(page, section))
shown = make(LANG, PX)
if shown is None:
    st.info(tr("slides_missing"))
elif isinstance(shown, str):
    st.latex(shown)
elif isinstance(shown, list):
    for col, item in zip(st.columns(len(shown)), shown):
        img, caption = item if isinstance(item, tuple) else (item, None)
        col.image(img, caption=caption, width="stretch")
else:
    st.image(shown, width="stretch")
