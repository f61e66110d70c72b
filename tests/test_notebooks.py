"""The lessons' notebooks: built from one source per lesson, valid, shipped, and executed.

Every notebook runs top to bottom with the solutions (every check passes); every student notebook runs up
to its first check, which answers with the "not written yet" hint in the notebook's language, not a
traceback.  Executed with nbclient on one ipykernel for all of them (the `test` extra)."""

from __future__ import annotations

import os
import re
import unicodedata

import pytest

from teachkit import notebooks as nb
from teachkit.lessons.pages import PAGES
from teachkit.messages import text

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

LESSONS = [les.number for les in nb.lessons()]


def test_one_notebook_per_lesson_page():
    assert LESSONS == [p.number for p in PAGES]
    for les in nb.lessons():
        for lang in nb.LANGS:
            assert les.title[lang] and les.exercise[lang], (les.name, lang)


@pytest.mark.parametrize("number", LESSONS)
def test_sources_build_valid_notebooks_that_agree_across_languages(number):
    built = {(lang, sol): nb.build(number, lang, sol) for lang in nb.LANGS for sol in (False, True)}
    for notebook in built.values():
        nbformat.validate(nbformat.from_dict(notebook))
    code = {k: [c["source"] for c in v["cells"] if c["cell_type"] == "code"] for k, v in built.items()}

    def no_comments(src):
        return [ln.split("#")[0].rstrip() for ln in src.replace('"en"', '"zh"').splitlines() if ln.split("#")[0].strip()]

    for sol in (False, True):  # the same code in both languages (only comments and the language code differ)
        assert [no_comments(s) for s in code[("en", sol)]] == [no_comments(s) for s in code[("zh", sol)]]
    tagged = [c for c in built[("en", False)]["cells"] if "exercise" in c.get("metadata", {}).get("tags", [])]
    assert tagged, "every lesson has an exercise"
    for cell in tagged:
        assert "# your code here" in cell["source"] and "raise NotImplementedError" in cell["source"]
        assert nb.BEGIN not in cell["source"] and nb.END not in cell["source"]
    solved = "\n".join(code[("en", True)])
    assert "NotImplementedError" not in solved and nb.BEGIN not in solved
    zh_md = "\n".join(c["source"] for c in built[("zh", False)]["cells"] if c["cell_type"] == "markdown")
    en_md = "\n".join(c["source"] for c in built[("en", False)]["cells"] if c["cell_type"] == "markdown")
    assert "在这里写你的代码" in "\n".join(code[("zh", False)]) and any("\u4e00" <= ch <= "\u9fff" for ch in zh_md)
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in en_md)
    for (lang, _), sources in code.items():  # a figure's words follow the notebook's language
        assert all(f'lang="{lang}"' in src for src in sources if "plot_history(" in src)


#: the first cell of the test kernel: every run of the notebooks goes through default_config, here made tiny
#: (48 px, 3 steps) so that the notebooks stay quick on a 2-core CPU (what is tested is that each runs top to
#: bottom and what its checks answer, not the pictures)
TINY = """
import teachkit.exercises.engine as _engine
_full = _engine.default_config
_engine.default_config = lambda **kw: _full(**{**kw, "size": 48, "steps": 3})
"""


def _upto_first_check(cells: list) -> list:
    out = []
    for c in cells:
        out.append(c)
        if "check" in c.get("metadata", {}).get("tags", []):
            break
    return out


@pytest.fixture(scope="module")
def executed():
    """Every lesson in ONE kernel (VGG19 is loaded once per notebook, the kernel started once): each student
    version up to its first check, then the version with the solutions, the two in different languages.
    Returns {(lesson, 'student' | 'solutions'): (language, executed cells)}."""
    parts, cells = {}, [nbformat.v4.new_code_cell(TINY)]
    for number in LESSONS:
        for part, lang, solutions in (("student", "zh" if number % 2 == 0 else "en", False),
                                      ("solutions", "en" if number % 2 == 0 else "zh", True)):
            mine = nbformat.from_dict(nb.build(number, lang, solutions)).cells
            mine = mine if solutions else _upto_first_check(mine)
            parts[(number, part)] = (lang, mine)
            cells += mine
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i}"
    nbk = nbformat.v4.new_notebook(cells=cells, metadata=nb.build(1)["metadata"])
    client = nbclient.NotebookClient(nbk, timeout=300, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": "."}})
    # Importing streamlit (the app's tests, earlier in the suite) sets MPLBACKEND=Agg in this process,
    # and a kernel started with that environment draws plt.show() nowhere: give it a student's one.
    client.execute(env={k: v for k, v in os.environ.items() if k != "MPLBACKEND"})
    return parts  # the cells were executed in place


def _errors(cells) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for c in cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


def _shown(cells) -> str:
    out = []
    for c in cells:
        for o in getattr(c, "outputs", []):
            out.append(o.get("text", ""))
            out.append(o.get("data", {}).get("text/html", ""))
    return "\n".join(out)


@pytest.mark.parametrize("number", LESSONS)
def test_notebook_with_solutions_runs_top_to_bottom(executed, number):
    _, cells = executed[(number, "solutions")]
    assert not _errors(cells), _errors(cells)
    assert "✅" in _shown(cells)  # at least one check answered, and every check of the solutions passed:
    checks = [c for c in cells if "check" in c.get("metadata", {}).get("tags", [])]
    assert checks and all("❌" not in _shown([c]) for c in checks)
    pictures = [o for c in cells for o in getattr(c, "outputs", []) if "image/png" in o.get("data", {})]
    assert pictures, "every notebook draws at least one figure"


@pytest.mark.parametrize("number", LESSONS)
def test_student_notebook_answers_its_first_check_with_a_hint(executed, number):
    lang, cells = executed[(number, "student")]
    assert not _errors(cells), _errors(cells)
    shown = _shown(cells[-1:])
    assert "❌" in shown
    first = text("exercises.not_written", lang, name="").strip()
    assert first in shown


def _closes_wrongly(md: str) -> list[str]:
    """Bold (``**...**``) that CommonMark does not close, shown literally: a closing ``**`` after
    punctuation (e.g. a full-width colon) with a letter right after it, or the mirror at the start."""
    punct = lambda c: bool(c) and unicodedata.category(c)[0] in "PS"  # noqa: E731
    bad = []
    for m in re.finditer(r"(?<!\*)\*\*(?!\s)(.+?)(?<!\s)\*\*(?!\*)", md):
        before, after, inner = md[m.start() - 1:m.start()], md[m.end():m.end() + 1], m.group(1)
        if (punct(inner[-1]) and after.strip() and not punct(after)) or \
                (punct(inner[0]) and before.strip() and not punct(before)):
            bad.append(m.group(0))
    return bad


def test_bold_text_renders_in_both_languages():
    assert _closes_wrongly("**想一想：**为什么") and not _closes_wrongly("**想一想**：为什么 **Think:** why")
    for les in nb.lessons():
        for lang in nb.LANGS:
            md = "\n".join(c["source"] for c in nb.build(les.number, lang, True)["cells"] if c["cell_type"] == "markdown")
            assert not _closes_wrongly(md), (les.name, lang, _closes_wrongly(md))


def test_teachkit_notebooks_writes_the_set(tmp_path, capsys):
    from teachkit.cli import main

    assert main(["notebooks", str(tmp_path / "zh"), "--lang", "zh"]) == 0
    files = sorted(p.name for p in (tmp_path / "zh").iterdir())
    assert files == sorted(nb.file_name(les, "zh") for les in nb.lessons()) and len(files) == 6
    assert main(["notebooks", str(tmp_path / "zh"), "--lang", "zh"]) == 2  # a student's work is not overwritten
    assert "--force" in capsys.readouterr().err
    assert main(["notebooks", str(tmp_path / "zh"), "--lang", "zh", "--force"]) == 0
    assert main(["notebooks", str(tmp_path / "t"), "--solutions", "--lang", "en"]) == 0
    written = nbformat.read(tmp_path / "t" / "lesson5_style.solutions.ipynb", as_version=4)
    assert written.metadata["teachkit"] == {"lesson": 5, "lang": "en", "solutions": True}


def test_notebook_sources_are_package_files():
    """The sources live inside the teachkit package (teachkit.notebooks), so a wheel carries them."""
    import tomllib
    from pathlib import Path

    assert all(p.parent == Path(nb.__file__).parent for p in nb.SOURCES) and len(nb.SOURCES) == 6
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "teachkit.notebooks" in pyproject["tool"]["setuptools"]["packages"]


def test_each_lesson_page_offers_its_student_notebook_in_the_session_language():
    """The app's box: the exercise said in the session's language, the student notebook as a download."""
    import json

    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from teachkit.lessons import exercise_offer
        from teachkit.lessons.i18n import LANG_KEY

        st.session_state[LANG_KEY] = "zh"
        exercise_offer.show("5_style")

    at = AppTest.from_function(page).run(timeout=30)
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert nb.lesson(5).exercise["zh"] in shown and "自己动手" in shown
    assert len(at.get("download_button")) == 1

    from teachkit.lessons.exercise_offer import _notebook

    name, data, _ = _notebook(5, "zh")
    built = json.loads(data)
    assert name == "lesson5_style.zh.ipynb" and built["metadata"]["teachkit"]["solutions"] is False
    assert "raise NotImplementedError" in data.decode("utf-8")
    for page_ in PAGES:  # every page calls the box, with its own key
        assert "exercise_offer.show(P)" in page_.path.read_text(encoding="utf-8")
