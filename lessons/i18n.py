"""The session's language: interface words, lesson texts, translated choice widgets, errors.

Interface words are catalogue messages (``teachkit/locale/<lang>/LC_MESSAGES/ui.po``, read by
:mod:`teachkit.messages`): ``tr(key)`` is message ``ui.<key>``.  Lesson texts are the sections of
``lessons/text/<lang>/<page>.md``.  The language lives in ``st.session_state[LANG_KEY]``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from teachkit.memory import OutOfMemory, out_of_memory
from teachkit.messages import LANGS, Message, TeachkitError, catalogue
from teachkit.messages import text as _text

TEXT_DIR = Path(__file__).parent / "text"
LANG_KEY = "ui_lang"  #: app.py sets it; the sidebar switch changes it

#: page keys whose words the catalogue holds under another id (one text, one id)
SAME_AS = {"p3_alpha": "option.alpha", "p3_beta": "option.beta", "p5_g_noise": "option.init.noise",
           "p3_step_axis": "exercises.fig.step", "p3_total": "ui.value_total", "value_activation": "viz.colorbar"}


def lang() -> str:
    """The language of this session: 'en' or 'zh'."""
    value = st.session_state.get(LANG_KEY, "en")
    return value if value in LANGS else "en"


def switch_lang() -> None:
    """The sidebar switch's callback: its value (widget key ``lang``) becomes the session's language."""
    value = st.session_state.get("lang")
    if value in LANGS:
        st.session_state[LANG_KEY] = value


def msg_id(key: str) -> str:
    """The catalogue id of interface key ``key``."""
    return SAME_AS.get(key) or f"ui.{key}"


def has_ui(key: str) -> bool:
    return msg_id(key) in catalogue("en")


def tr(key: str, **fmt: Any) -> str:
    """Interface words ``ui.<key>`` in the session's language."""
    return _text(msg_id(key), lang(), **fmt)


def say(message_id: str, **fmt: Any) -> str:
    """Any catalogue message in the session's language."""
    return _text(message_id, lang(), **fmt)


@functools.lru_cache(maxsize=None)
def sections(language: str, page: str) -> dict[str, str]:
    """The ``<!-- @name -->`` sections of ``text/<language>/<page>.md``."""
    from teachkit.handout import read_sections

    return read_sections(TEXT_DIR / language / f"{page}.md")


def text(page: str, section: str, **fmt: Any) -> str:
    """One section of a lesson text in the session's language."""
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
    """A choice widget (radio, selectbox, select_slider, ...) with translated labels.
    Streamlit knows the chosen option by its label, so the widget key carries the language
    (``key + '__' + lang``) and the choice itself is kept under ``key``: a language switch keeps it."""
    options = list(options)
    current = st.session_state.get(key, default if default is not None else options[0])
    if current not in options:
        current = default if default in options else options[0]
    if widget is st.select_slider:
        kwargs["value"] = current
    else:
        kwargs["index"] = options.index(current)
    names = {o: (labels(o) if labels else str(o)) for o in options}
    value = widget(label, options, key=f"{key}__{lang()}", format_func=names.__getitem__, **kwargs)
    st.session_state[key] = value
    return value


def page_title(n: int) -> None:
    st.title(f"{n}. {tr(f'title_{n}')}")


def progress_message(message: Message | str | None) -> str:
    """A progress note: a :class:`~teachkit.messages.Message` in the session's language, a text as it is."""
    if isinstance(message, Message):
        return message.text(lang())
    return message or ""


def value_label(name: str) -> str:
    """The name of a cost value in a progress line (``total``, ``content``, ``style``, ``distance``...)."""
    return tr(f"value_{name}") if has_ui(f"value_{name}") else name


def error_text(err: BaseException | str) -> str:
    """An error as the session's language shows it.
    A :class:`~teachkit.messages.TeachkitError` by its id; memory running out as the one line naming
    what to lower; a text the app worded itself as it is; anything else as one general sentence,
    the details going to the server log."""
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
    """Around a demo in the page's own thread: out of memory shows :func:`error_text`'s line and stops
    the page; every other error passes through."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        if out_of_memory(err) is None:
            raise
        st.error(error_text(err))
        st.stop()
