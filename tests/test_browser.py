"""The app in a real browser: the classroom's shared local server (tests/conftest.py) + headless
Chromium driven by Playwright.

Every page is opened in a 1280-px-wide window, in English and Chinese, its main controls are pressed, and
it is checked with the projector mode off and then switched on (and once from the address,
``?projector=1``, as after a reload); the page must show no Streamlit
exception box, no button label, chosen dropdown option or chip cut off, and the smallest text of every
figure must appear at least 14 px high (20 px in projector mode).  ``/`` and ``/layers`` both open
lesson 1, the projector mode stays in the address (so it survives a reload), and the slides turn with
the arrow keys.  Each step waits for the app's own signal that its script runs are over (:func:`settle`:
Streamlit's messages on the page's websocket), not for a fixed time.  With ``$TEACHKIT_SCREENSHOTS`` set,
screenshots are saved there (the README's pictures, made with the app's real classroom settings and
results prepared by ``teachkit prepare``); without it the demos are tiny and fast.

The figures carry their smallest text size in their PNG metadata (``teachkit.viz.figure_png``);
the test reads it back from the image the browser loaded and scales it by the width the image is
shown at.

Without /usr/bin/chromium the test is skipped with a reason -- unless TEACHKIT_REQUIRE_BROWSER=1
(CI), then it fails.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from local_server import launch_chromium, need_browser, serve_app

ROOT = Path(__file__).resolve().parents[1]
SHOTS = os.environ.get("TEACHKIT_SCREENSHOTS", "").strip()
REAL = bool(SHOTS)  # screenshots for the README: the app as the classroom sees it
WAIT_MS = 240_000 if REAL else 60_000
WIDTH = 1280  # a classroom laptop's browser window; the figures are made for it
MIN_TEXT_PX = 14


@pytest.fixture(scope="module")
def app_url(request, tmp_path_factory):
    """The shared classroom server (tests/conftest.py), or for the README's pictures one with the real
    classroom settings and results prepared by ``teachkit prepare``."""
    need_browser()
    if not REAL:
        yield request.getfixturevalue("classroom_server").url
        return
    from teachkit.serve import streamlit_flags

    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with serve_app(streamlit_flags(local=True), cwd=ROOT, env=dict(os.environ, TEACHKIT_OFFLINE="1"),
                   log=log) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


class Runs:
    """The app's script runs as the page's websocket carries them (Streamlit's own messages): the run
    requests the page sends (BackMsg ``rerun_script``), "running" / "not running" and "finished" from the
    server.  A page is settled when every run it asked for has finished and nothing has come for a moment."""

    QUIET_S = 0.25  # a run may start the next one itself (st.rerun): its messages follow at once

    def __init__(self, page):
        self.seq = 0  # every event counted, in the order the browser saw them
        self.requested = 0  # the last run request (or new connection)
        self.finished = 0  # the last run that finished (a whole page or a fragment)
        self.running = False
        self.socket = None  # the page's websocket now
        self.last = time.monotonic()
        self.settled = 0  # the point where the page was last settled
        self.inputs = 0  # the page's count of the user's inputs then
        page.on("websocket", self._socket)

    def _tick(self) -> int:
        self.seq += 1
        self.last = time.monotonic()
        return self.seq

    def _socket(self, ws) -> None:
        if ws.url.endswith("/_stcore/stream"):
            self.socket, self.requested, self.running = ws, self._tick(), False  # a new page: it runs first
            ws.on("framesent", lambda payload: self._sent(ws, payload))
            ws.on("framereceived", lambda payload: self._received(ws, payload))

    def _sent(self, ws, payload) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if ws is self.socket and isinstance(payload, (bytes, bytearray)):
            msg = BackMsg.FromString(bytes(payload))
            if msg.WhichOneof("type") == "rerun_script" and not msg.rerun_script.is_auto_rerun:
                self.requested = self._tick()

    def _received(self, ws, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if ws is not self.socket or not isinstance(payload, (bytes, bytearray)):
            return  # (the page before this one may still be closing)
        msg = ForwardMsg.FromString(bytes(payload))
        kind = msg.WhichOneof("type")
        seq = self._tick()
        if kind == "session_status_changed":
            self.running = msg.session_status_changed.script_is_running
        elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.finished = seq

    def idle(self) -> bool:
        return (not self.running and self.finished > self.requested
                and time.monotonic() - self.last >= self.QUIET_S)


# counts the user's inputs (clicks, keys) on every page the browser loads
_COUNT_INPUTS_JS = """window.__teachkitInputs = 0;
for (const type of ['pointerdown', 'keydown'])
  document.addEventListener(type, e => { if (e.isTrusted) window.__teachkitInputs++; }, true);"""


def new_page(context):
    """A page of ``context`` whose script runs are followed (:class:`Runs`), for :func:`settle`."""
    page = context.new_page()
    page.add_init_script(_COUNT_INPUTS_JS)
    page.teachkit_runs = Runs(page)
    return page


def settle(page, timeout_ms: int = WAIT_MS) -> None:
    """Wait until every script run the page asked for is over: after a click or key press (counted on the
    page), first until its run has been asked for (the request may take a moment to leave), then until
    every run asked for has finished; then two animation frames, to draw it."""
    runs = page.teachkit_runs
    deadline = time.monotonic() + timeout_ms / 1000
    try:
        inputs = page.evaluate("() => window.__teachkitInputs || 0")
    except Exception:  # noqa: BLE001 - a page being replaced: its new one is followed from its start
        inputs = runs.inputs
    if inputs != runs.inputs:
        asked = time.monotonic() + 5  # (an input that asks for no run, e.g. opening an expander: 5 s lost)
        while runs.requested <= runs.settled and time.monotonic() < asked:
            page.wait_for_timeout(25)
    while not runs.idle():
        if time.monotonic() > deadline:
            raise AssertionError("the page kept running")
        page.wait_for_timeout(25)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    runs.settled, runs.inputs = runs.seq, inputs


_LOAD_IMAGES_JS = """async () => {
  // every image of the page loaded, also those below the fold (loaded lazily otherwise)
  const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r, {once: true}); i.addEventListener('error', r, {once: true}); setTimeout(r, 10000);
  })));
  return imgs.map(i => [i.currentSrc || i.src, i.getBoundingClientRect().width, i.naturalWidth]);
}"""


def load_images(page) -> list:
    """[source, width shown, natural width] of every image on the page, once each has loaded."""
    return page.evaluate(_LOAD_IMAGES_JS)


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the window to fit it first."""
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 6000))})
    load_images(page)
    settle(page)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def figure_text_sizes(page) -> list[tuple[str, float]]:
    """(image source, smallest text in CSS px as shown) for every figure on the page."""
    import io

    from PIL import Image

    shown = load_images(page)
    out = []
    for src, width, _ in shown:
        if not src or src.startswith("data:"):
            continue
        data = page.request.get(src).body()
        try:
            img = Image.open(io.BytesIO(data))
        except OSError:
            continue
        info, natural = img.info, img.size[0]
        if "teachkit:min_text_px" in info:  # a figure (photos have no text)
            assert info.get("teachkit:overlaps") == "0", f"texts overlap in {src}: {info.get('teachkit:overlap')}"
            out.append((src, float(info["teachkit:min_text_px"]) * width / natural))
    return out


def check_figure_text(page, n: int, min_px: float = MIN_TEXT_PX) -> None:
    need = 3 if n in (1, 5) else 0  # the pages of figures: the check must find them
    for _ in range(10):  # an image replaced by a rerun just now is gone from the server: look again
        sizes = figure_text_sizes(page)
        if len(sizes) >= need:
            break
        page.wait_for_timeout(500)
        settle(page)
    assert len(sizes) >= need, f"lesson {n}: only {len(sizes)} figures found"
    small = [(src.rsplit("/", 1)[-1], round(px, 1)) for src, px in sizes if px < min_px - 0.5]
    assert not small, f"lesson {n}: figure text below {min_px} px at {WIDTH} px: {small}"


def no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()[:2000]


def expect_text(page, text: str, timeout_ms: int = WAIT_MS) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_ms)


_CUT_LABELS_JS = """(allowWrap) => {
  const wrapped = p => {  // a label taller than one line has been broken
    if (!p || !p.getClientRects().length) return false;
    let cs = getComputedStyle(p);
    if (parseFloat(cs.fontSize) === 0) cs = getComputedStyle(p, '::after');  // text drawn by CSS (the uploader's, in Chinese)
    const line = parseFloat(cs.lineHeight) || 1.2 * parseFloat(cs.fontSize);
    return p.getBoundingClientRect().height > 1.6 * line;
  };
  return Array.from(document.querySelectorAll('[data-testid="stMain"] button'))
    .filter(b => b.offsetParent !== null && b.innerText.trim())
    .filter(b => [b, ...b.querySelectorAll('p, div, span')].some(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
                 || (!allowWrap && wrapped(b.querySelector('p'))))
    .map(b => b.innerText.trim());
}"""


def labels_fit(page, allow_wrap: bool = False) -> None:
    """No button on the page has its label cut off or (unless ``allow_wrap``: the projector's large text
    may take two lines in a narrow column) broken over two lines."""
    cut = page.evaluate(_CUT_LABELS_JS, allow_wrap)
    assert cut == [], f"button labels cut off or wrapped: {cut}"


_DROPZONE_WORDS_JS = """
() => [...document.querySelectorAll('[data-testid="stFileUploaderDropzone"]')].map(zone => {
  // what a reader sees: an element drawn at size 0 shows only its ::after text
  const shown = el => {
    const style = getComputedStyle(el);
    const after = getComputedStyle(el, '::after').content;
    const extra = after && after !== 'none' && after !== 'normal' ? JSON.parse(after) : '';
    return (parseFloat(style.fontSize) === 0 ? '' : el.textContent) + extra;
  };
  const button = zone.querySelector('[data-testid="stBaseButton-secondary"] p');
  const limit = zone.querySelector('[data-testid="stFileUploaderDropzoneInstructions"] span');
  const cut = [button, limit].some(el => el && el.scrollWidth > el.clientWidth + 1);  // ellipsis: text lost
  return [button ? shown(button) : null, limit ? shown(limit) : null, cut];
})
"""


def dropzone_words(page) -> list[list[str]]:
    """[button text, limit text, cut off?] of every uploader on the page, as drawn."""
    return page.evaluate(_DROPZONE_WORDS_JS)


_CUT_OPTIONS_JS = """() => {
  // the chosen option of every dropdown, and every chip of a multiselect: its whole text shown (no "…")
  const cut = el => el.offsetParent !== null && el.innerText.trim() && el.scrollWidth > el.clientWidth + 1;
  const inputs = [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stSelectbox"] input')]
    .filter(el => el.offsetParent !== null && el.value && el.scrollWidth > el.clientWidth + 1).map(el => el.value);
  const tags = [...document.querySelectorAll('[data-testid="stMain"] [data-tag] span')].filter(cut)
    .map(el => el.innerText.trim());
  return [...inputs, ...tags];
}"""


def options_fit(page) -> None:
    """No dropdown shows its chosen option cut off, no chip of a multiselect either."""
    cut = page.evaluate(_CUT_OPTIONS_JS)
    assert cut == [], f"option texts cut off: {cut}"


_SMALLEST_TEXT_JS = """() => {
  // the smallest font size (CSS px) of any visible text in the main column, apart from the figures
  let smallest = [1e9, ""];
  for (const el of document.querySelectorAll('[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label, [data-testid="stMain"] button, [data-testid="stMain"] span'))
    if (el.offsetParent !== null && el.innerText.trim() && [...el.childNodes].some(t => t.nodeType === 3 && t.textContent.trim())
        && !el.closest('.katex, [data-testid="stVegaLiteChart"], [data-testid="stMarkdownContainer"] code')) {
      let px = parseFloat(getComputedStyle(el).fontSize);
      if (px === 0) px = parseFloat(getComputedStyle(el, '::after').fontSize);  // drawn by CSS (the uploader in Chinese)
      if (px < smallest[0]) smallest = [px, el.innerText.trim().slice(0, 40)];
    }
  return smallest;
}"""


def smallest_text_px(page) -> float:
    """The smallest text on the page (CSS px); the assertion message names it."""
    px, what = page.evaluate(_SMALLEST_TEXT_JS)
    print(f"smallest text: {px} px ({what!r})")
    return px


def press(page, key: str) -> None:
    """Press the button with this Streamlit key (the same in both languages)."""
    page.locator(f".st-key-{key} button").first.click()


def pick_radio(page, key: str, index: int) -> None:
    """Choose the option ``index`` (0 = the first) of the radio with this Streamlit key."""
    page.locator(f'.st-key-{key} [data-testid="stRadioOption"]').nth(index).click()


# ---- what to do on each page: its main controls (by key, so the same in both languages) ----


def lesson1(page, lang):
    assert page.locator('[data-testid="stImage"] img').count() >= 3
    pick_radio(page, f"p1_how__{lang}", 1)
    settle(page)
    if REAL:  # back to the default view for the picture
        pick_radio(page, f"p1_how__{lang}", 0)
        settle(page)
    assert page.locator('[data-testid="stImage"] img').count() >= 3


def lesson2(page, lang):
    expect_text(page, {"en": "Prepared before class", "zh": "课前已准备好"}[lang])  # the finished example at once
    if not REAL:  # (the README's picture shows the prepared example, not a rushed live run)
        press(page, "p2_run")
        settle(page)
        summary = {"en": re.compile(r"^(Finished in|Stopped at the time limit)"), "zh": re.compile(r"^(用时|到了时间上限)")}
        page.locator('[data-testid="stCaptionContainer"]').filter(has_text=summary[lang]).first.wait_for(
            timeout=WAIT_MS)


def lesson3(page, lang):
    press(page, "p3_step")
    settle(page)
    press(page, "p3_run")
    settle(page)


def lesson4(page, lang):
    press(page, "p4_run")
    settle(page)
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=WAIT_MS)
    if not REAL:
        press(page, "p4_grid")
        settle(page)


def lesson5(page, lang):
    pick_radio(page, f"p5_pair__{lang}", 1)  # avoid each other
    settle(page)
    if not REAL:
        press(page, "p5_texture_run")
        settle(page)


def lesson6(page, lang):
    press(page, "p6_start")
    if REAL and lang == "en":  # the live view while it runs, then the finished result
        page.locator(".st-key-p6_cancel button").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(15_000)
        screenshot(page, Path(SHOTS) / "lesson6_running.png")
    page.locator(".st-key-p6_dl_png button").wait_for(timeout=WAIT_MS)
    page.locator(".st-key-p6_clear button").wait_for(timeout=WAIT_MS)


# (lesson, url path, what to do there); lesson 1 is the default page (/) and has its own address too
LESSONS = [(1, "layers", lesson1), (2, "style-transfer", lesson2), (3, "cost", lesson3),
           (4, "content-cost", lesson4), (5, "style-cost", lesson5), (6, "run", lesson6)]


def open_lesson(page, url: str, n: int) -> None:
    page.goto(url)
    page.locator("h1").filter(has_text=f"{n}. ").first.wait_for(timeout=WAIT_MS)
    settle(page)
    no_exception(page)


def check_page(page, n: int, projector: bool) -> None:
    """No exception, nothing cut (buttons, chosen options, chips), page text and figure text large enough
    for the mode, no two texts of a figure overlapping."""
    settle(page)
    no_exception(page)
    labels_fit(page, allow_wrap=projector)
    options_fit(page)
    assert smallest_text_px(page) >= (17 if projector else 12), "page text too small"
    check_figure_text(page, n, 20 if projector and n in (1, 5) else MIN_TEXT_PX)


def walk_every_page(app_url, browser, lang):
    """Every lesson in this language: its main controls pressed, the page checked (:func:`check_page`),
    then the projector switch turned on (kept in the address) and the page checked again in that mode.
    First, the mode from the address, as after a reload: ``?projector=1`` turns the switch on."""
    out = Path(SHOTS) if SHOTS else None
    context = browser.new_context(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
    page = new_page(context)
    switch = page.locator(".st-key-projector label").first
    on = page.locator('.st-key-projector input[type="checkbox"]').first
    try:
        open_lesson(page, f"{app_url}/layers?lang={lang}&projector=1", 1)
        assert on.is_checked()
        assert [n for n, _, _ in LESSONS] == [1, 2, 3, 4, 5, 6]
        for n, slug, act in LESSONS:
            open_lesson(page, f"{app_url}/{slug}?lang={lang}", n)
            assert not on.is_checked()
            act(page, lang)
            check_page(page, n, False)
            for projector in (False, True):
                if projector:
                    switch.click()
                    settle(page)
                    assert on.is_checked() and "projector=1" in page.url  # (so a reload keeps it)
                    check_page(page, n, True)
                name = f"lesson{n}" + ("" if lang == "en" else "_zh") + ("_projector" if projector else "")
                if out and ((lang, projector) in (("en", False), ("zh", True)) or n == 5):
                    screenshot(page, out / f"{name}.png")
                    assert (out / f"{name}.png").stat().st_size > 10_000
        if lang == "zh":
            words = dropzone_words(page)  # Streamlit's own uploader words, as drawn: Chinese too
            assert words and all(w == ["上传", words[0][1], False] for w in words), words
            assert words[0][1].startswith("每个文件最大") and "per file" not in words[0][1], words
    finally:
        context.close()


def test_every_page_in_chromium(app_url, browser):
    """The English pages in both modes (the Chinese ones: tests/test_browser_zh.py, a file of its own so
    that the two test workers walk beside each other)."""
    walk_every_page(app_url, browser, "en")
