r"""The lessons' notebooks: one diffable source per lesson, built into ``.ipynb`` in English or Chinese,
for students (exercise cells empty) or teachers (with the solutions).

Each lesson is one file here (``lesson1_layers.py`` ...) in the "percent" format of jupytext and VS Code
(``# %%`` starts a cell), so that both languages, the exercise and its solution sit side by side.  Added
to that format: ``# %% [markdown] en`` / ``zh`` (a text cell in one language; without: both);
``# %% exercise`` / ``# %% check`` (cell tags); ``# en: ...`` / ``# zh: ...`` (a comment line in one
language); ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` (in the student's version: ``# your code here``
and ``raise NotImplementedError``, which every check answers with a hint); ``# %magic`` (an IPython
magic, uncommented in the notebook); ``__LANG__`` (the notebook's language code); and header lines
``# title en: ...``, ``# exercise zh: ...`` (what the app shows beside its download button).  The builder
writes nbformat 4.5 JSON itself, so ``teachkit notebooks`` needs nothing beyond teachkit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..messages import InputError

__all__ = ["SOURCES", "Lesson", "lessons", "lesson", "build", "notebook_bytes", "write_notebooks", "file_name"]

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("lesson*.py"))
LANGS = ("en", "zh")
STUB = {"en": "# your code here", "zh": "# 在这里写你的代码"}
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass
class Cell:
    kind: str  # 'markdown' | 'code'
    lang: str | None  # None: both languages
    tags: tuple[str, ...]
    lines: list[str] = field(default_factory=list)


@dataclass
class Lesson:
    number: int
    name: str  # the file's stem, e.g. 'lesson1_layers'
    title: dict[str, str]
    exercise: dict[str, str]  # what the exercise is, per language
    cells: list[Cell]


def _parse(path: Path) -> Lesson:
    header: dict[str, str] = {}
    cells: list[Cell] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# %%"):
            words = raw[4:].split()
            if words[:1] == ["[markdown]"]:
                lang = words[1] if len(words) > 1 else None
                cells.append(Cell("markdown", lang, ()))
            else:
                cells.append(Cell("code", None, tuple(words)))
            if cells[-1].lang not in (None, *LANGS):
                raise ValueError(f"{path.name}: unknown language in {raw!r}")
            continue
        if not cells:
            key, sep, value = raw.lstrip("# ").partition(":")
            if sep and key.strip():
                header[key.strip()] = value.strip()
            continue
        cells[-1].lines.append(raw)
    number = int("".join(ch for ch in path.stem.split("_")[0] if ch.isdigit()))
    return Lesson(number, path.stem, {l: header.get(f"title {l}", path.stem) for l in LANGS},
                  {l: header.get(f"exercise {l}", "") for l in LANGS}, cells)


def lessons() -> list[Lesson]:
    """Every lesson's source, parsed, in order."""
    return [_parse(p) for p in SOURCES]


def lesson(number: int) -> Lesson:
    for les in lessons():
        if les.number == int(number):
            return les
    raise InputError("exercises.notebooks.no_lesson", number=number, n=len(SOURCES))


def _strip(lines: list[str]) -> str:
    return "\n".join(lines).strip()


def _markdown(cell: Cell) -> str:
    return _strip([ln[2:] if ln.startswith("# ") else ln[1:] if ln.startswith("#") else ln for ln in cell.lines])


def _code(cell: Cell, lang: str, solutions: bool) -> str:
    out: list[str] = []
    inside = False
    for ln in cell.lines:
        body = ln.strip()
        indent = ln[: len(ln) - len(ln.lstrip())]
        if body == BEGIN:
            inside = True
            if not solutions:
                out += [indent + STUB[lang], indent + "raise NotImplementedError"]
            continue
        if body == END:
            inside = False
            continue
        if inside and not solutions:
            continue
        other = [l for l in LANGS if l != lang]
        if any(body.startswith(f"# {l}:") for l in other):
            continue
        if body.startswith(f"# {lang}:"):
            ln = indent + "# " + body[len(f"# {lang}:"):].strip()
        elif body.startswith("# %"):  # an IPython magic, commented in the source (as jupytext does)
            ln = indent + body[2:]
        out.append(ln.replace("__LANG__", lang))
    return _strip(out)


def build(lesson_: Lesson | int, lang: str = "en", solutions: bool = False) -> dict:
    """One notebook (nbformat 4.5, as a dict) of a lesson in ``lang``, with or without the solutions."""
    les = lesson(lesson_) if isinstance(lesson_, int) else lesson_
    if lang not in LANGS:
        raise InputError("exercises.notebooks.bad_lang", lang=lang, allowed=", ".join(LANGS))
    cells = []
    for i, c in enumerate(les.cells):
        if c.lang not in (None, lang):
            continue
        cid = f"{les.name.split('_')[0]}-{i:02d}"
        if c.kind == "markdown":
            cells.append({"cell_type": "markdown", "id": cid, "metadata": {}, "source": _markdown(c)})
        else:
            meta = {"tags": list(c.tags)} if c.tags else {}
            cells.append({"cell_type": "code", "id": cid, "metadata": meta, "execution_count": None, "outputs": [],
                          "source": _code(c, lang, solutions)})
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "teachkit": {"lesson": les.number, "lang": lang, "solutions": bool(solutions)},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def file_name(lesson_: Lesson, lang: str, solutions: bool = False) -> str:
    """``lesson1_layers.ipynb``, ``lesson1_layers.zh.ipynb``, ``lesson1_layers.solutions.ipynb`` ..."""
    parts = [lesson_.name] + ([lang] if lang != "en" else []) + (["solutions"] if solutions else [])
    return ".".join(parts) + ".ipynb"


def notebook_bytes(number: int, lang: str = "en", solutions: bool = False) -> bytes:
    """A lesson's notebook as the bytes of an ``.ipynb`` file (the app's download button)."""
    return (json.dumps(build(number, lang, solutions), ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def write_notebooks(folder, lang: str = "en", solutions: bool = False, force: bool = False) -> list[Path]:
    """Write every lesson's notebook into ``folder`` (made if missing); returns the paths.

    An existing notebook is not overwritten unless ``force`` (:func:`teachkit.fileio.output_files`).
    """
    from ..fileio import atomic_write, output_files

    todo = list(zip(lessons(), output_files(folder, [file_name(les, lang, solutions) for les in lessons()], force)))
    written = []
    for les, path in todo:
        with atomic_write(path, "wb") as f:
            f.write(notebook_bytes(les.number, lang, solutions))
        written.append(path)
    return written


def add_notebooks_parser(sub) -> None:
    import argparse

    from ..cli import words

    p = sub.add_parser("notebooks", help=words("exercises.help.notebooks"),
                       description=words("exercises.help.notebooks_description"))
    p.add_argument("folder", metavar="DIR", help=words("exercises.help.folder"))
    # SUPPRESS: not given here, the top-level `teachkit --lang` (same dest) is kept
    p.add_argument("--lang", choices=LANGS, default=argparse.SUPPRESS, help=words("exercises.help.notebooks_lang"))
    p.add_argument("--solutions", action="store_true", help=words("exercises.help.solutions"))
    p.add_argument("--force", action="store_true", help=words("exercises.help.force"))
    p.set_defaults(func=cmd_notebooks)


def cmd_notebooks(args) -> int:
    from ..messages import Message, language

    lang = getattr(args, "lang", None) or language()
    paths = write_notebooks(args.folder, lang, args.solutions, args.force)
    kind = Message("exercises.notebooks.solutions" if args.solutions else "exercises.notebooks.student")
    print(Message("exercises.notebooks.written", {"n": len(paths), "kind": kind, "lang": lang,
                                                   "folder": str(Path(args.folder))}).text())
    for p in paths:
        print(f"  {p}")
    return 0
