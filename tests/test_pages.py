"""What a teacher's dry run found (issue 18), checked page by page with streamlit.testing.v1.AppTest.

The run's one classroom (tests/conftest.py: tiny pictures, 32 px; an atlas of four small images), so
each test takes seconds on 2 cores.  The demos here run with a 1-second time limit and far more steps
than fit in it, so every live demo is cut short on purpose: the pages must still complete every item
they promise and say honestly where they stopped.  The oracles are the pages' own promises (three layers -> three pictures; N of M steps).
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402
from page_strings import TEXT_KINDS, english_words, visible_strings  # noqa: E402 - tests/page_strings.py: what a page shows

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")
TIMEOUT = 120
CUT_STEPS = 400  # far more steps than fit into the 1-s limit at 32 px


pytestmark = pytest.mark.usefixtures("classroom_env")  # the run's one classroom (tests/conftest.py)


@pytest.fixture
def cut_demos(monkeypatch):
    """Every live demo gets 1 s and many more steps than fit into it."""
    monkeypatch.setenv("TEACHKIT_DEMO_SECONDS", "1")
    monkeypatch.setenv("TEACHKIT_DEMO_STEPS", str(CUT_STEPS))


def ui(key: str, lang: str = "en") -> str:
    from teachkit.lessons.i18n import msg_id
    from teachkit.messages import catalogue

    return catalogue(lang)[msg_id(key)]


def open_page(page: str | None, lang: str = "en", **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lang"] = lang
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page is not None:
        at.switch_page(page).run()
    clean(at)
    return at


def clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def stopped_line(done: str = r"\d+", total: int = CUT_STEPS) -> re.Pattern:
    """The honest line of a cut demo, built from the page's own string (its numbers as patterns)."""
    head = re.escape(ui("stopped_at_limit").split("{done}")[0])
    return re.compile(head + done + re.escape(f" of {total} steps"))


# ---- lesson 1 at its own address ----------------------------------------------------------------


def test_lesson1_has_its_own_address_besides_the_root():
    """`/layers` resolves to lesson 1 (a hidden page), while lesson 1 stays the default page at `/`."""

    def script():
        from pathlib import Path

        import streamlit as st

        from teachkit.lessons.guide import extra_pages, own_url_path
        from teachkit.lessons.pages import PAGES

        pages = [st.Page(p.path, title=str(p.number), url_path=own_url_path(p), default=p.number == 1) for p in PAGES]
        pages += extra_pages()
        st.navigation(pages)  # refuses two pages with one address
        st.session_state["routes"] = {p.url_path: (Path(str(p._page)).name, p.visibility) for p in pages}

    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    at.run()
    clean(at)
    routes = at.session_state["routes"]
    assert routes[""] == ("1_layers.py", "visible")  # the root: lesson 1, in the navigation
    assert routes["layers"] == ("1_layers.py", "hidden")  # its own address, not listed twice
    assert routes["slides"][0] == "slides.py"
    assert len(routes) == 8  # six lessons, the alias, the slides: no address taken twice


def test_the_layers_alias_opens_lesson1():
    at = open_page("lessons/1_layers.py")
    assert at.title[0].value.startswith("1. ")


def test_lesson1_starts_where_the_teachers_note_does():
    at = open_page(None)
    assert at.selectbox(key="p1_layer").value == "relu1_1"
    assert at.radio(key="p1_how__en").value == "most_active"
    from teachkit.messages import text

    note = next(e for e in at.expander if e.label == text("handout.teacher", "en"))
    assert "relu1_1" in " ".join(m.value for m in note.markdown)


# ---- live demos complete what they promise, and say where the limit stopped them ---------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lesson4_comparison_row_is_complete_even_when_cut(cut_demos, lang):
    at = open_page("lessons/4_content.py", lang)
    at.button(key="p4_grid").click().run()
    clean(at)
    items = at.session_state["p4_grid_result"]["items"]
    assert [name for _, name, *_ in items] == ["relu1_2", "relu4_2", "relu5_2"]  # shallow, middle, deep: all three
    assert all(img is not None for img, *_ in items)
    assert all(stopped and 1 <= done < CUT_STEPS for *_, done, _, stopped in items)
    if lang == "en":
        lines = [c for c in captions(at) if stopped_line().search(c)]
        assert len(lines) == 3, captions(at)
        assert not any(c.startswith("Finished") for c in captions(at))


def test_lesson4_single_run_says_stopped_not_finished(cut_demos):
    at = open_page("lessons/4_content.py")
    at.button(key="p4_run").click().run()
    clean(at)
    result = at.session_state["p4_result"]
    assert result["stopped"] and result["steps"] < CUT_STEPS
    assert any(stopped_line(str(result["steps"])).search(c) for c in captions(at)), captions(at)


def test_lesson5_live_textures_complete_and_leave_the_prepared_row(cut_demos):
    at = open_page("lessons/5_style.py")
    prepared_before = [img for img in at.image]
    at.button(key="p5_texture_run").click().run()
    clean(at)
    tex = at.session_state["p5_texture"]
    from teachkit.features import DEFAULT_STYLE_LAYERS

    assert tex["labels"] == list(DEFAULT_STYLE_LAYERS)  # every texture promised, each its own share of time
    assert all(img is not None for img in tex["images"])
    assert all(s and 1 <= n < CUT_STEPS for s, n in zip(tex["stopped"], tex["steps"]))
    assert any(ui("p5_texture_prepared").split("{")[0] in c for c in captions(at))  # the prepared row is still there
    assert any(ui("p5_texture_live") in m.value for m in at.markdown)
    assert len(at.image) >= len(prepared_before)


def test_lesson2_run_is_fitted_to_the_limit_and_says_so(cut_demos):
    """400 steps do not fit into 1 s: the run plans fewer (or, with too few, the page shows the prepared
    transfer), the limit it kept is the one configured, and the line under G says which it was."""
    at = open_page("lessons/2_style_transfer.py")
    at.button(key="p2_run").click().run()
    clean(at)
    result = at.session_state["p2_result"]
    assert result["limit"] == 1 and 1 <= result["steps"] < CUT_STEPS
    if result["cut"] or 3 * result["steps"] < CUT_STEPS:  # the prepared pair is shown, with one sentence
        wanted = ui("p2_busy_prepared").split("{")[0]
    else:
        wanted = ui("fitted").split("{")[0]
    assert any(c.startswith(wanted) for c in captions(at)), captions(at)
    assert not any(c.startswith(ui("finished_in").split("{")[0]) for c in captions(at))


def test_lesson3_run_ends_within_the_limit_with_the_steps_that_fit(cut_demos):
    at = open_page("lessons/3_cost.py")
    at.button(key="p3_run").click().run()
    clean(at)
    done = at.session_state["p3"].steps
    assert 1 <= done < CUT_STEPS
    line = next(c for c in captions(at) if c.startswith(ui("fitted").split("{")[0])
                or c.startswith(ui("stopped_at_limit").split("{")[0]))
    assert f"{done} of {CUT_STEPS} steps" in line


# ---- lesson 3: the formula fits, the steps are whole numbers -------------------------------------


def test_lesson3_formula_is_broken_over_lines_and_steps_are_integers():
    at = open_page("lessons/3_cost.py")
    at.button(key="p3_step").click().run()
    clean(at)
    formula = next(e.value for e in at.latex if r"\alpha" in e.value)
    assert formula.count(r"\\") == 2 and r"\begin{aligned}" in formula  # head, the numbers, the total: 3 lines
    chart = (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))[0]
    import json

    spec = json.loads(chart.proto.spec)
    axis = spec["encoding"]["x"]["axis"]
    assert axis["tickMinStep"] == 1 and axis["format"] == "d"


# ---- lesson 5: k and k' by hand ---------------------------------------------------------------


def test_lesson5_students_pick_k_and_k2():
    at = open_page("lessons/5_style.py")
    at.radio(key="p5_pair__en").set_value("own").run()
    clean(at)
    at.number_input(key="p5_k_relu3_1").set_value(3).run()
    at.number_input(key="p5_k2_relu3_1").set_value(7).run()
    clean(at)
    assert any("channels 3 and 7" in m.value for m in at.markdown)


# ---- projector mode: in the address, and styles for every control --------------------------------


def test_projector_mode_survives_a_reload(monkeypatch):
    """The mode comes from the address (a reload keeps it), the sidebar switch turns it off and on and
    writes it into the address; with it on, the page text grows (style sheets for every control) and
    lesson 1's figures are drawn with text that appears 20 px high in a 1280-px browser (instead of 14)."""
    from teachkit import viz
    from teachkit.lessons import guide, resources

    made = []
    real = viz.figure_png

    def recording(fig, dpi=144):
        made.append((fig.get_figwidth(), viz.smallest_text_pt(fig)))
        return real(fig, dpi)

    def unit_figure_px() -> float:
        unit_figs = [pt for width, pt in made if width == resources.UNIT_FIG_IN]
        assert unit_figs, made
        return max(unit_figs) * guide.column_px(resources.UNIT_COLS, 0) / (72 * resources.UNIT_FIG_IN)

    monkeypatch.setattr(viz, "figure_png", recording)
    at = open_page(None, projector="1")
    assert at.session_state["ui_projector"] is True
    assert at.sidebar.toggle(key="projector").value is True
    styles = " ".join(h.proto.body for h in at.get("html"))
    assert "button p" in styles and "[data-testid=\"stMain\"] input" in styles and "[data-tag] span" in styles
    assert unit_figure_px() == pytest.approx(20, abs=0.2)
    at.sidebar.toggle(key="projector").set_value(False).run()
    clean(at)
    assert "projector" not in at.query_params
    assert len(" ".join(h.proto.body for h in at.get("html"))) < len(styles)  # the projector's sheet is gone
    at.sidebar.toggle(key="projector").set_value(True).run()
    clean(at)
    assert at.query_params["projector"] in ("1", ["1"])
    assert " ".join(h.proto.body for h in at.get("html")) == styles  # and back


def test_projector_mode_enlarges_the_charts():
    from teachkit.lessons.charts import cost_chart

    records = [{"step": i, "alpha": 1.0, "beta": 1.0, "content": 2.0, "style": 3.0, "total": 5.0} for i in (1, 2)]

    def script():
        import json

        import streamlit as st

        from teachkit.lessons import guide

        st.session_state[guide.PROJECTOR_KEY] = st.session_state.get("on", False)
        st.session_state["spec"] = json.dumps(guide.chart(st.session_state["base"]))

    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    at.session_state["base"] = cost_chart(records)
    at.run()
    plain = __import__("json").loads(at.session_state["spec"])
    at.session_state["on"] = True
    at.run()
    big = __import__("json").loads(at.session_state["spec"])
    assert big["height"] > plain["height"]
    assert big["config"]["axis"]["labelFontSize"] > plain["config"]["axis"]["labelFontSize"]


# ---- 中文: no literal asterisks, no English -----------------------------------------------------------


def _punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def broken_bold(md: str) -> list[str]:
    """``**`` runs that CommonMark leaves as literal asterisks (a flanking rule fails), with context.

    An opening run must be left-flanking: not followed by a space, and if followed by punctuation,
    preceded by a space or punctuation; a closing run the mirror image.  "的**前一层（更浅一层）**的"
    fails at the closing run: after "）" and before "的"."""
    bad = []
    runs = [m.start() for m in re.finditer(r"(?<!\*)\*\*(?!\*)", md)]
    for i, pos in enumerate(runs):
        before = md[pos - 1] if pos > 0 else " "
        after = md[pos + 2] if pos + 2 < len(md) else " "
        if i % 2 == 0:  # opening
            ok = not after.isspace() and (not _punct(after) or before.isspace() or _punct(before))
        else:  # closing
            ok = not before.isspace() and (not _punct(before) or after.isspace() or _punct(after))
        if not ok:
            bad.append(md[max(0, pos - 8): pos + 10])
    return bad


def test_broken_bold_oracle():
    assert broken_bold("每一层都把**前一层（更浅一层）**的特征")  # the dry run's sentence
    assert not broken_bold("每一层都把**更浅的前一层**的特征")
    assert not broken_bold("**目标（10 分钟）：** 让学生")


def test_chinese_texts_show_no_literal_asterisks():
    from teachkit.lessons import i18n

    found = {}
    for path in sorted((i18n.TEXT_DIR / "zh").glob("*.md")):
        bad = broken_bold(re.sub(r"`[^`]*`|\$[^$]*\$", "", path.read_text(encoding="utf-8")))
        if bad:
            found[path.name] = bad
    assert not found, found


def chinese_page_strings(at: AppTest) -> list[str]:
    """What the page shows (tests/page_strings.py), formulas (Latex) included, image addresses left out."""
    kinds = tuple(k for k in TEXT_KINDS if k != "Exception") + ("Latex",)
    strings = visible_strings(at, kinds=kinds)
    return [s for s in strings if "/media/" not in s]  # an image's address is no text


#: every page a Chinese class sees, and its main button (pressed: results, progress and metrics shown too)
ZH_PAGES = {"lessons/1_layers.py": None, "lessons/2_style_transfer.py": "p2_run", "lessons/3_cost.py": "p3_step",
            "lessons/4_content.py": "p4_run", "lessons/5_style.py": "p5_texture_run", "lessons/6_run.py": None,
            "lessons/slides.py": None}


@pytest.mark.parametrize("page", sorted(ZH_PAGES))
def test_chinese_pages_have_no_asterisks_or_english(page):
    at = open_page(page, "zh")
    strings = chinese_page_strings(at)
    if ZH_PAGES[page]:
        at.button(key=ZH_PAGES[page]).click().run()
        clean(at)
        strings += chinese_page_strings(at)
    assert not english_words(strings), english_words(strings)
    stars = [bad for s in strings for bad in broken_bold(s)]
    assert not stars, stars


# ---- slides --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_slides_walk_all_six_lessons_in_order(lang):
    from teachkit.lessons import slides_deck

    at = open_page("lessons/slides.py", lang)
    lessons_seen = []
    for i in range(len(slides_deck.SLIDES)):
        clean(at)
        assert at.header and at.header[0].value.strip()  # the slide's one-line point
        lessons_seen.append(at.session_state["slide_i"])
        assert at.button(key="slide_prev").disabled == (i == 0)  # Back works from the second slide on
        if i < len(slides_deck.SLIDES) - 1:
            at.button(key="slide_next").click().run()
    assert lessons_seen == list(range(len(slides_deck.SLIDES)))
    order = [n for n, *_ in slides_deck.SLIDES]
    assert order == sorted(order) and set(order) == {1, 2, 3, 4, 5, 6}
    at.button(key="slide_prev").click().run()
    assert at.session_state["slide_i"] == len(slides_deck.SLIDES) - 2
    sections = [section for _, _, section, _ in slides_deck.SLIDES]
    assert {"slide_jcontent", "slide_gram", "slide_jstyle", "slide_layers"} <= set(sections)
    assert sections.index("slide_gallery") < sections.index("slide_example")  # two slides, two pictures
    shown = {section: make(lang, 20) for _, _, section, make in slides_deck.SLIDES
             if section in ("slide_gallery", "slide_example", "slide_jstyle", "slide_layers", "slide_gram")}
    assert shown["slide_gallery"] != shown["slide_example"]
    label = {"en": r"\text{(notes)}", "zh": r"\text{（讲义）}"}[lang]  # the lesson's own two equations
    assert label in shown["slide_jstyle"] and r"\begin{aligned}" in shown["slide_jstyle"]
    assert r"\sum_{l}" in shown["slide_layers"] and "G^{[l]}_{kk'}" in shown["slide_gram"]


# ---- the dry run of issue 26: texts, β, lesson 4's pictures, lesson 6's list fields, prepare's progress --


def test_no_stray_space_where_a_source_line_breaks_inside_chinese_text():
    """Markdown shows a line break as a space: "画成灰色。 深层".  Every section the app and the handout
    read has its Chinese lines joined; the source files still break where they like."""
    from teachkit.handout import read_sections
    from teachkit.lessons import i18n

    cjk = "[\u3000-\u9fff\uff00-\uffef]"
    broken = 0
    for path in sorted((i18n.TEXT_DIR / "zh").glob("*.md")):
        broken += len(re.findall(cjk + "\n" + cjk, path.read_text(encoding="utf-8")))
        for name, body in read_sections(path).items():
            assert not re.search(cjk + "\n[ \t]*" + cjk, body), (path.name, name)
    assert broken  # the sources do break lines inside Chinese text: the join is what the test checks
    assert "\n" in i18n.sections("zh", "5_style")["teacher"]  # lists keep their lines


def test_teacher_notes_name_no_repository_file():
    """A teacher who installed the wheel has no benchmarks/ folder: the notes state the figure itself."""
    from teachkit.lessons import i18n

    for lang in ("en", "zh"):
        for path in (i18n.TEXT_DIR / lang).glob("*.md"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"benchmarks/|RESULTS_|README", text), (lang, path.name)


def test_the_weights_line_uses_one_kind_of_comma():
    from teachkit.messages import catalogue

    line = catalogue("zh")["engine.weights_used"].format(alpha=1, beta=0.01, lams="relu1_1 1, relu2_1 0.005", tv=0)
    assert "，" not in line and ", " in line


def test_chinese_formulas_in_the_handout_draw_without_findfont_warnings(caplog):
    import logging

    from teachkit.handout import math_html

    with caplog.at_level(logging.WARNING, logger="matplotlib.font_manager"):
        svg = math_html(r"\begin{aligned} J &= \frac{1}{2} && \text{（讲义）} \\ J &= \frac{1}{4} && \text{（幻灯片）}"
                        r"\end{aligned}")
    assert svg.count("<svg") == 2 and 'class="tex"' not in svg  # two rows, each drawn, label and all
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]


@pytest.mark.parametrize("page", ["lessons/3_cost.py", "lessons/6_run.py"])
def test_beta_has_a_note_on_its_two_scales(page):
    from teachkit.transfer import NORMALIZATION_DEFAULTS

    at = open_page(page)
    note = next(c for c in captions(at) if c.startswith(ui("beta_note").split("{")[0]))
    for normalization in ("lecture", "auto"):
        assert f"{NORMALIZATION_DEFAULTS[normalization]['beta']:g}" in note


def test_lesson4_zooms_into_the_prepared_pictures():
    from teachkit.viz import zoom

    at = open_page("lessons/4_content.py")
    before = [im.proto.imgs[0].url for im in at.image]
    at.toggle(key="p4_zoom").set_value(True).run()
    clean(at)
    after = [im.proto.imgs[0].url for im in at.image]
    assert len(after) == len(before) and after[:6] != before[:6]  # C and the five rebuilt photos, zoomed
    from PIL import Image

    img = Image.new("RGB", (9, 6), "white")
    img.putpixel((4, 3), (255, 0, 0))  # the middle pixel
    big = zoom(img, 3)
    assert big.size == (9, 6) and big.getpixel((4, 3)) == big.getpixel((3, 3)) == (255, 0, 0)  # 3x larger
    assert big.getpixel((0, 0)) == big.getpixel((8, 5)) == (255, 255, 255)


def test_prepare_says_each_part_with_the_minutes_left():
    """[k/n] and an estimate: the reference seconds first, then this machine's pace (here 3x slower)."""
    from teachkit import prepare
    from teachkit.messages import Message

    clock = [0.0]
    said = []
    pace = prepare._Pace(said.append, ["gallery", "gallery", "content"], clock=lambda: clock[0])
    pace(Message("progress.prepare_gallery", content="a", style="b"))
    clock[0] += 3 * prepare.PART_SECONDS["gallery"]  # the first part took three times the reference
    pace(Message("progress.prepare_gallery", content="c", style="d"))
    first, second = said
    assert (first.id, first.params["k"], first.params["n"]) == ("progress.prepare_first", 1, 3)
    total = 2 * prepare.PART_SECONDS["gallery"] + prepare.PART_SECONDS["content"]
    assert first.params["minutes"] == max(1, round(total / 60))
    left = 3 * (prepare.PART_SECONDS["gallery"] + prepare.PART_SECONDS["content"])
    assert (second.id, second.params["k"], second.params["minutes"]) == ("progress.prepare_part", 2, round(left / 60))
    assert "[2/3]" in second.text("en") and "分钟" in second.text("zh")


def test_handout_figures_sit_after_their_own_sections(monkeypatch):
    from teachkit import handout

    monkeypatch.setattr(handout, "figures", lambda lesson, lang, net=None, cache_dir=None:
                        [("pair", "<img id=pair>"), ("heatmaps", "<img id=heatmaps>"), ("shuffle", "<img id=shuffle>")])
    page = handout.lesson_html(5, "en")
    order = [page.index(s) for s in ("Two channels", "id=pair", "The style (Gram) matrix", "id=heatmaps",
                                     "Several layers", "does not know", "id=shuffle", 'class="teacher"')]
    assert order == sorted(order), order


# ---- the handout ---------------------------------------------------------------------------------


def test_handout_has_formulas_questions_and_a_separate_teachers_page(tmp_path):
    from teachkit.handout import lesson_html, sections

    for lang in ("en", "zh"):
        page = lesson_html(3, lang)
        sec = sections(lang, 3)
        teacher_at = page.index('class="teacher"')
        assert "<svg" in page[:teacher_at]  # the formula, drawn
        for i in (1, 2, 3):  # each question before the teacher's page, each answer after it
            q = re.split(r"[$*]", sec[f"q{i}"])[0][:12]  # the words before any formula or emphasis
            a = re.split(r"[$*]", sec[f"a{i}"])[0][:12]
            assert len(q) >= 3 and len(a) >= 3
            assert 0 <= page.index(html.escape(q)) < teacher_at, q
            assert page.index(html.escape(a)) > teacher_at, a
        assert "break-before: page" in page and "@media print" in page


def test_handout_command_writes_every_lesson(tmp_path, monkeypatch):
    from teachkit import cli

    monkeypatch.setattr("teachkit.handout.figures", lambda lesson, lang, net=None, cache_dir=None: [])
    assert cli.main(["handout", "--lang", "zh", "-o", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"lesson{n}_zh.html" for n in range(1, 7)]
    assert "第 5 课" in (tmp_path / "lesson5_zh.html").read_text(encoding="utf-8")


def test_streamlits_own_stop_button_is_chinese_in_chinese_mode():
    styles = " ".join(h.proto.body for h in open_page(None, "zh").get("html"))
    assert '[data-testid="stStatusWidget"] button' in styles and '"停止"' in styles
    assert "停止" not in " ".join(h.proto.body for h in open_page(None, "en").get("html"))


@pytest.mark.parametrize("page,n", [("lessons/3_cost.py", 3), ("lessons/6_run.py", 6)])
def test_each_lesson_offers_its_handout(page, n):
    at = open_page(page, "zh")
    assert [b for b in at.get("download_button") if b.proto.id and f"handout_{n}" in b.proto.id]
