"""The wheel carries the whole app (issue 15's check).

Built from a copy of the package sources (so the shared tree gets no ``build/`` folder), the wheel must
hold every module of ``teachkit/`` and ``lessons/`` (as ``teachkit.lessons``), the lesson texts and the
message catalogues, and no top-level ``lessons`` package or ``app`` module.  Installed NON-editable into
a fresh virtual environment (whose other packages -- torch, Streamlit -- come from this environment's
site-packages through a ``.pth`` line, so nothing is downloaded or copied), it must answer
``teachkit --version`` and ``python -m teachkit --help`` from a folder outside the checkout, and
``teachkit app --local`` must serve lessons 1 and 6 in English and Chinese to Chromium and refuse an
upload above its ``--upload-mb`` (the served limit).

The browser part needs /usr/bin/chromium and Playwright: skipped without them, unless
TEACHKIT_REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from local_server import launch_chromium, loopback_only, need_browser, start_server

ROOT = Path(__file__).resolve().parents[1]
_CJK = re.compile(r"[\u4e00-\u9fff]")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("teachkit", "lessons"):
        shutil.copytree(ROOT / name, src / name, ignore=_JUNK)
    dist = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(dist), str(src)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    (built,) = dist.glob("teachkit-*.whl")
    return built


def _checkout_files() -> set[str]:
    """What the wheel must hold, listed from the checkout: every module of teachkit/ and lessons/
    (lessons/ as teachkit/lessons/), the lesson texts and the message catalogues."""
    want = set()
    for path in (ROOT / "teachkit").rglob("*.py"):
        if "__pycache__" not in path.parts:
            want.add(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "teachkit" / "locale").rglob("*.po"):
        want.add(path.relative_to(ROOT).as_posix())
    for pattern in ("*.py", "text/*/*.md"):
        for path in (ROOT / "lessons").glob(pattern):
            want.add("teachkit/lessons/" + path.relative_to(ROOT / "lessons").as_posix())
    return want


def test_the_wheel_holds_the_whole_app_and_no_top_level_lessons_or_app(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_checkout_files() - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "teachkit/lessons/app.py" in names  # the app's entry
    assert {"teachkit/serve.py", "teachkit/__main__.py"} <= names  # `teachkit app` and its served settings
    assert any(n.startswith("teachkit/lessons/text/zh/") for n in names)
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"teachkit", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    assert not [n for n in names if n.startswith(("lessons/", "app.py", "app/"))]
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    from teachkit import __version__

    assert f"Version: {__version__}" in zipfile.ZipFile(wheel).read(meta).decode()


def test_the_repository_config_file_repeats_the_served_settings():
    """``.streamlit/config.toml`` (a plain ``streamlit run app.py`` in a checkout) holds the served limits,
    and every value it sets is the one teachkit/serve.py serves with."""
    from teachkit.serve import SETTINGS

    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    flat = {f"{section}.{key}": value for section, table in conf.items() for key, value in table.items()}
    assert {"server.maxUploadSize", "client.showErrorDetails", "browser.gatherUsageStats"} <= set(flat)
    assert {k: v for k, v in flat.items()} == {k: SETTINGS[k] for k in flat if k in SETTINGS}
    assert set(flat) <= set(SETTINGS), sorted(set(flat) - set(SETTINGS))


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed non-editable; torch & co. from this environment."""
    where = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = _bin(where, "python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the packages of this environment (and of any environment it borrows from through a .pth line), on
    # the path but without running their .pth files (so not the editable teachkit's finder)
    dirs = dict.fromkeys([sysconfig.get_path("purelib")] + [p for p in sys.path if p.endswith("site-packages")])
    Path(site, "_teachkit_test_deps.pth").write_text("".join(d + "\n" for d in dirs))
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          "--no-index", "-q", str(wheel)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return where


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("elsewhere")  # outside the checkout: nothing of it on the path


def test_installed_teachkit_answers_from_any_folder(venv, elsewhere):
    from teachkit import __version__

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([str(_bin(venv, "teachkit")), "--version"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"teachkit {__version__}", out.stderr
    python = str(_bin(venv, "python"))
    out = subprocess.run([python, "-m", "teachkit", "--help"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and " app" in out.stdout and "prepare" in out.stdout, out.stderr
    # the teachkit that answers is the installed copy, and there is no top-level lessons or app module
    probe = ("import importlib.util as u, teachkit, teachkit.serve as s; "
             "print(teachkit.__file__); print(s.entry_script()); "
             "print(u.find_spec('lessons'), u.find_spec('app'))")
    out = subprocess.run([python, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    init, entry, specs = out.stdout.strip().splitlines()
    assert Path(init).resolve().is_relative_to(venv.resolve()), init
    assert Path(entry).is_file() and Path(entry).resolve().is_relative_to(venv.resolve()), entry
    assert specs == "None None"


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_teachkit_app_serves_lessons_in_both_languages_with_the_upload_limit(venv, elsewhere, classroom, tmp_path):
    need_browser()
    from playwright.sync_api import sync_playwright

    from teachkit.lessons.pages import page as lesson

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(classroom.env)  # tiny demos, the run's prepared cache (tests/conftest.py)
    mb = 1
    server = start_server(lambda port: [str(_bin(venv, "teachkit")), "app", "--port", str(port), "--local", "--no-qr",
                                        "--upload-mb", str(mb)], cwd=elsewhere, env=env, log=tmp_path / "app.log")
    url = server.url
    try:
        assert f"http://localhost:{url.rsplit(':', 1)[1]}" in server.log_text()  # the address it printed
        with sync_playwright() as p:
            browser = launch_chromium(p)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", loopback_only)
            page = context.new_page()
            for n in (1, 6):
                for lang in ("en", "zh"):
                    page.goto(f"{url}/{lesson(n).slug if n != 1 else ''}?lang={lang}", wait_until="domcontentloaded")
                    heading = page.locator("h1").filter(has_text=f"{n}. ").first
                    heading.wait_for(timeout=90_000)
                    title = heading.inner_text()
                    assert bool(_CJK.search(title)) == (lang == "zh"), (n, lang, title)
                    assert page.locator('[data-testid="stException"]').count() == 0, (n, lang)

            # lesson 6 (last opened) has uploaders: a small PNG goes through; the same request with more than
            # --upload-mb, from the same browser (its cookies and XSRF header), is refused by the server
            inputs = page.locator('[data-testid="stFileUploader"] input[type="file"]')
            inputs.first.wait_for(state="attached", timeout=90_000)
            small = tmp_path / "small.png"
            small.write_bytes(_png(64, 48))
            with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url and r.method == "PUT",
                                     timeout=30_000) as request:
                inputs.first.set_input_files(str(small))
            put = request.value
            headers = {k: v for k, v in put.headers.items() if k.lower() in ("x-xsrftoken", "cookie")}
            big = _png(64, 64) + b"\0" * (mb * 1024 * 1024 + 1024)
            resp = page.request.put(put.url, headers=headers, multipart={
                "file": {"name": "big.png", "mimeType": "image/png", "buffer": big}})
            assert resp.status == 413, resp.status
            ok = page.request.put(put.url, headers=headers, multipart={
                "file": {"name": "small.png", "mimeType": "image/png", "buffer": small.read_bytes()}})
            assert ok.status < 400, ok.status  # the refusal is the size, not the request
            browser.close()
    finally:
        server.stop()
