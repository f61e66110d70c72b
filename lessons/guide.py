"""The guided parts of every page (texts: the sections ``look_*``, ``q1``/``a1``..., ``teacher`` of
``lessons/text/<lang>/<page>.md``): "what to look for" lines, questions, the teacher's note, the projector
switch, a live demo's summary line, the handout download and the extra pages (lesson 1's address, slides)."""

from __future__ import annotations

import streamlit as st

from teachkit.lessons.i18n import has_text, lang, say, text, tr

#: width (CSS px) figures are sized for: a little less than the main column in a 1280-px browser with
#: the sidebar open (791 px), so that their smallest text stays >= 14 px (tests/test_browser.py)
PAGE_PX = 760
GAP_PX = 16  # st.columns' default gap ("small", 1 rem)

PROJECTOR_KEY = "ui_projector"  #: the session's projector mode (the sidebar switch's widget key is "projector")
PROJECTOR_PARAM = "projector"  #: ?projector=1 in the address: a reload or a shared link keeps it


def projector() -> bool:
    """The projector mode: larger figure text, larger page text, controls and charts."""
    if PROJECTOR_KEY not in st.session_state:  # the first run of a session: the address decides
        st.session_state[PROJECTOR_KEY] = st.query_params.get(PROJECTOR_PARAM) == "1"
    return bool(st.session_state[PROJECTOR_KEY])


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


# Projector mode: the page's own text, every control (buttons, dropdowns and their open lists, radios,
# sliders, chips, tabs, expanders, metrics) and the sidebar grow; long labels may wrap instead of being
# cut with "…"; dropdowns and chips show their whole option text (tests/test_browser.py checks both).
_PROJECTOR_CSS = """
<style>
[data-testid="stMainBlockContainer"] { padding-left: 1.5rem; padding-right: 1.5rem; }
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] li,
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"] td { font-size: 1.4rem !important; }
[data-testid="stMainBlockContainer"] [data-testid="stCaptionContainer"],
[data-testid="stMainBlockContainer"] [data-testid="stCaptionContainer"] p,
[data-testid="stMainBlockContainer"] [data-testid="stImageCaption"] { font-size: 1.2rem !important; }
[data-testid="stMainBlockContainer"] label p,
[data-testid="stMainBlockContainer"] [data-testid="stWidgetLabel"] p { font-size: 1.25rem !important; }
[data-testid="stMainBlockContainer"] h1 { font-size: 3rem !important; }
[data-testid="stMainBlockContainer"] h3 { font-size: 2rem !important; }
[data-testid="stMainBlockContainer"] .katex { font-size: 1.5em !important; }
[data-testid="stMain"] button p { font-size: 1.25rem !important; white-space: normal; }
[data-testid="stMain"] button { min-height: 3rem; padding-left: 1rem; padding-right: 1rem; }
[data-testid="stMain"] input, [role="listbox"] [role="option"], [role="listbox"] [role="option"] * { font-size: 1.15rem !important; }
[data-testid="stMain"] [data-tag] { max-width: none; height: auto; }
[data-testid="stMain"] [data-tag] span { font-size: 1.15rem !important; max-width: none; overflow: visible; }
[data-testid="stMain"] [data-testid="stSliderThumbValue"],
[data-testid="stMain"] [data-testid="stSliderTickBarMin"],
[data-testid="stMain"] [data-testid="stSliderTickBarMax"] { font-size: 1.15rem !important; }
[data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 2.6rem !important; }
[data-testid="stMain"] [data-testid="stExpander"] summary p { font-size: 1.3rem !important; }
[data-testid="stSidebar"] p, [data-testid="stSidebar"] span { font-size: 1.1rem !important; }
</style>
"""

# Chips never cut their text, and the open list of a dropdown wraps a long option (in either mode); the
# chosen option of a closed dropdown is an <input>, which cannot wrap: its texts are kept short
# (ui.po) and the browser test checks that none is cut.
_WHOLE_OPTIONS_CSS = """
<style>
[data-testid="stMain"] [data-tag] { max-width: none; }
[data-testid="stMain"] [data-tag] span { max-width: none; overflow: visible; text-overflow: clip; }
[role="listbox"] [role="option"] { white-space: normal; }
</style>
"""


def streamlit_words_css() -> str:
    """Streamlit's own "Stop" / "Stopping..." (the status widget at the top while a page runs) in the
    session's language: drawn at size 0 with the translation after it (it has no setting for them)."""
    if lang() == "en":
        return ""
    stop, stopping = tr("st_stop"), tr("st_stopping")
    w = '[data-testid="stStatusWidget"] button'
    return ("<style>"
            f"{w} {{ font-size: 0 !important; }} {w} * {{ font-size: 0 !important; }}"
            f'{w}::after {{ content: "{stop}"; font-size: 0.875rem; }}'
            f'{w}:disabled::after {{ content: "{stopping}"; }}'
            "</style>")


def _uploader_css(projector_on: bool) -> str:
    """The uploader's own words at the projector's size: its English words, or (Chinese) the
    translations lessons/uploads.py draws after them while the originals stay at size 0."""
    if not projector_on:
        return ""
    zone, words = '[data-testid="stFileUploaderDropzone"]', '[data-testid="stFileUploaderDropzoneInstructions"] span'
    if lang() == "en":
        return f"<style>{zone} {words} {{ font-size: 1.1rem !important; }}</style>"
    return ("<style>"
            f'{zone} [data-testid="stBaseButton-secondary"] p {{ font-size: 0 !important; }}'
            f'{zone} [data-testid="stBaseButton-secondary"] p::after {{ font-size: 1.25rem !important; }}'
            f"{zone} {words} {{ font-size: 0 !important; }} {zone} {words}::after {{ font-size: 1.1rem !important; }}"
            "</style>")


def _switch_projector() -> None:
    st.session_state[PROJECTOR_KEY] = bool(st.session_state.get("projector"))


def projector_switch() -> None:
    """The sidebar toggle; with it on, the page text, the controls and the charts grow too (CSS).
    The mode is kept in the session and in the address (``?projector=1``), like the language."""
    on = projector()
    # its default is its state: a switch the browser draws afresh keeps what the teacher chose
    st.toggle(tr("projector"), value=on, key="projector", help=tr("projector_help"), on_change=_switch_projector)
    on = projector()
    if on and st.query_params.get(PROJECTOR_PARAM) != "1":
        st.query_params[PROJECTOR_PARAM] = "1"
    elif not on and PROJECTOR_PARAM in st.query_params:
        del st.query_params[PROJECTOR_PARAM]
    st.html(_WHOLE_OPTIONS_CSS + streamlit_words_css() + (_PROJECTOR_CSS if on else "") + _uploader_css(on))


def chart(spec: dict) -> dict:
    """A Vega-Lite spec as the page shows it: fonts and height grow with the projector mode."""
    if not projector():
        return spec
    import copy

    spec = copy.deepcopy(spec)
    spec["height"] = int(spec.get("height", 300) * 1.4)
    config = spec.setdefault("config", {})
    axis = config.setdefault("axis", {})
    axis.update(labelFontSize=22, titleFontSize=24)
    config.setdefault("legend", {}).update(labelFontSize=22, symbolSize=300)
    if isinstance(spec.get("title"), dict):
        spec["title"]["fontSize"] = 26
    legend = spec.get("encoding", {}).get("color", {}).get("legend")
    if isinstance(legend, dict):
        legend["labelFontSize"] = 22
    return spec


def look(page: str, name: str) -> None:
    """The "what to look for" line under a figure (section ``look_<name>``)."""
    st.markdown(f":material/visibility: **{say('handout.look')}** {text(page, 'look_' + name)}")


def questions(page: str) -> None:
    """The page's check-your-understanding questions: predict, then reveal (sections q1/a1, q2/a2, ...),
    and the page's printable handout."""
    st.divider()
    st.subheader(say("handout.questions"))
    st.caption(tr("quiz_how"))
    i = 1
    while has_text(page, f"q{i}"):
        st.markdown(f"**{i}.** {text(page, f'q{i}')}")
        with st.expander(tr("quiz_reveal", n=i)):
            st.markdown(text(page, f"a{i}"))
        i += 1
    handout_button(page)


def teacher_note(page: str) -> None:
    """A collapsed box for the teacher: what to demonstrate, in what order, how long it takes.
    ``{limit}`` in the note is the demos' time limit now in force (TEACHKIT_DEMO_SECONDS)."""
    from teachkit.lessons import settings as cfg

    limit = cfg.demo_seconds()
    with st.expander(say("handout.teacher"), icon=":material/school:"):
        st.markdown(text(page, "teacher").replace("{limit}", say("handout.limit", secs=limit) if limit else say("handout.no_limit")))


def run_summary(done: int, total: int, seconds: float, size: int, stopped: bool, limit: float | None = None) -> str:
    """The line under a live demo: honest about a run the time limit cut short, or one sized to fit in
    ``limit`` with fewer steps than planned."""
    if stopped and done < total:
        return tr("stopped_at_limit", done=done, total=total, secs=seconds, size=size)
    if done < total and limit:
        return tr("fitted", done=done, total=total, secs=seconds, size=size, limit=limit)
    return tr("finished_in", secs=seconds, steps=done, size=size)


# ---- the printable handout ------------------------------------------------------------------------


def handout_button(page: str) -> None:
    """Download this lesson's handout (HTML, print it from the browser); made only when pressed."""
    from teachkit.lessons.pages import PAGES

    number = next((p.number for p in PAGES if p.file == f"{page}.py"), None)
    if number is None:
        return
    language = lang()

    def make() -> bytes:
        from teachkit.handout import lesson_html
        from teachkit.lessons.resources import load_net

        return lesson_html(number, language, net=load_net()).encode("utf-8")  # the app's one shared network

    st.download_button(tr("handout_download"), make, file_name=f"teachkit_lesson{number}_{language}.html",
                       mime="text/html", key=f"handout_{number}", icon=":material/print:", on_click="ignore",
                       help=tr("handout_help"))


# ---- pages beside the six lessons -------------------------------------------------------------------


ROOT_PATH = "home"  #: the name the default page reserves (Streamlit serves it at "/"), leaving its slug free


def own_url_path(page) -> str:
    """The ``url_path`` of a lesson's ``st.Page``: its slug, except the default page's (see :func:`extra_pages`)."""
    return ROOT_PATH if page.number == 1 else page.slug


def extra_pages() -> list:
    """Lesson 1 at its own address too, and the slide mode (``/slides``).
    Streamlit serves the default page at ``/`` only, yet reserves its ``url_path``; so the default page
    reserves :data:`ROOT_PATH` and a hidden page runs lesson 1 at ``/layers`` (its slug)."""
    from pathlib import Path

    from teachkit.lessons.pages import PAGES

    first = PAGES[0]
    here = Path(__file__).resolve().parent
    return [
        st.Page(first.path, title=f"{first.number}. {tr(f'title_{first.number}')}", icon=first.icon,
                url_path=first.slug, visibility="hidden"),
        st.Page(here / "slides.py", title=tr("slides_title"), icon=":material/slideshow:", url_path="slides"),
    ]
