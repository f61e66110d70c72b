"""A class of 30 or 60 on one server: students played at the level of Streamlit's protocol (127.0.0.1 only).

    make bench-load                                        # 30, then 60 students, 2 of each in Chromium (~25 min)
    .venv/bin/python benchmarks/load.py --students 8 --minutes 3     # a short check
    .venv/bin/python benchmarks/load.py --students 30 --browsers 2   # + 2 real Chromium pages in the mix
    .venv/bin/python benchmarks/load.py --students 30 --profile      # + where the server's time goes (py-spy)
    .venv/bin/python benchmarks/load.py --job-peak         # peak memory of the largest lesson-6 job allowed
    .venv/bin/python benchmarks/load.py --press-together 20  # 20 press lesson 2's Run at once: shared vs not

(What decoding an upload costs is measured by benchmarks/upload_decode.py.)

Why not browsers: at 20 students twenty Chromium renderers took ~80 % of a 2-core CPU and at 30 pages
did not load -- that measured the browsers.  In a classroom each browser runs on its student's own
laptop.  Here one light Python process plays every student with Streamlit's own messages
(tests/local_server.py: ``Tab``): it loads the page and /_stcore/health (the XSRF cookie), opens the
websocket /_stcore/stream, sends the ``rerun_script`` BackMsg with ``?lang=`` and the page, the
widget values a student sets and the buttons a student presses, reruns the fragments the server
asks for (lesson 6's progress) at their interval, PUTs uploads the way the frontend does, and
fetches every image a page references.  ``--browsers K`` adds K real Chromium students doing the
same tour, to compare with what a browser sees.

Each class: ONE fresh server (the classroom flags of ``teachkit app``: teachkit.serve, on 127.0.0.1),
warmed by the teacher's first visit of lesson 1; then N students arrive within ``--arrive`` seconds,
half in Chinese, and each one goes through the lecture's order with a few seconds of reading per page:

1. lesson 1;  2. lesson 2, and one student in four presses "Run" (the live demo);
3. lesson 3: "Step" three times;  4. lesson 4;  5. lesson 5: a λ slider and the tiles slider;
6. lesson 6: one student in ten uploads their own photo (each its own shape) and presses "Start",
   then waits for the transfer to end; the others only look.

Timed per page: the **first element** (the page's title: request sent -> first element of the page's
own column) and the **page complete** (-> "script finished" and every image it references fetched);
per press: request -> script finished.  Checked: no error box or exception on any page; every
title in its student's language; a student without a transfer sees none on lesson 6; a transfer's
result has the shape of its student's own photo (nobody sees another student's state).  Measured
beside: the server's RSS (VmRSS every 0.5 s, VmHWM at the end) and CPU seconds, and with
``--profile`` a py-spy sample of the server (``pip install py-spy``; not a dependency of teachkit).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/local_server.py: the local server and the protocol client

from local_server import Tab, free_port, wait_until_healthy  # noqa: E402
from teachkit.lessons.pages import PAGES  # noqa: E402  (imported here: never on the class's event loop)
from machine import cpu_flags, cpu_name  # noqa: E402  (benchmarks/machine.py)

CHROMIUM = "/usr/bin/chromium"
TARGETS = {30: (5.0, 3 * 1024), 60: (10.0, None)}  #: students -> (worst first element, s; RSS MiB limit)


# ---- the machine and the server ----


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds used so far: by process ``pid`` (user + system), or by the whole machine (busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / tick  # all but idle and iowait


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def start_server(tmp: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, str, Path]:
    """The app with ``teachkit app``'s classroom flags, on 127.0.0.1 (log in ``tmp``)."""
    from teachkit.serve import streamlit_flags

    port = free_port()
    log = tmp / "server.log"
    env = dict(os.environ, TEACHKIT_OFFLINE="1", PYTHONUNBUFFERED="1", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             *streamlit_flags(port=port, local=True)],
                            cwd=tmp, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if wait_until_healthy(url, proc, 90):
        return proc, url, log
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()[-3000:]}")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


class RssSampler(threading.Thread):
    """Every 0.5 s: the server's VmRSS."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append((time.time(), proc_kib(self.pid, "VmRSS")))
            except OSError:
                return
            self.stop.wait(0.5)


# ---- the students ----


def photo(width: int, height: int, seed: int) -> bytes:
    """A student's own photo: the bundled cat cut to ``width`` x ``height`` and tinted (PNG bytes)."""
    from PIL import Image, ImageOps

    from teachkit.samples import sample_content

    img = ImageOps.fit(sample_content("chelsea"), (width, height))
    tint = Image.new("RGB", img.size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    buf = io.BytesIO()
    Image.blend(img, tint, 0.25).save(buf, format="PNG")
    return buf.getvalue()


class Student:
    def __init__(self, number: int, lang: str, *, demo: bool, transfer: bool, rng: random.Random):
        self.name, self.lang, self.demo, self.transfer, self.rng = f"s{number:02d}", lang, demo, transfer, rng
        self.shape = (160 + 16 * (number % 7), 112 + 8 * (number % 5)) if transfer else None  # its own photo
        # made before the class: decoding and encoding it on the class's event loop would delay every student
        self.photo = photo(*self.shape, number) if transfer else None
        self.visits: dict[int, dict] = {}  # lesson -> {"first": s, "complete": s}
        self.presses: list[tuple[str, float | None]] = []  # (what, seconds to script finished)
        self.problems: list[str] = []  # an error box, an exception, a wrong language, another's state
        self.slow: list[str] = []  # no answer in time, the class's deadline: slow, not wrong
        self.job: dict | None = None


def _is_zh(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def check_page(st: Student, tab: Tab, n: int, what: str, run) -> None:
    """No error or exception; the title in the student's language (the page as its run finished)."""
    for err in tab.errors(run.elements):
        st.problems.append(f"lesson {n} {what}: {err[:140]}")
    titles = [t for t in tab.texts("heading", run.elements) if t.startswith(f"{n}. ")]
    if not titles:
        st.problems.append(f"lesson {n} {what}: no title")
    elif _is_zh(titles[0]) != (st.lang == "zh"):
        st.problems.append(f"lesson {n} {what}: title {titles[0]!r} is not in {st.lang}")


async def visit(st: Student, tab: Tab, n: int, slug: str, timeout: float) -> None:
    run = await (tab.open(slug, timeout) if tab._ws is None else tab.rerun(page_name=slug, timeout=timeout))
    st.visits[n] = {"first": run.seconds("first_element"), "complete": run.seconds("complete"), "status": run.status}
    if run.status != "finished":
        (st.slow if run.status == "timeout" else st.problems).append(f"lesson {n}: {run.status} after {timeout:.0f} s")
    else:
        check_page(st, tab, n, "visit", run)


async def press(st: Student, tab: Tab, n: int, what: str, action, timeout: float) -> None:
    try:
        run = await action()
    except LookupError as err:
        st.problems.append(f"lesson {n}: {err}")
        return
    st.presses.append((what, run.seconds("finished")))
    if run.status != "finished":
        (st.slow if run.status == "timeout" else st.problems).append(f"lesson {n} {what}: {run.status}")
    else:
        check_page(st, tab, n, what, run)


def size_in(caption: str) -> tuple[int, int] | None:
    """The ``W×H`` a result's caption shows (e.g. ``photo.png · 208×139``), or None."""
    for token in caption.replace("·", " ").split():
        w, sep, h = token.partition("×")
        if sep and w.isdigit() and h.isdigit():
            return int(w), int(h)
    return None


async def transfer(st: Student, tab: Tab, deadline: float) -> None:
    """Lesson 6: upload the student's own photo, Start, wait for the end; the result has its shape."""
    w, h = st.shape
    statuses, run = await tab.upload("p6_content_upload", [(f"{st.name}.png", st.photo, "image/png")])
    if statuses != [204] or run is None or run.status != "finished":
        st.problems.append(f"lesson 6 upload: {statuses} {run.status if run else ''}")
        return
    t0 = time.perf_counter()
    await press(st, tab, 6, "start", lambda: tab.press("p6_start"), 120)
    # Ended: the downloads are there, or the page's full run that the job's end starts has finished with
    # "Clear" but no downloads (stopped or refused).  "Clear" alone comes before the downloads in that run.
    ended = await tab._wait(lambda: tab.widget("p6_dl_png") is not None
                            or (tab.widget("p6_clear") is not None and tab.runs_finished == tab.runs_started),
                            max(1.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - t0
    st.job = {"finished": tab.widget("p6_dl_png") is not None, "ended": ended, "seconds": seconds}
    if not ended:
        return  # slow, not wrong: counted apart
    # the result's caption is its size alone ("208×139"); the photo above it says "name · 208×139"
    sizes = [size for e in tab.elements.values() if e.WhichOneof("type") == "imgs"
             for img in e.imgs.imgs if " " not in img.caption.strip() and (size := size_in(img.caption))]
    if sizes:
        rw, rh = sizes[0]
        st.job["size"] = f"{rw}x{rh}"
        if abs(rw / rh - w / h) > 0.05:
            st.problems.append(f"lesson 6: result {rw}x{rh} does not have the shape of this student's {w}x{h} photo")
    elif st.job["finished"]:
        st.problems.append("lesson 6: a result without its size caption")
    for err in tab.errors():
        st.problems.append(f"lesson 6 result: {err[:140]}")


async def student_run(st: Student, url: str, start_at: float, deadline: float, reading: tuple[float, float]) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    tab = Tab(url, lang=st.lang)
    timeout = 180.0
    try:
        for page in PAGES:
            n = page.number
            if time.monotonic() > deadline:
                st.slow.append(f"deadline reached before lesson {n}")
                break
            await visit(st, tab, n, "" if n == 1 else page.slug, timeout)
            if n == 2 and st.demo:
                await press(st, tab, 2, "run", lambda: tab.press("p2_run", timeout=timeout), timeout)
            elif n == 3:
                for _ in range(3):
                    await press(st, tab, 3, "step", lambda: tab.press("p3_step", timeout=timeout), timeout)
            elif n == 5:
                lam = tab.widget("p5_lambda_relu1_1")
                if lam is not None and len(lam.options) > 1:
                    await press(st, tab, 5, "lambda", lambda: tab.set_slider("p5_lambda_relu1_1", lam.options[-1],
                                                                             timeout=timeout), timeout)
                await press(st, tab, 5, "tiles", lambda: tab.set_slider("p5_tiles", 6, timeout=timeout), timeout)
            elif n == 6:
                if st.transfer:
                    await transfer(st, tab, deadline)
                elif tab.widget("p6_cancel") is not None or tab.widget("p6_dl_png") is not None:
                    st.problems.append("lesson 6: a transfer is shown to a student who started none")
            await asyncio.sleep(st.rng.uniform(*reading))
    except Exception as err:  # noqa: BLE001 - recorded, the others go on
        st.problems.append(f"{type(err).__name__}: {str(err)[:160]}")
    finally:
        await tab.close()


# ---- a few real browsers in the mix ----


async def browser_student(st: Student, url: str, start_at: float, timeout: float, reading) -> None:
    """The same tour (no presses) in headless Chromium: click each lesson, time its title and the end of drawing."""
    from playwright.async_api import async_playwright

    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            ctx = await browser.new_context(viewport={"width": 1280, "height": 900})

            async def loopback_only(route) -> None:
                ok = route.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:"))
                await (route.continue_() if ok else route.abort())

            await ctx.route("**/*", loopback_only)
            page = await ctx.new_page()
            for lesson in PAGES:
                n = lesson.number
                t0 = time.perf_counter()
                if n == 1:
                    await page.goto(f"{url}/?lang={st.lang}", wait_until="domcontentloaded", timeout=timeout * 1000)
                else:
                    await page.locator(f'[data-testid="stSidebarNav"] a[href$="/{lesson.slug}"]').first.click()
                await page.locator('[data-testid="stMain"] h1').filter(has_text=f"{n}. ").first.wait_for(
                    timeout=timeout * 1000)
                first = time.perf_counter() - t0
                quiet, end = 0, time.monotonic() + timeout
                while quiet < 2 and time.monotonic() < end:  # Streamlit's "running" indicator gone twice
                    busy = await page.locator('[data-testid="stStatusWidget"]').count() > 0
                    quiet = 0 if busy else quiet + 1
                    await asyncio.sleep(0.25)
                st.visits[n] = {"first": first, "complete": time.perf_counter() - t0, "status": "finished"}
                for sel in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
                    if await page.locator(sel).count():
                        st.problems.append(f"lesson {n}: an error box in the browser")
                await asyncio.sleep(st.rng.uniform(*reading))
        except Exception as err:  # noqa: BLE001
            st.problems.append(f"browser: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
        finally:
            await browser.close()


# ---- one class ----


async def teacher_first_visit(url: str) -> float:
    tab = Tab(url)
    try:
        run = await tab.open("", 900)
        return run.seconds("complete") or float("nan")
    finally:
        await tab.close()


class LoopLag:
    """How late the generator's own event loop wakes up: every student's messages wait for it, so a late
    loop would be counted as a slow server.  Reported beside the figures (worst and how often > 0.25 s)."""

    def __init__(self, period: float = 0.05):
        self.period, self.worst, self.late, self.ticks = period, 0.0, 0, 0

    async def run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.period)
            lag = time.perf_counter() - t - self.period
            self.ticks += 1
            self.worst = max(self.worst, lag)
            self.late += lag > 0.25


def http_threads(n_students: int) -> None:
    """HTTP (page loads, images, uploads) runs in threads: up to two per student at once, as each browser
    has its own connections (asyncio's default pool of cpu_count + 4 would make students queue here)."""
    from concurrent.futures import ThreadPoolExecutor

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2 * n_students + 8))


async def classroom(url: str, students: list[Student], browsers: list[Student], args, lag: LoopLag) -> None:
    http_threads(len(students))
    probe = asyncio.ensure_future(lag.run())
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60
    reading = (args.reading * 0.5, args.reading * 1.5)
    n = len(students) + len(browsers)
    order = list(range(n))
    arrivals = {i: t0 + args.arrive * k / max(1, n - 1) for k, i in enumerate(order)}
    tasks = [student_run(s, url, arrivals[i], deadline, reading) for i, s in enumerate(students)]
    tasks += [browser_student(b, url, arrivals[len(students) + j], 180, reading) for j, b in enumerate(browsers)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.minutes * 60 + 240)
    finally:
        probe.cancel()


class Profiler:
    """py-spy sampling the server during the class (its raw output: one line per stack and count)."""

    def __init__(self, pid: int, seconds: float, out: Path):
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        self.proc = None
        if Path(exe).is_file():
            self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                          "--rate", "50", "--format", "raw", "--nonblocking", "-o", str(out)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, stop: bool = False) -> list[tuple[str, float]]:
        if self.proc is None:
            return [("py-spy not found (pip install py-spy)", 100.0)]
        if stop and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes what it has sampled so far
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
        return where_time_goes(self.out)


#: a sampled stack is counted for the first of these found from its innermost frame outwards (py-spy
#: names frames ``function (package/file.py:line)``)
AREAS = [
    ("torch (transfers, live demos, activations for figures)", ("(torch/",)),
    ("PNG encoding (figures and images sent as PNG)", ("PngImagePlugin", "_encode_tile", "print_png")),
    ("matplotlib (drawing figures)", ("(matplotlib/", "(mpl_toolkits/")),
    ("PIL / numpy (images)", ("(PIL/", "(numpy/")),
    ("Streamlit sending (protobuf, media files, websocket)", ("(google/protobuf/", "forward_msg", "media_file",
                                                             "websocket", "(streamlit/proto/")),
    ("Streamlit script runner (page scripts, widgets, state)", ("(streamlit/",)),
    ("teachkit and lessons (own Python)", ("(teachkit/", "(lessons/")),
    ("web server (uvicorn, starlette, asyncio)", ("(uvicorn/", "(starlette/", "(asyncio/", "(websockets/")),
]
#: innermost frames of a thread that only waits (py-spy does not always see that it is idle)
WAITING = ("select (selectors.py", "polling_path_watcher.py:90", "wait (threading.py", "_worker (concurrent/",
           "get (queue.py", "sleep", "acquire")


def where_time_goes(raw: Path) -> list[tuple[str, float]]:
    """Shares of the server's busy samples per area (threads that only wait are left out)."""
    counts: collections.Counter = collections.Counter()
    total = 0
    try:
        lines = raw.read_text(errors="replace").splitlines()
    except OSError:
        return [("no profile written", 100.0)]
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        if any(w in frames[-1] for w in WAITING):
            continue
        area = "other"
        for frame in reversed(frames):
            hit = next((name for name, marks in AREAS if any(m in frame for m in marks)), None)
            if hit:
                area = hit
                break
        counts[area] += int(n)
        total += int(n)
    return [(a, 100.0 * c / total) for a, c in counts.most_common()] if total else [("no samples", 100.0)]


def prepared_items() -> int:
    """How many results ``teachkit prepare`` has made in the cache (the pages show them at once)."""
    from teachkit.prepare import prepared_root

    folder = prepared_root() / "vgg19"
    return sum(1 for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else 0


def one_class(n_students: int, args) -> dict:
    rng = random.Random(args.seed * 1000 + n_students)
    tmp = Path(tempfile.mkdtemp(prefix="teachkit_load_"))
    proc, url, log = start_server(tmp)
    sampler = RssSampler(proc.pid)
    sampler.start()
    profile = []
    try:
        teacher_s = asyncio.run(teacher_first_visit(url))
        rss_ready = proc_kib(proc.pid, "VmRSS") / 1024
        n_protocol = max(1, n_students - args.browsers)
        students = [Student(i, "zh" if i % 2 else "en", demo=(i % 4 == 1), transfer=(i % 10 == 3),
                            rng=random.Random(rng.random())) for i in range(n_protocol)]
        browsers = [Student(n_protocol + j, "zh" if j % 2 else "en", demo=False, transfer=False,
                            rng=random.Random(rng.random())) for j in range(n_students - n_protocol)]
        profiler = Profiler(proc.pid, args.minutes * 60, tmp / "profile.txt") if args.profile else None
        cpu0, machine0, load0, t0 = cpu_seconds(proc.pid), cpu_seconds(), load_average(), time.time()
        lag = LoopLag()
        asyncio.run(classroom(url, students, browsers, args, lag))
        wall = time.time() - t0
        cpu_server, cpu_machine = cpu_seconds(proc.pid) - cpu0, cpu_seconds() - machine0
        peak = proc_kib(proc.pid, "VmHWM") / 1024
        if profiler is not None:
            profile = profiler.finish(stop=True)
    finally:
        sampler.stop.set()
        stop_server(proc)
    server_log = log.read_text(errors="replace")
    if args.keep:
        print(f"(server log kept in {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "students": n_students, "protocol": len(students), "browsers": len(browsers), "wall_s": wall,
        "prepared_items": prepared_items(),
        "teacher_first_visit_s": teacher_s, "rss_ready_mib": rss_ready,
        "rss_peak_mib": max([peak] + [k / 1024 for _, k in sampler.samples]),
        "cpu_server_s": cpu_server, "cpu_machine_s": cpu_machine, "load_before": load0,
        "tracebacks_in_log": server_log.count("Traceback"), "profile": profile,
        "generator_lag_worst_s": lag.worst, "generator_lag_late": lag.late, "generator_lag_ticks": lag.ticks,
        "detail": [{"name": s.name, "lang": s.lang, "browser": s in browsers, "visits": s.visits,
                    "presses": s.presses, "job": s.job, "problems": s.problems, "slow": s.slow}
                   for s in students + browsers],
    }


# ---- the report ----


def _stats(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "–"


def report(res: dict, machine: str) -> str:
    n = res["students"]
    proto = [d for d in res["detail"] if not d["browser"]]
    real = [d for d in res["detail"] if d["browser"]]
    lines = [f"### {n} students ({res['protocol']} protocol + {res['browsers']} Chromium), {machine}", "",
             f"Teacher's first visit of lesson 1 (before class): {res['teacher_first_visit_s']:.1f} s; server RSS then "
             f"{res['rss_ready_mib']:.0f} MiB; load average before the class {res['load_before']:.1f}; "
             f"results prepared by `teachkit prepare` in the cache: {res['prepared_items']}.", "",
             "| lesson | visits | first element, s: median / worst | page complete, s: median / worst |"
             + (" Chromium: first / complete, median |" if real else ""),
             "|---|---|---|---|" + ("---|" if real else "")]
    firsts_all = []
    for page in PAGES:
        k = page.number
        f = [d["visits"][k]["first"] for d in proto if k in d["visits"]]
        c = [d["visits"][k]["complete"] for d in proto if k in d["visits"]]
        firsts_all += [v for v in f if v is not None]
        row = f"| {k} | {len(f)} | {_stats(f)} | {_stats(c)} |"
        if real:
            bf = [d["visits"][k]["first"] for d in real if k in d["visits"]]
            bc = [d["visits"][k]["complete"] for d in real if k in d["visits"]]
            row += (f" {statistics.median(bf):.1f} / {statistics.median(bc):.1f} |" if bf else " – |")
        lines.append(row)
    missing = sum(1 for d in proto for k in range(1, 7) if k in d["visits"] and d["visits"][k]["first"] is None)
    lines.append(f"| all | {len(firsts_all)} | **{_stats(firsts_all)}** | |")
    presses = collections.defaultdict(list)
    for d in proto:
        for what, s in d["presses"]:
            presses[what].append(s)
    lines += ["", "| press | count | request -> script finished, s: median / worst |", "|---|---|---|"]
    for what in ("run", "step", "lambda", "tiles", "start"):
        if presses.get(what):
            lines.append(f"| {what} | {len(presses[what])} | {_stats(presses[what])} |")
    jobs = [d["job"] for d in proto if d["job"]]
    finished = [j for j in jobs if j["finished"]]
    problems = [(d["name"], p) for d in res["detail"] for p in d["problems"]]
    slow = [(d["name"], p) for d in res["detail"] for p in d.get("slow", [])]
    worst = max(firsts_all) if firsts_all else float("inf")
    limit_s, limit_mib = TARGETS.get(n, (10.0, None))
    lines += [
        "",
        f"- server peak RSS: **{res['rss_peak_mib']:.0f} MiB**; server CPU: **{res['cpu_server_s']:.0f} s** of the "
        f"machine's {res['cpu_machine_s']:.0f} busy CPU-seconds in {res['wall_s']:.0f} s of class "
        f"({os.cpu_count()} cores: {os.cpu_count() * res['wall_s']:.0f} CPU-s available)",
        f"- lesson-6 transfers: {len(finished)} of {len(jobs)} finished"
        + (": " + ", ".join(f"{j['seconds']:.0f} s" for j in finished) if finished else "")
        + (f"; {len(jobs) - len(finished)} still running or refused at the end" if len(jobs) > len(finished) else ""),
        f"- tracebacks in the server log: {res['tracebacks_in_log']}; pages without a first element: {missing}",
        f"- the generator's own event loop: worst wake-up {res.get('generator_lag_worst_s', float('nan')):.2f} s late, "
        f"{res.get('generator_lag_late', 0)} of {res.get('generator_lag_ticks', 0)} wake-ups over 0.25 s late "
        "(a late generator would show as a slow server)",
        f"- target ({n} students): every first element <= {limit_s:.0f} s: "
        f"{'**met**' if worst <= limit_s and not missing else '**NOT met**'} (worst {worst:.1f} s)"
        + (f"; RSS < {limit_mib / 1024:.0f} GiB: {'**met**' if res['rss_peak_mib'] < limit_mib else '**NOT met**'}"
           if limit_mib else "")
        + f"; nobody sees an error or another student's state: {'**met**' if not problems else '**NOT met**'}",
    ]
    if res["profile"]:
        lines += ["", "Where the server's time went (py-spy samples of its running threads):", ""]
        lines += [f"- {share:4.1f} %  {area}" for area, share in res["profile"]]
    if problems:
        lines += ["", f"Problems ({len(problems)}):"] + [f"- {name}: {p}" for name, p in problems[:40]]
    if slow:
        counts = collections.Counter(p for _, p in slow)
        lines += ["", f"Slow, not wrong ({len(slow)}): " + "; ".join(f"{p} x{c}" for p, c in counts.most_common(8))]
    return "\n".join(lines)


# ---- single measurements in a subprocess ----


def job_peak(args) -> None:
    """Peak RSS of the largest lesson-6 job the caps allow, over the process with the backbone loaded."""
    code = r"""
import resource, sys, time, torch
sys.path.insert(0, %r)
from teachkit.lessons.jobs import LIMITS
from teachkit.features import load_backbone
from teachkit.samples import sample_content, sample_style, list_samples
from teachkit.transfer import TransferConfig, transfer
net = load_backbone("vgg19", device="cpu")
styles = [sample_style(n, 1024) for n in list_samples()["style"]][: LIMITS.max_styles]
content = sample_content("astronaut")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
steps = LIMITS.max_history + %d
cfg = TransferConfig(size=LIMITS.max_size, steps=steps, style_scale=LIMITS.max_style_scale,
                     history_size=LIMITS.max_history, preview_every=10)
t = time.perf_counter()
res = transfer(content, styles, cfg, backbone=net)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"largest job: size {LIMITS.max_size}, style scale {LIMITS.max_style_scale} ({LIMITS.work_side} px styles), "
      f"{len(styles)} styles, L-BFGS history {LIMITS.max_history}, {steps} steps (history full), float32, "
      f"{torch.get_num_threads()} threads")
print(f"process with the backbone loaded: {base:.0f} MiB; peak: {peak:.0f} MiB; the job's own: {peak - base:.0f} MiB "
      f"(budget {LIMITS.memory_budget_mib} MiB); {time.perf_counter() - t:.0f} s, {len(res.history)} steps")
""" % (str(ROOT), args.extra_steps)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, TEACHKIT_OFFLINE="1"))


async def _press_together(url: str, n: int) -> list[dict]:
    """``n`` students on lesson 2, all pressing "Run" at the same moment (the teacher says "now")."""
    from teachkit.messages import text

    stopped = text("ui.stopped_at_limit", "en").split("{")[0]
    tabs = [Tab(url) for _ in range(n)]
    slug = next(p.slug for p in PAGES if p.number == 2)
    try:
        for tab in tabs:
            await tab.open(slug, 300)
        runs = await asyncio.gather(*(tab.press("p2_run", timeout=900) for tab in tabs))
        out = []
        for tab, run in zip(tabs, runs):
            captions = tab.texts("markdown", run.elements)  # st.caption is a Markdown element
            out.append({"seconds": run.seconds("finished"), "status": run.status, "errors": tab.errors(run.elements),
                        "cut": any(c.startswith(stopped) for c in captions)})
        return out
    finally:
        for tab in tabs:
            await tab.close()


def press_together(args) -> None:
    """The same demo pressed by N students at once: shared runs (the default) beside every press its own."""
    from teachkit.lessons.settings import demo_seconds

    print(f"CPU: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores; {args.press_together} students on "
          f"lesson 2 press \"Run\" at once (default pictures and settings; demo time limit {demo_seconds()} s)\n")
    rows = []
    for shared in ("1", "0"):
        tmp = Path(tempfile.mkdtemp(prefix="teachkit_together_"))
        proc, url, _ = start_server(tmp, {"TEACHKIT_SHARED_DEMOS": shared, "TEACHKIT_WARMUP": "0"})
        try:
            cpu0 = cpu_seconds(proc.pid)

            async def go():
                http_threads(args.press_together)
                return await _press_together(url, args.press_together)

            res = asyncio.run(go())
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            stop_server(proc)
            shutil.rmtree(tmp, ignore_errors=True)
        secs = [r["seconds"] for r in res if r["seconds"] is not None]
        rows.append((shared, secs, sum(r["cut"] for r in res), sum(bool(r["errors"]) or r["status"] != "finished"
                                                                    for r in res), cpu, len(res)))
    print("| presses | result after, s: median / worst | results cut short by the time limit | errors | server CPU-s |")
    print("|---|---|---|---|---|")
    for shared, secs, cut, bad, cpu, n in rows:
        name = "shared (default)" if shared == "1" else "each its own (TEACHKIT_SHARED_DEMOS=0)"
        print(f"| {name} | {_stats(secs)} | {cut} of {n} | {bad} | {cpu:.0f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", default="30,60", help="class sizes, comma-separated, one fresh server each "
                                                       "(default 30,60)")
    ap.add_argument("--browsers", type=int, default=0, help="of each class, this many are real Chromium pages "
                                                          "(needs /usr/bin/chromium; default 0)")
    ap.add_argument("--minutes", type=float, default=8.0, help="deadline of each class (default 8)")
    ap.add_argument("--arrive", type=float, default=30.0, help="students arrive within this many seconds (default 30)")
    ap.add_argument("--reading", type=float, default=4.0, help="mean seconds of reading per page (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="sample the server with py-spy during each class")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (server log)")
    ap.add_argument("--job-peak", action="store_true", help="measure the largest allowed lesson-6 job instead")
    ap.add_argument("--extra-steps", type=int, default=5, help="--job-peak: steps beyond a full L-BFGS history")
    ap.add_argument("--press-together", type=int, metavar="N", help="instead: N students press lesson 2's Run at "
                    "the same moment, with shared demo runs and without")
    args = ap.parse_args(argv)
    if args.job_peak:
        return job_peak(args)
    if args.press_together:
        return press_together(args)
    if args.browsers and not Path(CHROMIUM).is_file():
        print(f"(no Chromium at {CHROMIUM}: every student is played through the protocol)")
        args.browsers = 0
    machine = f"{cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores"
    results = []
    for n in (int(v) for v in args.students.split(",")):
        res = one_class(n, args)
        results.append(res)
        print(report(res, machine), flush=True)
        print(flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
