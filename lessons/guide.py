"""The guided parts of every page: "what to look for" lines, check-your-understanding questions,
the teacher's note, and the projector switch (larger text everywhere).

Texts come from the lesson files (``lessons/text/<lang>/<page>.md``): sections ``look_<figure>``,
``q1``/``a1``, ``q2``/``a2``, ... and ``teacher``.
"""

from __future__ import annotations

import streamlit as st

from teachkit.lessons.i18n import has_text, text, tr

#: width (CSS px) of the page's main column in a 1280-px-wide browser with the sidebar open
#: (Streamlit's wide layout: 791 px measured with Chromium); figures are sized for a little less,
#: so that their smallest text stays >= 14 px (tests/test_browser.py checks it)
PAGE_PX = 760
GAP_PX = 16  # st.columns' default gap ("small", 1 rem)


def projector() -> bool:
    """The sidebar's projector switch: larger figures text and larger page text."""
    return bool(st.session_state.get("projector", False))


TEXT_PX, PROJECTOR_PX = 14, 20  #: smallest figure text (CSS px): normally, and with the projector switch on


def text_px() -> int:
    """The smallest text of a figure, in CSS px: 14, or 20 with the projector switch on."""
    return PROJECTOR_PX if projector() else TEXT_PX


def column_px(spec, i: int, total: int = PAGE_PX) -> float:
    """The width (px) of column ``i`` of ``st.columns(spec)`` in a row ``total`` px wide."""
    spec = [1] * spec if isinstance(spec, int) else list(spec)
    return (total - GAP_PX * (len(spec) - 1)) * spec[i] / sum(spec)


def fontsize_for(width_in: float, display_px: float, px: float | None = None) -> float:
    """The font size (pt) that appears as ``px`` CSS px in a figure ``width_in`` inches wide shown ``display_px`` wide."""
    px = text_px() if px is None else px
    return round(px * width_in * 72.0 / display_px, 1)


_PROJECTOR_CSS = """
<style>
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] li,
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] td { font-size: 1.4rem; }
[data-testid="stMainBlockContainer"] [data-testid="stCaptionContainer"] { font-size: 1.15rem; }
[data-testid="stMainBlockContainer"] label p { font-size: 1.2rem; }
[data-testid="stMainBlockContainer"] h1 { font-size: 3rem; }
[data-testid="stMainBlockContainer"] h3 { font-size: 2rem; }
</style>
"""


def projector_switch() -> None:
    """The sidebar toggle; with it on, the page text grows too (CSS)."""
    # its default is its state: a switch the browser draws afresh keeps what the teacher chose
    st.toggle(tr("projector"), value=projector(), key="projector", help=tr("projector_help"))
    if projector():
        st.html(_PROJECTOR_CSS)


def look(page: str, name: str) -> None:
    """The "what to look for" line under a figure (section ``look_<name>``)."""
    st.markdown(f":material/visibility: **{tr('look_for')}** {text(page, 'look_' + name)}")


def questions(page: str) -> None:
    """The page's check-your-understanding questions: predict, then reveal (sections q1/a1, q2/a2, ...)."""
    st.divider()
    st.subheader(tr("quiz_title"))
    st.caption(tr("quiz_how"))
    i = 1
    while has_text(page, f"q{i}"):
        st.markdown(f"**{i}.** {text(page, f'q{i}')}")
        with st.expander(tr("quiz_reveal", n=i)):
            st.markdown(text(page, f"a{i}"))
        i += 1


def teacher_note(page: str) -> None:
    """A collapsed box for the teacher: what to demonstrate, in what order, how long it takes."""
    with st.expander(tr("teacher_note"), icon=":material/school:"):
        st.markdown(text(page, "teacher"))
