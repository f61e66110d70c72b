"""Language: short interface strings, lesson texts and translated choice widgets.

* ``tr(key)`` -- a short label from ``lessons/_strings.py`` in the session's language;
* ``md(page, section)`` -- one section of ``lessons/text/<lang>/<page>.md`` as Markdown;
* ``choice(...)`` -- a radio/selectbox whose labels are translated but whose value is not;
* ``error_text(err)`` / ``progress_message(msg)`` -- teachkit's errors and progress notes, which are
  ids + parameters (:mod:`teachkit.messages`), rendered from the catalogue in the session's language;
  an out-of-memory error (torch's, the CPU allocator's, Python's) as the one line that says what to lower;
* ``out_of_memory_on_page()`` -- around a demo that runs in the page's thread: memory running out ends
  the demo with that line on the page, not a broken page.

The language lives in ``st.session_state[LANG_KEY]`` (set from ``?lang=`` by app.py, changed by the sidebar switch).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from teachkit.lessons._strings import UI
from teachkit.memory import OutOfMemory, out_of_memory
from teachkit.messages import LANGS, Message, TeachkitError

TEXT_DIR = Path(__file__).parent / "text"


LANG_KEY = "ui_lang"  #: where the session's language is kept (app.py sets it; the sidebar switch changes it)


def lang() -> str:
    """The language of this session: 'en' or 'zh'."""
    value = st.session_state.get(LANG_KEY, "en")
    return value if value in LANGS else "en"


def switch_lang() -> None:
    """The sidebar switch's callback: its value (widget key ``lang``) becomes the session's language."""
    value = st.session_state.get("lang")
    if value in LANGS:
        st.session_state[LANG_KEY] = value


def tr(key: str, **fmt: Any) -> str:
    """A short interface string in the session's language."""
    text = UI[key][lang()]
    return text.format(**fmt) if fmt else text


@functools.lru_cache(maxsize=None)
def sections(language: str, page: str) -> dict[str, str]:
    """The ``<!-- @name -->`` sections of ``text/<language>/<page>.md``."""
    from teachkit.handout import read_sections

    return read_sections(TEXT_DIR / language / f"{page}.md")


def text(page: str, section: str, **fmt: Any) -> str:
    """One section of a lesson text (``lessons/text/<lang>/<page>.md``, ``<!-- @section -->``)."""
    body = sections(lang(), page).get(section)
    if body is None:
        raise KeyError(f"lesson text {lang()}/{page}.md has no section {section!r}")
    return body.format(**fmt) if fmt else body


def has_text(page: str, section: str) -> bool:
    return section in sections(lang(), page)


def md(page: str, section: str, **fmt: Any) -> None:
    """Show one section of a lesson text as Markdown (LaTeX in $...$ and $$...$$)."""
    st.markdown(text(page, section, **fmt))


def choice(widget: Callable, label: str, options: list, key: str, *, default=None, labels: Callable | None = None,
           **kwargs):
    """A choice widget (``st.radio``, ``st.selectbox``, ``st.select_slider``, ...) with translated labels.

    Streamlit identifies the chosen option by its *label*, so a label that changes with the
    language would lose (or garble) the choice on a language switch.  Here the widget key carries
    the language and the chosen option is kept under ``key`` itself, so switching the language
    keeps the choice.  Tests find the widget as ``key + '__' + lang``.
    """
    options = list(options)
    current = st.session_state.get(key, default if default is not None else options[0])
    if current not in options:
        current = default if default in options else options[0]
    wkey = f"{key}__{lang()}"
    if widget is st.select_slider:
        kwargs["value"] = current
    else:
        kwargs["index"] = options.index(current)
    # Labels are fixed now (not looked up later), so the widget's format_func does not depend on state.
    names = {o: (labels(o) if labels else str(o)) for o in options}
    value = widget(label, options, key=wkey, format_func=names.__getitem__, **kwargs)
    st.session_state[key] = value
    return value


def page_title(n: int) -> None:
    st.title(f"{n}. {tr(f'title_{n}')}")


def progress_message(message: Message | str | None) -> str:
    """A progress note in the session's language: a :class:`teachkit.messages.Message` (``Progress.msg``)
    rendered from the catalogue by its id; a text the app worded itself, as it is."""
    if isinstance(message, Message):
        return message.text(lang())
    return message or ""


def value_label(name: str) -> str:
    """The name of a cost value in a progress line (``total``, ``content``, ``style``, ``distance``...)."""
    key = f"value_{name}"
    return tr(key) if key in UI else name


def error_text(err: BaseException | str) -> str:
    """An error as the session's language shows it.

    A :class:`teachkit.messages.TeachkitError` (ImageError, BackboneError, ConfigError, ...) is
    rendered by its id and parameters; memory running out (torch's out-of-memory error, the CPU
    allocator's, Python's ``MemoryError``, or one of teachkit's :class:`~teachkit.memory.OutOfMemory`)
    is the one line that names the page's controls to lower; a text the app worded itself (a
    classroom limit) is shown as it is; any other exception becomes one general sentence, its
    details going to the server log (for the teacher).
    """
    if isinstance(err, BaseException) and (isinstance(err, OutOfMemory) or not isinstance(err, TeachkitError)):
        oom = out_of_memory(err, for_app=True)
        if oom is not None:
            logging.getLogger(__name__).warning("teachkit app: out of memory: %s: %s", type(err).__name__, err)
            return oom.text(lang())
    if isinstance(err, TeachkitError):
        return err.text(lang())
    if isinstance(err, str):
        return err
    logging.getLogger(__name__).warning("teachkit app: an unexpected error: %s: %s", type(err).__name__, err)
    return tr("error_internal")


@contextlib.contextmanager
def out_of_memory_on_page():
    """``with out_of_memory_on_page(): ...`` -- a demo in the page's own thread (lessons 2-5) that runs
    out of memory ends with :func:`error_text`'s one line (what to lower, in the session's language)
    and the page stops there; every other error passes through unchanged."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        if out_of_memory(err) is None:
            raise
        st.error(error_text(err))
        st.stop()
