"""The Chinese pages in a real browser, and the slides: tests/test_browser.py's walk, in a file of its own
so that pytest-xdist's two workers (``make test``: one file per worker) walk beside each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import (SHOTS, WAIT_MS, WIDTH, app_url, browser, labels_fit, load_images,  # noqa: F401 (fixtures)
                          new_page, no_exception, open_lesson, options_fit, screenshot, settle, walk_every_page)


def test_every_page_in_chromium(app_url, browser):
    walk_every_page(app_url, browser, "zh")


_SLIDE_FITS_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const over = [...main.querySelectorAll('img, .katex-display, h2, button')].filter(e => e.offsetParent !== null)
    .map(e => [e.tagName, e.getBoundingClientRect()])
    .filter(([, r]) => r.bottom > innerHeight + 1 || r.right > innerWidth + 1)
    .map(([tag, r]) => `${tag} ${Math.round(r.right)}x${Math.round(r.bottom)}`);
  const bar = document.querySelector('[data-testid="stSidebar"]');
  const open = bar !== null && bar.getBoundingClientRect().right > 1 && bar.getBoundingClientRect().width > 1;
  return {over, scroll: main.scrollHeight - main.clientHeight, sidebar: open};
}"""


def test_addresses_and_slides(app_url, browser):
    """`/` and `/layers` both open lesson 1 (no "Page not found").  The slides turn with the arrow keys,
    start with the sidebar closed and fit the screen, every one of them: 1280×800 in Chinese and
    1920×1080 in English (nothing below or right of the window, nothing to scroll, labels whole).
    (The projector mode from the address, as after a reload: test_every_page_in_chromium.)"""
    from teachkit.lessons.slides_deck import SLIDES

    context = browser.new_context(viewport={"width": WIDTH, "height": 900}, device_scale_factor=1)
    page = new_page(context)
    try:
        for path in ("", "layers"):
            open_lesson(page, f"{app_url}/{path}", 1)
            assert page.get_by_text("Page not found").count() == 0
    finally:
        context.close()
    for (w, h), lang in (((1280, 800), "zh"), ((1920, 1080), "en")):
        context = browser.new_context(viewport={"width": w, "height": h}, device_scale_factor=1)
        page = new_page(context)
        try:
            page.goto(f"{app_url}/slides?lang={lang}")
            page.locator("h2").first.wait_for(timeout=WAIT_MS)
            titles = []
            for i in range(len(SLIDES)):
                settle(page)
                for _ in range(3 if i else 0):  # a key pressed while the page was still busy may be lost: again
                    page.keyboard.press("ArrowRight")
                    settle(page)
                    if page.locator("h2").first.inner_text() != titles[-1]:
                        break
                load_images(page)
                titles.append(page.locator("h2").first.inner_text())
                fits = page.evaluate(_SLIDE_FITS_JS)
                where = f"slide {i + 1} ({titles[-1]}) at {w}×{h}"
                assert not fits["sidebar"], f"{where}: the sidebar is open"
                assert not fits["over"] and fits["scroll"] <= 1, f"{where} does not fit: {fits}"
                no_exception(page)
                labels_fit(page)
                if SHOTS and lang == "zh" and i == 0:
                    screenshot(page, Path(SHOTS) / "slides_zh.png")
            assert len(set(titles)) == len(SLIDES), f"the arrow key did not turn every slide, or two repeat: {titles}"
            options_fit(page)
        finally:
            context.close()
