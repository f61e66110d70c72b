"""The classroom app, page by page, in both languages (streamlit.testing.v1.AppTest).

Everything runs in the run's one classroom (tests/conftest.py: tiny demos, TEACHKIT_FAST=1, 32 px, a
couple of steps; an atlas of four small images; a private cache prepared once).
"""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the lessons package sits next to app.py
    sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")
from teachkit.lessons.pages import PAGES as REGISTRY  # noqa: E402 - the one page registry
from teachkit.messages import catalogue  # noqa: E402
from page_strings import visible_strings  # noqa: E402 - tests/page_strings.py: what a page shows

PAGES = {p.number: str(p.path) for p in REGISTRY}  # lesson number -> its script (AppTest.switch_page)
LANGS = ("en", "zh")
TIMEOUT = 120


pytestmark = pytest.mark.usefixtures("classroom_env")  # the run's one classroom (tests/conftest.py)


def open_page(n: int, lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lang"] = lang
    at.run()
    if n != 1:
        at.switch_page(PAGES[n]).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def title(at: AppTest) -> str:
    return at.title[0].value


def captions(at: AppTest) -> str:
    return " | ".join(c.value for c in at.caption)


def wait_job(at: AppTest, key: str = "p6_job", limit: float = 90.0):
    job = at.session_state[key]
    t0 = time.time()
    while job.alive and time.time() - t0 < limit:
        time.sleep(0.1)
    assert not job.alive, "the transfer job did not finish in time"
    return job


# ---- texts ---------------------------------------------------------------------------------


def test_every_lesson_text_has_both_languages():
    from teachkit.lessons import i18n

    en = sorted(p.name for p in (i18n.TEXT_DIR / "en").glob("*.md"))
    zh = sorted(p.name for p in (i18n.TEXT_DIR / "zh").glob("*.md"))
    assert en == zh and len(en) == 6
    for name in en:
        page = name[:-3]
        assert i18n.sections("en", page).keys() == i18n.sections("zh", page).keys(), page


# ---- every page renders in both languages ---------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("n", sorted(PAGES))
def test_page_renders(n, lang):
    at = open_page(n, lang)
    expected = {"en": "What do deep layers see?", "zh": "深层网络在看什么？"} if n == 1 else None
    assert title(at).startswith(f"{n}. ")
    if expected:
        assert expected[lang] in title(at)
    if lang == "zh":
        assert re.search(r"[\u4e00-\u9fff]", title(at))
    assert at.markdown, "the lesson text is missing"
    # the sidebar shows backbone and device, and the projector switch
    assert any("vgg19" in m.value for m in at.sidebar.markdown)
    assert any("cpu" in m.value.lower() or "cuda" in m.value for m in at.sidebar.markdown)
    assert at.sidebar.toggle(key="projector")
    # guided: a teacher's note, "what to look for" under the figures, questions with hidden answers
    words = catalogue(lang)
    assert words["handout.teacher"] in [e.label for e in at.expander]
    looks = [m.value for m in at.markdown if words["handout.look"] in m.value]
    assert looks, "no 'what to look for' line"
    assert any(h.value == words["handout.questions"] for h in at.subheader)
    answers = [e for e in at.expander if e.label.startswith(words["ui.quiz_reveal"].split("{")[0].strip() or "@")]
    assert 2 <= len(answers) <= 3, [e.label for e in at.expander]


# the prepared result each page shows before anything is pressed: (page, what to find)
PREPARED = {2: "p2_prepared_note", 4: "p4_prepared_note", 5: "p5_texture_prepared", 6: "p6_example"}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("n", sorted(PREPARED))
def test_prepared_results_are_shown_at_once(n, lang):
    at = open_page(n, lang)
    text = catalogue(lang)["ui." + PREPARED[n]].split("{")[0].strip()
    found = [c.value for c in at.caption] + [h.value for h in at.subheader]
    found += [cap for img in at.image for cap in img.captions]
    assert any(text in f for f in found), (text, found)
    assert not at.info or all(catalogue(lang)["ui.not_prepared"] != i.value for i in at.info)


def test_language_switch_keeps_choices():
    at = open_page(1, "en")
    at.radio(key="p1_how__en").set_value("most_active").run()
    assert_clean(at)
    at.radio(key="lang").set_value("zh").run()
    assert_clean(at)
    assert at.radio(key="p1_how__zh").value == "most_active"
    assert "深层" in title(at)


def test_language_is_kept_in_the_address():
    """The address carries the language, so a new session (reload, dropped connection) starts in it."""
    at = open_page(3, "zh")
    assert at.query_params["lang"] in ("zh", ["zh"])
    at.radio(key="lang").set_value("en").run()
    assert at.query_params["lang"] in ("en", ["en"])
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params["lang"] = "zh"
    fresh.run()
    assert_clean(fresh)
    assert "深层" in title(fresh) and fresh.session_state["lang"] == "zh"


# ---- the main control of every page works --------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_lesson1_unit_and_overview(lang):
    at = open_page(1, lang)
    n_images = len(at.image)
    assert n_images >= 3  # the unit's patches, where they sit, the overview
    key = f"p1_how__{lang}"
    at.radio(key=key).set_value("index").run()
    at.number_input(key="p1_index").set_value(5).run()
    assert_clean(at)
    at.selectbox(key="p1_layer").set_value("relu5_1").run()
    assert_clean(at)
    assert len(at.image) >= 3


@pytest.mark.parametrize("lang", LANGS)
def test_lesson1_paints_what_a_unit_wants_to_see(lang):
    from teachkit.lessons.resources import load_net
    from teachkit.visualize import unit_activation

    at = open_page(1, lang)
    at.button(key="p1_paint").click().run()
    assert_clean(at)
    [((layer, unit, size, _), (image, value, _))] = at.session_state["p1_painted"].items()
    assert image.size == (size, size) == (32, 32)  # TEACHKIT_DEMO_SIZE
    assert value == pytest.approx(unit_activation(load_net(), image, layer, unit))  # the number the ratio shows
    assert any(m.value.endswith("×") for m in at.metric)


def test_lesson1_shows_the_prepared_painting_of_the_unit_it_opens_on():
    from teachkit import prepare
    from teachkit.lessons.resources import load_net

    at = open_page(1)
    assert "Prepared before class" not in captions(at)
    prepare.prepare_visualize(load_net(), "relu1_1", at.selectbox(key="p1_unit_relu1_1_most_active").value,
                              prepare.FAST)
    at.run()
    assert_clean(at)
    assert "Prepared before class: 32 px, 2 steps" in captions(at) and any(m.value.endswith("×") for m in at.metric)


@pytest.mark.parametrize("lang", LANGS)
def test_lesson2_small_transfer(lang):
    at = open_page(2, lang)
    at.button(key="p2_run").click().run()
    assert_clean(at)
    result = at.session_state["p2_result"]
    assert result["image"].size[0] == 32 or result["image"].size[1] == 32
    assert ("Finished" if lang == "en" else "用时") in captions(at)


@pytest.mark.parametrize("lang", LANGS)
def test_lesson3_step_run_pause_reset(lang):
    at = open_page(3, lang)
    at.button(key="p3_step").click().run()
    assert_clean(at)
    demo = at.session_state["p3"]
    assert demo.steps == 1
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert any(r"\alpha" in e.value and "=" in e.value for e in at.latex)
    at.button(key="p3_run").click().run()  # runs RUN_STEPS more (2 under TEACHKIT_FAST)
    assert_clean(at)
    assert demo.steps == 3
    # new weights: gradient descent goes on from the current image
    from teachkit.lessons.charts import transfer_defaults, weight_options

    smaller = weight_options(transfer_defaults()["beta"])[3]  # a tenth of the default
    at.select_slider(key="p3_beta").set_value(smaller).run()
    assert_clean(at)
    at.button(key="p3_step").click().run()
    assert demo.steps == 4 and demo.records[-1]["beta"] == smaller
    at.button(key="p3_reset").click().run()
    assert_clean(at)
    assert at.session_state["p3"].steps == 0


@pytest.mark.parametrize("lang", LANGS)
def test_lesson4_reconstruction(lang):
    import numpy as np

    from teachkit.images import resize_long_side
    from teachkit.samples import DEFAULT_CONTENT, sample_content

    at = open_page(4, lang)
    at.button(key="p4_run").click().run()
    assert_clean(at)
    image = at.session_state["p4_result"]["image"]
    assert max(image.size) == 32  # TEACHKIT_DEMO_SIZE
    # the distance shown is the pixel RMSE of the result to C, recomputed here with numpy
    c = np.asarray(resize_long_side(sample_content(DEFAULT_CONTENT), 32), dtype=np.float64) / 255
    rmse = float(np.sqrt(((np.asarray(image, dtype=np.float64) / 255 - c) ** 2).mean()))
    shown = float(at.metric[0].value)
    assert rmse > 0.01 and shown == pytest.approx(rmse, abs=4e-3), (shown, rmse)


def _tex_number(latex: str) -> float:
    """The number at the end of a formula written by charts.tex_num: 12.5 or 1.23\\times 10^{7}."""
    tail = latex.rsplit("=", 1)[-1].strip().strip("$").strip()
    mantissa, _, exponent = tail.partition(r"\times 10^")
    return float(mantissa) * 10.0 ** int(exponent.strip("{}") or 0)


@pytest.mark.parametrize("lang", LANGS)
def test_lesson5_lambdas_and_textures(lang):
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.gram import style_layer_costs
    from teachkit.lessons.charts import transfer_defaults, weight_options
    from teachkit.lessons.resources import l5_size, load_net, sample
    from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE, sample_style

    at = open_page(5, lang)
    # the oracle: J_style[l](S, G) of G = the content photo (the page's default), computed here, and
    # the lecture's sum with the sliders' lambdas
    size = l5_size()
    j = style_layer_costs(load_net(), sample_style(DEFAULT_STYLE, size), sample(DEFAULT_CONTENT, size),
                          list(DEFAULT_STYLE_LAYERS))
    lam = dict(zip(DEFAULT_STYLE_LAYERS, transfer_defaults()["layer_weights"]))
    shown = _tex_number([e.value for e in at.latex if "lambda" in e.value][-1])
    assert shown == pytest.approx(sum(lam[l] * j[l] for l in lam), rel=5e-3)
    options = weight_options(lam["relu1_1"], decades=2)
    at.select_slider(key="p5_lambda_relu1_1").set_value(options[4]).run()  # ten times the default
    assert_clean(at)
    lam["relu1_1"] = options[4]
    shown = _tex_number([e.value for e in at.latex if "lambda" in e.value][-1])
    assert shown == pytest.approx(sum(lam[l] * j[l] for l in lam), rel=5e-3)
    at.button(key="p5_texture_run").click().run()
    assert_clean(at)
    tex = at.session_state["p5_texture"]
    assert tex["labels"] == list(DEFAULT_STYLE_LAYERS)  # one texture per layer set, up to each layer
    assert all(max(img.size) == max(tex["images"][0].size) for img in tex["images"])


@pytest.mark.parametrize("lang", LANGS)
def test_lesson6_transfer_and_downloads(lang):
    at = open_page(6, lang)
    at.button(key="p6_start").click().run()
    assert_clean(at)
    job = wait_job(at)
    at.run()
    assert_clean(at)
    assert job.state == "done" and job.result is not None
    labels = [b.label for b in at.get("download_button") if str(b.key).startswith("p6_dl")]  # the job's own
    assert len(labels) == 2, labels  # (the lesson's handout and notebook boxes are not the job's)
    log = job.log_json()
    assert '"history"' in log and '"config"' in log


def test_lesson6_cancel_keeps_latest_image():
    at = open_page(6)
    at.slider(key="p6_steps").set_value(400).run()
    at.button(key="p6_start").click().run()
    job = at.session_state["p6_job"]
    t0 = time.time()
    while job.step < 1 and job.alive and time.time() - t0 < 60:
        time.sleep(0.05)
    at.run()  # the fragment now shows Cancel
    at.button(key="p6_cancel").click().run()
    assert_clean(at)
    job = wait_job(at)
    at.run()
    assert_clean(at)
    assert job.state == "cancelled"
    assert job.result.stopped and 0 < len(job.result.history) < 400
    assert job.result.image is not None
    assert sorted(b.key for b in at.get("download_button") if str(b.key).startswith("p6_dl")) == ["p6_dl_log",
                                                                                                   "p6_dl_png"]
    assert at.warning  # "cancelled after N steps; the latest image is kept"


# ---- bad input ---------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("notes.png", b"this is not an image at all", "not an image"),
        ("half.png", _png(64, 64)[:40], "half.png"),
        ("huge.png", _png(6000, 5000), "pixels"),
        ("empty.jpg", b"", "empty"),
    ],
)
def test_bad_upload_shows_error_and_page_keeps_working(name, data, words):
    at = open_page(6)
    at.file_uploader(key="p6_content_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert at.error, "a bad upload must show st.error"
    assert words in at.error[0].value.replace("\\", "")  # as shown: file names are Markdown-escaped
    # the rest of the page still works: the sample is used and Start is enabled
    assert not at.button(key="p6_start").disabled
    assert any(cap.startswith("chelsea") for img in at.image for cap in img.captions)
    if name == "notes.png":  # and a transfer runs (once is enough)
        at.button(key="p6_start").click().run()
        assert not at.exception
        job = wait_job(at)
        assert job.state == "done"


def test_too_many_bytes_is_refused():
    from teachkit.lessons import uploads

    at = open_page(6)
    big = b"\x89PNG" + b"\0" * (uploads.UPLOAD_MAX_MB * 1024 * 1024 + 10)
    at.file_uploader(key="p6_content_upload").set_value(("big.png", big, "image/png")).run()
    assert not at.exception
    assert at.error and "MB" in at.error[0].value


def test_good_upload_is_used():
    at = open_page(6)
    at.file_uploader(key="p6_content_upload").set_value(("red.png", _png(80, 40), "image/png")).run()
    assert_clean(at)
    at.button(key="p6_start").click().run()
    job = wait_job(at)
    assert job.result.image.size == (32, 16)  # the upload's aspect ratio, at the demo size


# ---- three sessions at once -----------------------------------------------------------------------


def test_three_sessions_each_get_their_own_result():
    sessions = []
    contents = ["chelsea", "astronaut", "rocket"]
    for name in contents:
        at = open_page(6)
        at.selectbox(key="p6_content_sample__en").set_value(name).run()
        sessions.append(at)
    for at in sessions:  # all three start before any finishes
        at.button(key="p6_start").click().run()
        assert_clean(at)
    jobs = [wait_job(at) for at in sessions]
    sizes = [job.result.image.size for job in jobs]
    from teachkit.samples import sample_content

    expected = [sample_content(n, 32).size for n in contents]
    assert sizes == expected
    assert len({id(job) for job in jobs}) == 3
    # each ran to its end: none took another's place (the board tells sessions apart)
    assert [(job.state, job.reason) for job in jobs] == [("done", None)] * 3
    for at in sessions:
        at.run()
        assert_clean(at)
        assert sorted(b.key for b in at.get("download_button") if str(b.key).startswith("p6_dl")) == ["p6_dl_log", "p6_dl_png"]


# ---- figures shared by every session: made once, even when asked for at the same moment ----------


def test_shared_figure_is_made_once_for_many_simultaneous_callers():
    import threading

    from teachkit.lessons.resources import cached

    calls = []
    gate = threading.Event()

    @cached(8)
    def figure(name: str, lang: str = "en") -> str:
        calls.append((name, lang))
        gate.wait(5)  # every caller arrives while the first one is still at work
        return f"{name}/{lang}/{len(calls)}"

    results = []
    threads = [threading.Thread(target=lambda: results.append(figure("overview", lang="en"))) for _ in range(8)]
    threads.append(threading.Thread(target=lambda: results.append(figure("overview"))))  # default spelt out or not
    for t in threads:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == [("overview", "en")]
    assert results == ["overview/en/1"] * 9
    assert figure("overview", "en") == "overview/en/1" and len(calls) == 1  # kept
    assert figure("overview", "zh") == "overview/zh/2"  # another key: its own computation


def test_shared_figure_failure_lets_the_next_caller_try_again():
    from teachkit.lessons.resources import cached

    attempts = []

    @cached(4)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return x * 2

    with pytest.raises(RuntimeError):
        flaky(3)
    assert flaky(3) == 6 and attempts == [3, 3]


# ---- errors in 中文 mode are Chinese ------------------------------------------------------------


def _english_words(text: str, allowed: str) -> list[str]:
    """Latin words of two letters or more in ``text`` once ``allowed`` (a file name) is taken out."""
    return re.findall(r"[A-Za-z]{2,}", text.replace(allowed, ""))


@pytest.mark.parametrize(
    "name, data",
    [
        ("notes.png", b"this is not an image at all"),
        ("half.png", _png(64, 64)[:40]),
        ("huge.png", _png(6000, 5000)),
        ("empty.jpg", b""),
        ("tiny.png", _png(8, 8)),
    ],
)
def test_bad_upload_error_is_chinese_in_chinese_mode(name, data):
    at = open_page(6, "zh")
    at.file_uploader(key="p6_content_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert at.error, "a bad upload must show st.error"
    shown = at.error[0].value.replace("\\", "")  # as shown: file names are Markdown-escaped
    assert name in shown  # the file is named ...
    assert _english_words(shown, name) == [], shown  # ... and nothing else is English
    at.radio(key="lang").set_value("en").run()  # the same (cached) error, worded again in English
    assert "cannot read" in at.error[0].value and name in at.error[0].value.replace("\\", "")


def test_config_errors_are_chinese(monkeypatch):
    from teachkit.lessons import i18n
    from teachkit.transfer import TransferConfig

    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    bad = [dict(style_layers=()), dict(layer_weights=(1.0, 2.0)), dict(style_weights=(1.0, 2.0, 3.0)),
           dict(layer_weights=(-1.0,) * 5)]
    for kwargs in bad:
        with pytest.raises(ValueError) as info:
            TransferConfig(**kwargs).validate(n_styles=1)
        zh = i18n.error_text(info.value)
        for value in sorted(map(str, info.value.params.values()), key=len, reverse=True):
            zh = zh.replace(value, "")  # layer names and numbers stay as they are
        assert _english_words(zh, "") == [], (str(info.value), zh)
        assert i18n.tr("error_internal") not in zh, str(info.value)  # a known error gets its own sentence
    # anything that is not a teachkit error: one general sentence in the session's language
    assert i18n.error_text(RuntimeError("something nobody foresaw")) == catalogue("zh")["ui.error_internal"]


@pytest.mark.parametrize("normalization", ["auto", "lecture", "gatys", "none"])
def test_lesson6_cost_chart_curves_add_up_to_the_engines_j(normalization):
    """Lesson 6's chart, fed by a real (tiny, two-scale) engine run through the job's own callback:
    at every step its weighted curves add up to the J the engine minimised (the oracle: the engine's
    recorded total), in every normalisation -- under 'auto' the weights are ~1e-9, not 1."""
    import json

    from teachkit.lessons import jobs
    from teachkit.lessons.charts import cost_chart
    from teachkit.lessons.resources import load_net
    from teachkit.samples import sample_content, sample_style
    from teachkit.transfer import TransferConfig, transfer

    config = TransferConfig(size=40, scales=(20, 40), scale_steps=(2, 2), normalization=normalization,
                            init="noise", preview_every=0, style_layers=("relu1_1", "relu2_1"), dtype="float32")
    job = jobs.TransferJob(None, [], config, None, session="chart-test")
    totals = {}

    def callback(p):
        totals[p.step] = p.values["total"]
        return job._callback(p)

    result = transfer(sample_content("chelsea", 40), [sample_style("waves", 40)], config, callback=callback,
                      backbone=load_net())
    assert [r["step"] for r in job.records] == [1, 2, 3, 4] == sorted(totals)
    spec = cost_chart(job.records)
    json.dumps(spec, allow_nan=False)  # plain JSON for the browser
    by_step: dict[int, dict[str, float]] = {}
    for row in spec["data"]["values"]:
        by_step.setdefault(row["step"], {})[row["term"]] = row["value"]
    domain = spec["encoding"]["color"]["scale"]["domain"]
    total_name = domain[-1]
    assert domain == spec["encoding"]["color"]["sort"] and spec["encoding"]["y"]["scale"]["type"] == "log"
    for step, curves in by_step.items():
        parts = sum(v for name, v in curves.items() if name != total_name)
        assert curves[total_name] == pytest.approx(totals[step], rel=1e-6)
        assert parts == pytest.approx(totals[step], rel=1e-4), (step, curves)
    # the weights used are the engine's plan, scale by scale (under 'auto' they differ per scale)
    for rec, point in zip(result.history, job.records):
        w = result.plan.scale(rec["scale"]).weights
        assert point["content"] == pytest.approx(w["alpha"] * rec["content"], rel=1e-6)


def test_the_uploaders_own_words_are_chinese_in_chinese_mode():
    """Streamlit's "Upload" / "... per file" are replaced on screen by a style sheet in 中文 mode only."""
    def sheets(at):
        return [h.proto.body for h in at.get("html") if "stFileUploaderDropzone" in h.proto.body]

    zh = open_page(6, "zh")
    assert zh.get("file_uploader")
    (css,) = sheets(zh)
    assert 'content: "上传"' in css and "每个文件最大 10 MB • PNG、JPG、WEBP、BMP、GIF、TIF" in css
    assert css.count("font-size: 0;") == 2  # the English originals are hidden, not left beside
    assert sheets(open_page(6, "en")) == []
