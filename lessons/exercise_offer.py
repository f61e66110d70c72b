"""The "do it yourself" box at the end of every lesson page: what the lesson's exercise is, and its
notebook (the student version, in the session's language) as a download.

The notebook is built from the sources shipped in teachkit (:mod:`teachkit.notebooks`).  Nothing a
student writes ever runs here: the exercises and their checks run in the student's own Jupyter.
"""

from __future__ import annotations

import functools

import streamlit as st

from teachkit import notebooks
from teachkit.lessons.i18n import lang
from teachkit.messages import text


@functools.lru_cache(maxsize=None)
def _notebook(number: int, language: str) -> tuple[str, bytes, str]:
    """(file name, .ipynb bytes, what the exercise is) of one lesson's student notebook."""
    les = notebooks.lesson(number)
    return (notebooks.file_name(les, language), notebooks.notebook_bytes(number, language),
            les.exercise[language])


def show(page: int | str) -> None:
    """The box for lesson ``page`` (its number, or the page's key such as ``'1_layers'``)."""
    number = page if isinstance(page, int) else int(str(page).split("_")[0])
    L = lang()
    name, data, exercise = _notebook(number, L)
    st.divider()
    with st.container(border=True):
        st.markdown(f"**{text('exercises.offer.title', L)}**")
        st.markdown(text("exercises.offer.what", L, exercise=exercise))
        st.download_button(text("exercises.offer.button", L), data, file_name=name,
                           mime="application/x-ipynb+json", key=f"notebook_{number}", on_click="ignore",
                           icon=":material/download:")
        st.caption(text("exercises.offer.how", L, number=number))
