"""A classroom on one server: many browser sessions at once, on this machine only (127.0.0.1).

    .venv/bin/python benchmarks/load.py                 # 10 students, ~10 minutes at most
    .venv/bin/python benchmarks/load.py --students 12   # more
    .venv/bin/python benchmarks/load.py --post-script-gc  # with Streamlit's gc.collect() after every run
    .venv/bin/python benchmarks/load.py --job-peak      # peak memory of the largest lesson-6 job allowed

(What decoding an upload costs is measured by benchmarks/upload_decode.py.)

The load run starts ONE server (`make run`'s options, bound to 127.0.0.1, a data root with a
folder of photos and a link out of it) and ONE headless Chromium (/usr/bin/chromium) with one
browser context per student, all at the same time:

* every student goes through the six lessons with the sidebar (one session each, like a student
  clicking), and the time from the click to the page's first element (its title) is measured,
  as well as the time until the page has finished drawing;
* two of them first run a lesson-6 transfer with the page's defaults (different content photos)
  and wait for it to end;
* one types hostile input: paths into lesson 1's folder box (/, /etc, .., a link out of the root,
  a huge string) and uploads a 30-megapixel PNG bomb, a corrupt file and an 11 MB file to lesson 6;
* half of the students use the Chinese interface (?lang=zh), the others English.

Checks: no well-behaved page shows an error or exception box; each page's title is in its
student's language; no student sees another's transfer (the result's size matches the student's
own photo; students without a job see no job on lesson 6); the hostile student gets one neutral
error per path and one error per bad upload.  The server's memory is sampled all along (VmRSS)
and its peak read at the end (VmHWM).  Everything is bounded: each wait has a timeout, the run
has a deadline, the server and the browser are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/local_server.py: start-and-wait for the local server

from local_server import free_port, wait_until_healthy  # noqa: E402

from teachkit.lessons.pages import PAGES  # noqa: E402 - the one page registry
CHROMIUM = "/usr/bin/chromium"
#: (lesson, its address); lesson 1 is the default page, served at the root
LESSONS = [(p.number, "" if p.number == 1 else p.slug) for p in PAGES]


# ---- the machine and the server ----


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu]
    return (sum(values[:8]) - values[3] - values[4]) / tick  # all but idle and iowait


def make_run_flags() -> list[str]:
    """The `streamlit run` options of `make run` (read from the Makefile)."""
    out = subprocess.run(["make", "-s", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return " ".join(out.replace("\\\n", " ").split("\n")).split("app.py", 1)[1].split()


def make_data_root(tmp: Path) -> Path:
    from teachkit.samples import sample_content

    root = tmp / "data_root"
    photos = root / "photos"
    photos.mkdir(parents=True)
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        sample_content(name, 160).save(photos / f"{name}.png")
    (root / "escape").symlink_to("/etc", target_is_directory=True)
    return root


def start_server(tmp: Path, data_root: Path, post_script_gc: bool = False) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = tmp / "server.log"
    flags = [f for f in make_run_flags()]
    if post_script_gc:  # Streamlit's default, which the app switches off (lessons/resources.py: light_reruns)
        flags += ["--runner.postScriptGC", "true"]
    env = dict(os.environ, TEACHKIT_OFFLINE="1", TEACHKIT_DATA_ROOT=str(data_root), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", *flags,
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if wait_until_healthy(url, proc, 90):
        return proc, url, log
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()[-3000:]}")


ABANDONED_LINE = "session went away was cancelled"  # logged by lessons/jobs.py
SLOW = "the transfer did not end while the student waited"  # slow, not wrong: counted apart


class RssSampler(threading.Thread):
    """Every 0.5 s: the server's VmRSS, and when its log gains a line about a cancelled abandoned job."""

    def __init__(self, pid: int, log: Path):
        super().__init__(daemon=True)
        self.pid, self.log, self.samples, self.stop = pid, log, [], threading.Event()
        self.abandoned_times: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append((time.time(), proc_kib(self.pid, "VmRSS")))
            except OSError:
                return
            n = self.log.read_text(errors="replace").count(ABANDONED_LINE)
            self.abandoned_times += [time.time()] * (n - len(self.abandoned_times))
            self.stop.wait(0.5)


# ---- hostile files ----


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int = 6000, height: int = 5000) -> bytes:
    """A ~70-byte PNG whose header claims width x height pixels."""
    data = bytearray(png(8, 8))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


# ---- the students ----


async def loopback_only(route) -> None:
    if route.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")):
        await route.continue_()
    else:
        await route.abort()


class Student:
    def __init__(self, name: str, role: str, lang: str, content: str | None = None):
        self.name, self.role, self.lang, self.content = name, role, lang, content
        self.first_element: dict[int, float] = {}
        self.drawn: dict[int, float] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.job: dict | None = None
        self.abandoned_at: float | None = None
        self.loads: list[str] = []  # every full page load (a click should never cause one)


async def poll(check, timeout_s: float) -> bool:
    """Call ``await check()`` every 0.25 s until it is true (True) or ``timeout_s`` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True


async def settle(page, timeout_s: float) -> bool:
    """Until Streamlit's 'running' indicator has been gone twice in a row (bounded)."""
    quiet = [0]

    async def gone_twice() -> bool:
        busy = await page.locator('[data-testid="stStatusWidget"]').count() > 0
        quiet[0] = 0 if busy else quiet[0] + 1
        return quiet[0] >= 2

    return await poll(gone_twice, timeout_s)


async def rerun_settled(page, timeout_s: float) -> None:
    """After an input: wait (up to 3 s) for the rerun to start, then until it has finished."""
    try:
        await page.locator('[data-testid="stStatusWidget"]').first.wait_for(timeout=3000)
    except Exception:  # noqa: BLE001 - a quick rerun may be over before we look
        pass
    await settle(page, timeout_s)


async def wait_count(locator, n: int, timeout_s: float) -> bool:
    """Until ``locator`` matches exactly ``n`` elements (bounded); False on timeout."""
    async def matches() -> bool:
        return await locator.count() == n

    return await poll(matches, timeout_s)


async def wait_visible(locator, timeout_s: float) -> bool:
    try:
        await locator.first.wait_for(timeout=timeout_s * 1000)
        return True
    except Exception:  # noqa: BLE001 - the check that follows records what is missing
        return False


async def errors_on(page) -> list[str]:
    out = []
    for sel in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
        loc = page.locator(sel)
        for i in range(await loc.count()):
            out.append((await loc.nth(i).inner_text())[:200])
    return out


async def open_lesson(st: Student, page, n: int, slug: str, timeout_s: float) -> None:
    """Click lesson n in the sidebar; time to its title, then to the end of drawing."""
    t0 = time.perf_counter()
    if n == 1 and not st.first_element:
        pass  # already there (the first page)
    else:
        await page.locator(f'[data-testid="stSidebarNav"] a[href$="/{slug}"]').first.click()
    title = page.locator('[data-testid="stMain"] h1').filter(has_text=f"{n}. ").first
    await title.wait_for(timeout=timeout_s * 1000)
    st.first_element[n] = time.perf_counter() - t0
    text = await title.inner_text()
    if (st.lang == "zh") != any("\u4e00" <= ch <= "\u9fff" for ch in text):
        st.problems.append(f"lesson {n}: title {text!r} is not in {st.lang}")
    await settle(page, timeout_s)
    st.drawn[n] = time.perf_counter() - t0


async def run_transfer(st: Student, page, timeout_s: float) -> None:
    if st.content:
        from teachkit.lessons._strings import UI

        label = UI.get(f"sample_{st.content}", {}).get(st.lang, st.content)
        await page.locator('[class*="st-key-p6_content_sample"]').first.click()
        await page.get_by_role("option", name=label, exact=True).first.click()
        await page.wait_for_timeout(1000)
        await settle(page, 60)
    t0 = time.perf_counter()
    await page.locator(".st-key-p6_start button").first.click()
    ended = page.locator(".st-key-p6_clear button")  # "Clear the result": there once the job has ended
    try:
        await ended.first.wait_for(timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - recorded, the run goes on
        st.job = {"finished": False, "seconds": time.perf_counter() - t0}
        st.problems.append("lesson 6: " + SLOW)
        return
    seconds = time.perf_counter() - t0
    await settle(page, 60)
    finished = await page.locator(".st-key-p6_dl_png").count() > 0 and await page.locator(
        '[data-testid="stAlertContentWarning"], [data-testid="stAlertContentError"]').count() == 0
    caption = ""
    caps = page.locator('[data-testid="stImageCaption"]')
    for i in range(await caps.count()):
        c = (await caps.nth(i).inner_text()).strip()
        if "×" in c and c.replace("×", "").isdigit():
            caption = c
    st.job = {"finished": finished, "seconds": seconds, "size": caption}
    expected = {None: "chelsea"}.get(st.content, st.content)
    from teachkit.samples import sample_content

    w, h = sample_content(expected).size
    if caption:  # the result has the aspect ratio of this student's own photo, not another's
        cw, ch = (int(v) for v in caption.split("×"))
        if abs(cw / ch - w / h) > 0.05:
            st.problems.append(f"lesson 6: result {caption} does not have the shape of {expected} ({w}x{h})")
    else:
        st.problems.append("lesson 6: no result image caption")


async def hostile(st: Student, page, data_root: Path, tmp: Path) -> None:
    """Lesson 1's folder box, then lesson 6's uploads."""
    expander = page.locator('[data-testid="stExpander"] summary').filter(has_text="Dataset").first
    await expander.click()
    box = page.locator(".st-key-p1_folder input").first
    await box.wait_for(timeout=60_000)
    paths = ["/", "/etc", "..", "escape", str(data_root / "escape"), "../../../../etc/passwd", "x" * 5000,
             "photos/../../", "photos"]
    error_box = page.locator('[data-testid="stAlertContentError"]')
    for path in paths:
        # first an empty box (the default dataset: no error), so that the error of the path before
        # is gone and the one that follows is this path's answer however long the rerun waits
        await box.fill("")
        await box.press("Enter")
        await wait_count(error_box, 0, 180)
        await box.fill(path)
        await box.press("Enter")
        if path == "photos":  # a folder inside the root: its scan is shown (its name in the caption)
            await wait_visible(page.locator('[data-testid="stCaptionContainer"]').filter(has_text="photos"), 180)
        else:
            await wait_visible(error_box, 180)
        await rerun_settled(page, 180)
        errs = await errors_on(page)
        if path == "photos":
            st.notes.append(f"folder 'photos' (inside the root): {len(errs)} errors {errs[:1]}")
        else:
            if len(errs) != 1:
                st.problems.append(f"folder {path[:40]!r}: {len(errs)} error boxes")
            elif path.strip("/") and path[:40] in errs[0] and path not in ("..", "escape"):
                st.problems.append(f"folder {path[:40]!r}: the error repeats the path")
    st.notes.append(f"folder box: {len(paths) - 1} hostile paths, each one neutral error")
    await page.locator('[data-testid="stSidebarNav"] a[href$="/run"]').first.click()
    await page.locator('[data-testid="stMain"] h1').filter(has_text="6. ").first.wait_for(timeout=120_000)
    await settle(page, 120)
    files = {"bomb.png": png_bomb(), "corrupt.png": png(64, 64)[:60] + b"\0" * 100,
             "big.png": png(64, 64) + b"\0" * (11 * 1024 * 1024)}
    upload = page.locator('.st-key-p6_content_upload input[type="file"]').first
    for name, data in files.items():
        path = tmp / name
        path.write_bytes(data)
        await upload.set_input_files(str(path))
        # the answer: an error naming the file (ours), or the browser's own refusal (bounded wait)
        answer = page.locator('[data-testid="stAlertContentError"]').filter(has_text=name).or_(
            page.locator(".st-key-p6_content_upload").get_by_text("must be"))
        try:
            await answer.first.wait_for(timeout=120_000)
        except Exception:  # noqa: BLE001 - recorded below
            pass
        await rerun_settled(page, 120)
        named = [e for e in await errors_on(page) if name in e]  # our errors name the file
        browser_refused = await page.locator(".st-key-p6_content_upload").get_by_text("must be").count()
        how = "refused by the browser" if browser_refused else f"{len(named)} error naming it"
        st.notes.append(f"upload {name} ({len(data):,} B): {how}")
        if not named and not browser_refused:
            st.problems.append(f"upload {name}: accepted without an error")


async def student_run(st: Student, browser, url: str, data_root: Path, tmp: Path, deadline: float,
                      stagger: float) -> None:
    await asyncio.sleep(stagger)
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    await ctx.route("**/*", loopback_only)
    page = await ctx.new_page()
    page.on("domcontentloaded", lambda p: st.loads.append(p.url))
    try:
        await page.goto(f"{url}/?lang={st.lang}", wait_until="domcontentloaded", timeout=180_000)
        await open_lesson(st, page, 1, "", 120)
        if st.role == "hostile":
            await hostile(st, page, data_root, tmp)
        elif st.role == "transfer":
            await page.locator('[data-testid="stSidebarNav"] a[href$="/run"]').first.click()
            await page.locator('[data-testid="stMain"] h1').filter(has_text="6. ").first.wait_for(timeout=120_000)
            await settle(page, 120)
            from teachkit.lessons.jobs import LIMITS  # wait at least the job's time limit (and a queue's worth)

            await run_transfer(st, page, max(LIMITS.seconds + 90, deadline - time.monotonic() - 120))
        for n, slug in LESSONS:
            if time.monotonic() > deadline:
                st.notes.append(f"stopped at the deadline before lesson {n}")
                break
            if n == 1 and 1 in st.first_element and st.role == "tourist":
                continue
            await open_lesson(st, page, n, slug, 120)
            if st.role != "hostile":
                errs = await errors_on(page)
                if errs:
                    st.problems.append(f"lesson {n}: {errs[0][:120]}")
            if n == 6 and st.role == "tourist":  # nobody else's job is visible here
                if await page.locator(".st-key-p6_cancel, .st-key-p6_dl_png").count():
                    st.problems.append("lesson 6: another session's job is visible")
            await page.wait_for_timeout(2000)  # reading
        if st.role == "hostile" and time.monotonic() < deadline:
            # start a long transfer (the most steps allowed) and close the tab: the server must
            # cancel it and free its slot
            steps = page.locator('.st-key-p6_steps input[type="range"]').first
            await steps.focus()
            await steps.press("End")
            await rerun_settled(page, 60)
            await page.locator(".st-key-p6_start button").first.click()
            await page.locator(".st-key-p6_cancel button").first.wait_for(timeout=60_000)
            st.abandoned_at = time.time()
            st.notes.append("started a transfer and closed the tab")
    except Exception as err:  # noqa: BLE001 - recorded, the others go on
        st.problems.append(f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
    finally:
        await ctx.close()


async def classroom(url: str, students: list[Student], data_root: Path, tmp: Path, minutes: float) -> None:
    from playwright.async_api import async_playwright

    deadline = time.monotonic() + minutes * 60
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                "--disable-dev-shm-usage"])
        try:
            await asyncio.wait_for(
                asyncio.gather(*(student_run(s, browser, url, data_root, tmp, deadline, 1.0 * i)
                                 for i, s in enumerate(students))),
                timeout=minutes * 60 + 300)
        finally:
            await browser.close()


async def teacher_first_visit(url: str, timeout_s: float) -> float:
    """The teacher opens the app before class: lesson 1 until it has drawn (warm-up, atlas)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        ctx = await browser.new_context()
        await ctx.route("**/*", loopback_only)
        page = await ctx.new_page()
        t0 = time.perf_counter()
        await page.goto(url, wait_until="domcontentloaded")
        await page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=timeout_s * 1000)
        await page.locator('[data-testid="stMain"] [data-testid="stImage"] img').first.wait_for(
            timeout=timeout_s * 1000)
        await settle(page, timeout_s)
        seconds = time.perf_counter() - t0
        await browser.close()
        return seconds


def load_run(args) -> dict:
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    tmp = Path(tempfile.mkdtemp(prefix="teachkit_load_"))
    data_root = make_data_root(tmp)
    proc, url, log = start_server(tmp, data_root, args.post_script_gc)
    sampler = RssSampler(proc.pid, log)
    sampler.start()
    abandoned = cancelled_after = None
    t_start = time.time()
    try:
        teacher_s = asyncio.run(teacher_first_visit(url, 600))
        rss_ready = proc_kib(proc.pid, "VmRSS")
        n = max(4, args.students)
        students = [Student("transfer-1", "transfer", "en", None), Student("transfer-2", "transfer", "zh", "astronaut"),
                    Student("hostile", "hostile", "en")]
        students += [Student(f"tourist-{i}", "tourist", "zh" if i % 2 else "en") for i in range(1, n - 2)]
        t0 = time.time()
        cpu0 = (cpu_seconds(proc.pid), cpu_seconds())
        asyncio.run(classroom(url, students, data_root, tmp, args.minutes))
        wall = time.time() - t0
        cpu_server, cpu_machine = cpu_seconds(proc.pid) - cpu0[0], cpu_seconds() - cpu0[1]
        abandoned = next((s.abandoned_at for s in students if s.abandoned_at), None)
        cancelled_after = None
        if abandoned:  # wait (bounded) for the server to cancel the job of the closed tab
            while time.time() - abandoned < 120 and cancelled_after is None:
                later = [t for t in sampler.abandoned_times if t >= abandoned]
                cancelled_after = later[0] - abandoned if later else None
                time.sleep(0.5)
    finally:
        sampler.stop.set()
        peak = proc_kib(proc.pid, "VmHWM") if proc.poll() is None else 0
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = log.read_text(errors="replace")
    if args.keep:
        print(f"(server log and files kept in {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    firsts = {n: [s.first_element[n] for s in students if n in s.first_element] for n, _ in LESSONS}
    drawn = {n: [s.drawn[n] for s in students if n in s.drawn] for n, _ in LESSONS}
    return {
        "cpu": cpu_name(), "cores": os.cpu_count(), "students": len(students), "wall_s": wall,
        "cpu_server_s": cpu_server, "cpu_machine_s": cpu_machine,
        "teacher_first_visit_s": teacher_s, "rss_ready_mib": rss_ready / 1024,
        "rss_peak_mib": max([peak] + [k for _, k in sampler.samples]) / 1024,
        "rss_samples": len(sampler.samples),
        "first_element": {n: v for n, v in firsts.items()}, "drawn": {n: v for n, v in drawn.items()},
        "students_detail": [{"name": s.name, "role": s.role, "lang": s.lang, "job": s.job, "problems": s.problems,
                             "notes": s.notes, "first": s.first_element, "drawn": s.drawn, "loads": s.loads} for s in students],
        "tracebacks_in_log": server_log.count("Traceback"), "started": t_start,
        "abandoned_job_cancelled_after_s": cancelled_after if abandoned else "not tried",
        "abandoned_jobs_cancelled": len(sampler.abandoned_times),
    }


def abandoned_text(value) -> str:
    if value == "not tried":
        return "not tried (the run reached its deadline first)"
    if value is None:
        return "NOT cancelled within 120 s"
    return f"cancelled by the server {value:.0f} s after the tab closed (the heartbeat limit is 20 s by default)"


def report(res: dict) -> str:
    def stats(values):
        return (f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "–")

    lines = [
        f"CPU: {res['cpu']}, {res['cores']} cores (shared with other work while it ran); "
        f"{res['students']} students in one headless Chromium, one server on 127.0.0.1.",
        f"Teacher's first visit of lesson 1 (before class): {res['teacher_first_visit_s']:.1f} s; "
        f"server RSS then {res['rss_ready_mib']:.0f} MiB.",
        "",
        "| lesson | pages | first element, s: median / worst | drawn, s: median / worst |",
        "|---|---|---|---|",
    ]
    allf = []
    for n, _ in LESSONS:
        f, d = res["first_element"].get(n, []), res["drawn"].get(n, [])
        allf += f
        lines.append(f"| {n} | {len(f)} | {stats(f)} | {stats(d)} |")
    lines.append(f"| all | {len(allf)} | {stats(allf)} | |")
    jobs = [s["job"] for s in res["students_detail"] if s["job"]]
    finished = sum(1 for j in jobs if j["finished"])
    lines += [
        "",
        f"Server peak RSS: {res['rss_peak_mib']:.0f} MiB (VmHWM and {res['rss_samples']} samples of VmRSS).",
        f"Lesson-6 transfers: {finished} of {len(jobs)} finished: "
        + "; ".join(f"{j['seconds']:.0f} s, result {j.get('size') or '?'}" for j in jobs) + ".",
        f"Whole run: {res['wall_s']:.0f} s; tracebacks in the server log: {res['tracebacks_in_log']}.",
        f"CPU during the class: the server {res['cpu_server_s']:.0f} s of the machine's {res['cpu_machine_s']:.0f} busy "
        f"CPU-seconds ({100 * res['cpu_server_s'] / max(res['cpu_machine_s'], 1e-9):.0f} %; {res['cores']} cores x "
        f"{res['wall_s']:.0f} s = {res['cores'] * res['wall_s']:.0f}); the rest went to the browsers, this script and "
        "anything else on the machine.",
        f"A transfer whose tab was closed: {abandoned_text(res['abandoned_job_cancelled_after_s'])}; "
        f"transfers of closed tabs cancelled in the whole run: {res['abandoned_jobs_cancelled']}.",
        "",
    ]
    well_behaved = [s for s in res["students_detail"] if s["role"] != "hostile"]
    shown = [p for s in well_behaved for p in s["problems"] if not p.endswith(SLOW)]
    worst = max(allf) if allf else float("nan")
    lines += [
        "Targets (issue 11, 2-core CPU): every page's first element <= 10 s under this load: "
        f"{'met' if worst <= 10 else 'NOT met'} (worst {worst:.1f} s); server RSS < 4 GiB: "
        f"{'met' if res['rss_peak_mib'] < 4096 else 'NOT met'}; no error, wrong language or other student's "
        f"state shown to a well-behaved session: {'met' if not shown else 'NOT met'}.",
        "",
    ]
    for s in res["students_detail"]:
        status = "ok" if not s["problems"] else "PROBLEMS: " + " | ".join(s["problems"])
        extra = ("; " + "; ".join(s["notes"])) if s["notes"] else ""
        lines.append(f"- {s['name']} ({s['role']}, {s['lang']}): {status}{extra}")
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=10, help="browser sessions at once (>= 4; default 10)")
    ap.add_argument("--minutes", type=float, default=10.0, help="deadline of the classroom part (default 10)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, data root)")
    ap.add_argument("--post-script-gc", action="store_true",
                    help="start the server with Streamlit's full garbage collection after every run (its default; "
                         "the app switches it off): the figures before that change")
    ap.add_argument("--job-peak", action="store_true", help="measure the largest allowed lesson-6 job instead")
    ap.add_argument("--extra-steps", type=int, default=5, help="--job-peak: steps beyond a full L-BFGS history")
    args = ap.parse_args(argv)
    if args.job_peak:
        return job_peak(args)
    res = load_run(args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    print(report(res))


if __name__ == "__main__":
    main()
