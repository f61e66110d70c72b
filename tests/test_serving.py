"""Served to a whole class: hostile input and fair sharing (lessons/jobs.py, lessons/uploads.py).

One test per hostile case: lesson 1's folder box (off without a data root; outside the root,
a symlink out of it, ``/x`` vs ``/x/``; bounded builders), lesson 6's jobs (a second job in one
session, the queue and its places, an abandoned session, the time limit, the caps), uploads
(pixels refused before decoding -- a real decompression bomb --, 16-bit/float grey decoded without
whole-picture float copies, decoded once per session, capped style uploads, upload storage bounded per
tab, per browser and for the server, file names never read as Markdown), one transfer per client, failed jobs
worded without the exception's text, and the limits of the served app (the start command passes
them, the app checks them, a real browser meets them).

The job tests replace teachkit's transfer by a stand-in that only counts steps, so they test the
sharing rules, not the engine, in well under a second each.  Three tests talk to a real server through
Streamlit's own protocol (tests/local_server.py: Tab): PUTs past the upload bounds, one browser's tabs
against the upload space (the refusal on the page, a closed tab freed in seconds), and two tabs' transfers.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import tomllib
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from local_server import launch_chromium, loopback_only, need_browser, serve_app, start_app

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the lessons package sits next to app.py
    sys.path.insert(0, str(ROOT))

from teachkit.lessons import jobs, uploads  # noqa: E402
from teachkit.messages import catalogue  # noqa: E402
from teachkit.transfer import TransferConfig  # noqa: E402

APP = str(ROOT / "app.py")
EN = catalogue("en")


def _png(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    data = bytearray(_png(8, 8))
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    struct.pack_into(">II", data, ihdr, width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4: ihdr + 13])) & 0xFFFFFFFF
    struct.pack_into(">I", data, ihdr + 13, crc)
    return bytes(data)


# ---- lesson 1's folder box ---------------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """root/cats (a folder of images), root/notes.txt, root/escape -> ../secret (a link out of root)."""
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "notes.txt").write_text("not a folder")
    secret = tmp_path / "secret"
    secret.mkdir()
    (root / "escape").symlink_to(secret, target_is_directory=True)
    monkeypatch.setattr(jobs, "DATA_ROOT", root.resolve())
    return root


def test_folder_box_is_off_without_a_data_root(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "DATA_ROOT", None)
    assert not jobs.folder_box_enabled()
    assert jobs.dataset_spec("", "sample") == "sample"
    for text in ("/", str(tmp_path), "sample"):
        with pytest.raises(jobs.FolderRefused):
            jobs.dataset_spec(text, "sample")
    # and it is read once, at start, from TEACHKIT_DATA_ROOT (a missing folder leaves it off)
    monkeypatch.setenv("TEACHKIT_DATA_ROOT", str(tmp_path))
    assert jobs._data_root_from_env() == tmp_path.resolve()
    monkeypatch.setenv("TEACHKIT_DATA_ROOT", str(tmp_path / "gone"))
    assert jobs._data_root_from_env() is None


def test_outside_the_root_and_symlink_escape_get_one_neutral_message(data_root, tmp_path):
    hostile = ["/", "/etc", "/etc/passwd", str(tmp_path / "secret"), "../secret", "cats/../../secret",
               "escape", str(data_root / "escape"), "notes.txt", "no-such-folder", "cats/\0x", "~"]
    messages = set()
    for text in hostile:
        with pytest.raises(jobs.FolderRefused) as err:
            jobs.dataset_spec(text, "sample")
        messages.add(str(err.value))
    assert len(messages) == 1  # nothing tells whether a path exists, is a file, or lies elsewhere
    message = messages.pop()
    assert str(tmp_path) not in message and "secret" not in message and "passwd" not in message


def test_slash_variants_are_one_folder_and_one_builder(data_root, monkeypatch):
    made = []

    class Builder:  # records which datasets would be scanned
        def __init__(self, spec, net, layers):
            made.append(spec)
            self.done = threading.Event()
            self.done.set()

    monkeypatch.setattr(jobs, "AtlasBuilder", Builder)
    monkeypatch.setattr(jobs, "_BUILDERS", type(jobs._BUILDERS)())
    cats = str((data_root / "cats").resolve())
    texts = ["cats", "cats/", "./cats/.", str(data_root / "cats"), str(data_root / "cats") + "/", "cats//"]
    specs = {jobs.dataset_spec(t, "sample") for t in texts}
    assert specs == {cats}
    builders = {id(jobs.atlas_builder(jobs.dataset_spec(t, "sample"), None, ("relu1_1",))) for t in texts}
    assert len(builders) == 1 and made == [cats]


def test_builders_are_bounded_and_least_recently_used_are_freed(monkeypatch):
    class Builder:
        def __init__(self, spec, net, layers):
            self.spec = spec
            self.done = threading.Event()

    monkeypatch.setattr(jobs, "AtlasBuilder", Builder)
    monkeypatch.setattr(jobs, "_BUILDERS", type(jobs._BUILDERS)())
    monkeypatch.setattr(jobs, "MAX_SCANS", 2)
    monkeypatch.setenv("TEACHKIT_ATLAS_DATASET", "sample")
    layers = ("relu1_1",)
    default = jobs.atlas_builder("sample", None, layers)  # pinned: not counted, never freed
    a = jobs.atlas_builder("/data/a", None, layers)
    b = jobs.atlas_builder("/data/b", None, layers)
    with pytest.raises(jobs.BuildersBusy):  # both still scanning: no third scan
        jobs.atlas_builder("/data/c", None, layers)
    a.done.set()
    b.done.set()
    assert jobs.atlas_builder("/data/a", None, layers) is a  # a is now the most recently used
    c = jobs.atlas_builder("/data/c", None, layers)  # frees b, the least recently used finished one
    assert len(jobs._BUILDERS) == 3
    assert jobs.atlas_builder("/data/a", None, layers) is a
    assert jobs.atlas_builder("/data/c", None, layers) is c
    assert jobs.atlas_builder("sample", None, layers) is default
    assert all(k[0] != "/data/b" for k in jobs._BUILDERS)


def test_lesson1_page_refuses_a_path_outside_the_root(tiny_atlas_env, data_root, tmp_path):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert at.text_input(key="p1_folder")  # the box is there: a data root was named
    at.text_input(key="p1_folder").input(str(tmp_path / "secret")).run()
    assert not at.exception
    assert len(at.error) == 1 and str(tmp_path) not in at.error[0].value
    assert at.image  # the page goes on with the default dataset


def test_lesson1_page_has_no_folder_box_without_a_data_root(tiny_atlas_env, monkeypatch):
    monkeypatch.setattr(jobs, "DATA_ROOT", None)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert not [w for w in at.text_input if w.key == "p1_folder"]


# ---- lesson 6's jobs ---------------------------------------------------------------------------


@pytest.fixture
def fake_transfer(monkeypatch):
    """teachkit's engine replaced by a stand-in: its plan has ``config.steps`` steps, and its run takes
    one 'step' every 10 ms until stopped, out of time (``time_limit``, as the engine's) or done."""
    from teachkit import progress, transfer

    class FakeEngine:
        def __init__(self, content, styles, config, *, backbone=None):
            self.config = config
            self.plan = SimpleNamespace(steps=config.steps)

        def run(self, *, callback=None, stop=None, time_limit=None):
            done, t0, steps = 0, time.monotonic(), self.config.steps
            for done in range(1, steps + 1):
                if stop is not None and stop.is_set():
                    return SimpleNamespace(image=None, stopped=True, history=[None] * (done - 1), seconds=0.0,
                                           stop_reason="stopped")
                callback(progress.Progress("transfer", done, steps, {"total": 1.0}))
                time.sleep(0.01)
                if time_limit is not None and time.monotonic() - t0 > time_limit:
                    return SimpleNamespace(image=None, stopped=True, history=[None] * done, seconds=0.0,
                                           stop_reason="time_limit")
            return SimpleNamespace(image=None, stopped=False, history=[None] * done, seconds=0.0, stop_reason=None)

    monkeypatch.setattr(transfer, "Engine", FakeEngine)
    return FakeEngine


def _board(**limits) -> jobs.JobBoard:
    """A board of one slot; its jobs may take (fake) steps until stopped."""
    return jobs.JobBoard(jobs.JobLimits(**{"max_steps": 10**6, **limits}), slots=jobs.ComputeSlots(1))


def _job(board, session: str, steps: int = 100_000) -> jobs.TransferJob:
    return jobs.TransferJob(None, [], TransferConfig(steps=steps), None, session=session, board=board)


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_a_second_job_in_one_session_replaces_the_first(fake_transfer):
    board = _board()
    first = _job(board, "s1").start()
    _until(lambda: first.snapshot()["state"] == "running")
    second = _job(board, "s1").start()
    _until(lambda: not first.alive)
    assert first.snapshot()["reason"] == "replaced" and first.result.stopped
    _until(lambda: second.snapshot()["state"] == "running")  # the slot went to the new job
    other = _job(board, "s2").start()  # another session's job is not touched, it waits
    assert other.snapshot()["place"] == 1 and second.alive
    for job in (second, other):
        job.cancel()
    _until(lambda: not (second.alive or other.alive))
    assert board.counts() == (0, 0)


def test_the_queue_tells_each_student_their_place_and_is_bounded(fake_transfer):
    board = _board(queue=2)
    running = _job(board, "a").start()
    _until(lambda: running.snapshot()["state"] == "running")
    b, c = _job(board, "b").start(), _job(board, "c").start()
    assert (b.snapshot()["place"], c.snapshot()["place"]) == (1, 2)
    d = _job(board, "d").start()  # the queue is full: refused at once, nothing runs
    snap = d.snapshot()
    assert not d.alive and snap["state"] == "failed" and snap["reason"] == "queue_full"
    assert "(2 transfers are waiting)" in jobs.reason_text(snap)  # this board's queue of 2
    b2 = _job(board, "b").start()  # b asks again: the new job takes the old one's place
    _until(lambda: not b.alive)
    assert b.reason == "replaced" and (b2.snapshot()["place"], c.snapshot()["place"]) == (1, 2)
    running.cancel()
    _until(lambda: b2.snapshot()["state"] == "running")
    assert c.snapshot()["place"] == 1
    assert re.search(r"\b1\b", jobs.queue_text(c.snapshot()))
    for job in (b2, c):
        job.cancel()
    _until(lambda: not (b2.alive or c.alive))
    assert board.counts() == (0, 0)


def test_one_address_holds_at_most_its_share_of_the_queue(fake_transfer):
    """A student renewing the cookie (private windows) is a new client each time; the address still caps them."""
    board = _board(queue=8, per_address=2)

    def job(session, address):
        return jobs.TransferJob(None, [], TransferConfig(steps=100_000), None, session=session, board=board,
                                address=address)

    first, second = job("cookie-1", "10.0.0.7").start(), job("cookie-2", "10.0.0.7").start()
    third = job("cookie-3", "10.0.0.7").start()  # a third fresh cookie from the same laptop: refused at once
    snap = third.snapshot()
    assert not third.alive and snap["state"] == "failed" and snap["reason"] == "address_full"
    assert "has 2 transfers" in jobs.reason_text(snap)
    again = job("cookie-2", "10.0.0.7").start()  # the same client replacing its own job is not refused
    _until(lambda: not second.alive)
    assert second.reason == "replaced" and again.snapshot()["reason"] is None
    others = [job("cookie-9", "10.0.0.8").start(), job("cookie-10", "::1").start(), job("cookie-11", "127.0.0.1").start(),
              job("cookie-12", "127.0.0.1").start()]  # another laptop; loopback is exempt
    assert all(o.snapshot()["reason"] is None for o in others)
    first.cancel()
    _until(lambda: not first.alive)
    fourth = job("cookie-4", "10.0.0.7").start()  # a place freed: the laptop may queue again
    assert fourth.snapshot()["reason"] is None
    for j in (again, fourth, *others):
        j.cancel()
    _until(lambda: not any(j.alive for j in (again, fourth, *others)))
    assert board.counts() == (0, 0)


def test_an_abandoned_session_is_cancelled_and_frees_its_slot(fake_transfer):
    board = _board(heartbeat_seconds=1.0)
    gone = _job(board, "gone").start()  # runs, but its page never polls again
    _until(lambda: gone.state == "running")
    waiting = _job(board, "here").start()
    stop_polling = threading.Event()

    def poll():  # the page of 'here' keeps polling (its heartbeat)
        while not stop_polling.is_set():
            waiting.snapshot()
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _until(lambda: not gone.alive, timeout=5)
    assert gone.snapshot()["reason"] == "abandoned"
    _until(lambda: waiting.snapshot()["state"] == "running")  # the freed slot went to the waiting one
    stop_polling.set()
    poller.join()
    # a queued job whose page goes away gives up its place too
    queued = _job(board, "left-the-queue").start()
    assert board.place(queued) == 1
    _until(lambda: not waiting.alive and not queued.alive, timeout=5)
    assert queued.reason == "abandoned" and board.counts() == (0, 0)


def test_a_job_stops_at_the_time_limit(fake_transfer):
    board = _board(seconds=0.3)
    job = _job(board, "s").start()
    _until(lambda: not job.alive, timeout=5)
    snap = job.snapshot()
    assert snap["reason"] == "time_limit" and job.result.stopped and 0 < snap["step"] < 100_000
    assert jobs.reason_text(snap) == EN["ui.job_time_limit"].format(secs=0.3)  # the job's own limit
    assert board.counts() == (0, 0)


# ---- the compute slots: a class of 60 (issue 17: demos waited ~3 min behind transfers) ------------


def _granted(slots, ticket) -> bool:
    return slots.wait(ticket, 0)


def test_slots_are_served_in_order_and_long_work_never_takes_the_last_one():
    slots = jobs.ComputeSlots(2)
    assert slots.long_slots == 1
    t1 = slots.ticket(long=True)  # a lesson-6 transfer
    assert _granted(slots, t1)
    t2 = slots.ticket(long=True)  # a second transfer (or a folder scan): must not take the last slot
    demo = slots.ticket()  # a demo pressed after it
    assert not _granted(slots, t2)
    assert slots.place(demo) == (1, 2)  # the blocked transfer is not ahead of the demo
    assert _granted(slots, demo) and slots.place(demo) is None
    later = slots.ticket()
    assert not _granted(slots, later) and slots.place(later) == (1, 2)  # both slots held: it waits, first
    slots.release(demo)
    assert _granted(slots, later)  # the demo's slot went to the next demo, not to the waiting transfer
    slots.release(later)
    assert not _granted(slots, t2)  # still one long job at a time
    slots.release(t1)
    assert _granted(slots, t2)
    slots.release(t2)
    assert slots.counts() == (0, 0, 0)


def test_background_work_goes_after_every_visitor_and_places_follow_the_queue():
    slots = jobs.ComputeSlots(1)
    holder = slots.ticket()
    assert _granted(slots, holder)
    warm = slots.ticket(long=True, background=True)  # the app's warm-up, first in time
    a, b = slots.ticket(), slots.ticket()
    assert (slots.place(a), slots.place(b), slots.place(warm)) == ((1, 2), (2, 2), (3, 2))
    slots.withdraw(a)  # a student left the page while waiting
    assert slots.place(b) == (1, 1)
    slots.release(holder)
    assert not _granted(slots, warm) and _granted(slots, b)
    slots.release(b)
    assert _granted(slots, warm)
    slots.release(warm)
    with pytest.raises(ValueError):
        slots.release(warm)  # a slot is given back once


def test_a_waiting_demo_is_told_its_place_and_gives_it_up_when_its_page_goes(monkeypatch):
    slots = jobs.ComputeSlots(2)
    monkeypatch.setattr(jobs, "_SLOTS", slots)
    held = [slots.ticket(long=True), slots.ticket()]
    assert all(_granted(slots, t) for t in held)
    ahead = slots.ticket()
    seen, inside, left = [], threading.Event(), threading.Event()

    def demo():
        with jobs.compute_slot(on_wait=lambda place, n, secs: seen.append((place, n)), every=0.01) as got:
            assert got
            inside.set()
        left.set()

    worker = threading.Thread(target=demo, daemon=True)
    worker.start()
    _until(lambda: (2, 2) in seen)  # number 2 of 2
    slots.withdraw(ahead)
    _until(lambda: seen[-1] == (1, 1))  # the page's line follows the queue
    assert not inside.is_set()
    slots.release(held[1])
    _until(inside.is_set)
    _until(left.is_set)
    assert slots.counts() == (1, 1, 0)  # only the transfer's slot is held: the demo gave its own back

    class PageLeft(Exception):  # what Streamlit raises in a page's thread when its visitor moves on
        pass

    blocker = slots.ticket()
    assert _granted(slots, blocker)

    def leaves(place, n, secs):
        raise PageLeft

    with pytest.raises(PageLeft):
        with jobs.compute_slot(on_wait=leaves):
            pass
    assert slots.counts() == (2, 1, 0)  # its place was given up: nobody waits for a page that is gone
    slots.release(blocker)
    slots.release(held[0])


def test_a_demo_with_others_waiting_behind_it_runs_shorter(monkeypatch):
    """demo_limit = seconds x free / (free + waiting), at least DEMO_MIN_SECONDS, at most seconds."""
    slots = jobs.ComputeSlots(2)
    monkeypatch.setattr(jobs, "_SLOTS", slots)
    monkeypatch.setattr(jobs, "DEMO_MIN_SECONDS", 6.0)
    assert jobs.demo_limit(25.0) == 25.0 and jobs.demo_limit(None) is None  # outside a slot: as configured
    with jobs.compute_slot():
        assert jobs.demo_limit(25.0) == 25.0  # nobody waiting: the whole demo
    transfer, other = slots.ticket(long=True), slots.ticket()
    assert _granted(slots, transfer) and _granted(slots, other)
    got, go_on = {}, threading.Event()

    def demo():
        with jobs.compute_slot():
            got.update({s: jobs.demo_limit(s) for s in (25.0, 10.0, 4.0)})
            go_on.wait(10)

    worker = threading.Thread(target=demo, daemon=True)
    worker.start()
    _until(lambda: slots.counts()[2] == 1)
    behind = [slots.ticket(), slots.ticket(), slots.ticket(long=True)]  # two demos and a transfer after it
    slots.release(other)
    _until(lambda: len(got) == 3)
    # one slot free for demos (the other holds the transfer), two demos behind: 25 x 1/3
    assert got[25.0] == pytest.approx(25.0 / 3)
    assert got[10.0] == 6.0  # never below the floor ...
    assert got[4.0] == 4.0  # ... nor above what was asked
    go_on.set()
    worker.join(10)
    for t in behind:
        slots.withdraw(t)
    slots.release(transfer)
    assert slots.counts() == (0, 0, 0)


def test_transfers_hold_one_slot_so_a_demo_always_finds_one(fake_transfer):
    board = jobs.JobBoard(jobs.JobLimits(max_steps=10**6), slots=jobs.ComputeSlots(2))
    first, second = _job(board, "a").start(), _job(board, "b").start()
    _until(lambda: first.snapshot()["state"] == "running")
    assert second.snapshot()["state"] == "queued" and second.snapshot()["place"] == 1
    assert board.slots.acquire(blocking=False)  # a demo gets the other slot at once
    board.slots.release()
    first.cancel()
    _until(lambda: second.snapshot()["state"] == "running")
    second.cancel()
    _until(lambda: not (first.alive or second.alive))
    assert board.counts() == (0, 0) and board.slots.counts() == (0, 0, 0)


def test_a_jobs_total_is_the_engines_plan_with_scale_steps(net, one_thread):
    """scale_steps=(2, 1) means 3 steps whatever ``steps`` says: the page's "step n of N" and the classroom
    cap count the steps the engine really takes (the sum over its scales)."""
    from teachkit.samples import sample_content, sample_style

    config = TransferConfig(size=48, scales=(32, 48), scale_steps=(2, 1), steps=60, preview_every=0,
                            style_layers=("relu1_1", "relu2_1"), dtype="float32")
    board = jobs.JobBoard(jobs.JobLimits(max_steps=3), slots=jobs.ComputeSlots(1))
    job = jobs.TransferJob(sample_content("rocket", 48), [sample_style("waves", 48)], config, net,
                           session="s", board=board)
    assert job.total == 3  # before the engine has planned it (queued)
    job.start()
    _until(lambda: not job.alive, timeout=60)
    snap = job.snapshot()
    assert snap["state"] == "done" and (snap["step"], snap["total"]) == (3, 3)
    assert job.result.plan.steps == 3 and [s.steps for s in job.result.plan.scales] == [2, 1]
    over = dataclasses.replace(config, scale_steps=(3, 1))  # 4 steps > the cap of 3 (``steps`` = 60 does not count)
    assert jobs.check_transfer(over, 1, board.limits) != [] and jobs.check_transfer(config, 1, board.limits) == []


def test_caps_of_one_job():
    lim = jobs.JobLimits()
    at_limits = TransferConfig(size=lim.max_size, steps=lim.max_steps, style_scale=lim.max_style_scale,
                               history_size=lim.max_history)
    assert jobs.check_transfer(at_limits, lim.max_styles, lim) == []
    over = TransferConfig(size=768, steps=1000, style_scale=4.0, history_size=500)
    problems = jobs.check_transfer(over, lim.max_styles + 1, lim)
    assert len(problems) == 5
    for value in ("768", "1000", "4.0", "500", str(lim.max_styles + 1)):
        assert any(value in p for p in problems), value
    # no size (= the content's full size) is over the cap too; Adam keeps no L-BFGS memory
    assert len(jobs.check_transfer(TransferConfig(size=None), 1, lim)) == 1
    assert jobs.check_transfer(TransferConfig(optimizer="adam", history_size=500, size=64), 1, lim) == []
    assert lim.work_side == 1024  # the largest side any input is used at
    # whatever the page allowed, a job beyond the limits does not start
    job = jobs.TransferJob(None, [], over, None, session="s", board=jobs.JobBoard(lim)).start()
    snap = job.snapshot()
    assert not job.alive and snap["reason"] == "over_limits" and "768" in snap["error"]


# ---- uploads -----------------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    """A real decompression bomb: a valid 1-bit grey PNG of ``width`` x ``height`` white pixels, every
    row really there in its zlib stream (a few KB for 30 megapixels), written chunk by chunk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\0" + b"\xff" * ((width + 7) // 8)  # filter byte 0, then the packed bits
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey, deflate, no filter/interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height, 9)) + \
        chunk(b"IEND", b"")


def test_the_bomb_is_a_real_one():
    """The test file is what an attacker sends: small, valid, and every pixel of it decodable."""
    from PIL import Image

    bomb = _png_bomb(6000, 5000)
    assert len(bomb) < 10_000
    idat = bomb[bomb.index(b"IDAT") + 4: bomb.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 5000 * (1 + 750)  # all 5000 rows of 750 bytes, each behind its filter byte
    with Image.open(io.BytesIO(bomb)) as img:
        assert img.size == (6000, 5000) and img.mode == "1"
        img.verify()  # chunk CRCs and structure are sound


def test_huge_pixel_upload_is_refused_before_decoding(monkeypatch):
    import teachkit.images as images
    from teachkit.images import ImageError

    decoded = []
    monkeypatch.setattr(images, "load_image", lambda *a, **k: decoded.append(1))
    for bomb in (_png_bomb(6000, 5000), _png_claiming(6000, 5000)):  # a real bomb, and a header that lies
        with pytest.raises(ImageError) as err:
            uploads.decode_upload(bomb, "bomb.png")
        assert "bomb.png" in str(err.value) and "30,000,000" in str(err.value)
    assert decoded == []  # refused from the header, nothing was decoded
    assert uploads.UPLOAD_MAX_PIXELS <= 12_000_000  # a decode then peaks at <= 138 MB (benchmarks/upload_decode.py)


def test_wide_grey_modes_are_converted_without_whole_picture_float_copies():
    """A 16-bit grey PNG (and 32-bit integer or float grey) used to become three float64 copies of
    the whole picture (8 bytes a pixel each: a 12-MP upload took 310 MB).  numpy's allocations are
    traced by tracemalloc: converting 4 MP must stay far below one float64 copy (32 MB), with the
    same pixels as the formula 0..65535 -> 0..255."""
    import tracemalloc

    import numpy as np
    from PIL import Image

    from teachkit.images import load_image

    ramp = (np.arange(2000 * 2000, dtype=np.uint32) * 65535 // (2000 * 2000 - 1)).astype(np.uint16).reshape(2000, 2000)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    data = buf.getvalue()
    tracemalloc.start()
    try:
        out = load_image(data, max_pixels=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB traced"  # one float64 copy would be 32 MB
    expected = np.rint(ramp.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    got = np.asarray(out)
    assert (got[..., 0] == expected).all() and (got[..., 2] == expected).all()


def test_a_large_upload_is_kept_no_larger_than_ever_used():
    img = uploads.decode_upload(_png(2000, 1000), "wide.png")
    assert img.size == (jobs.LIMITS.work_side, jobs.LIMITS.work_side // 2)
    small = uploads.decode_upload(_png(300, 200), "small.png")
    assert small.size == (300, 200)


def _upload_script():
    import streamlit as st

    from teachkit.lessons import uploads

    img = uploads.read_upload(st.file_uploader("photo", key="u"), "photo")
    st.write("none" if img is None else f"{img.size[0]}x{img.size[1]}")


def test_an_upload_is_decoded_once_per_session(monkeypatch):
    calls = []
    real = uploads.decode_upload

    def counting(data, name):
        calls.append(name)
        return real(data, name)

    monkeypatch.setattr(uploads, "decode_upload", counting)
    at = AppTest.from_function(_upload_script, default_timeout=30)
    at.run()
    at.file_uploader(key="u").set_value(("a.png", _png(64, 48), "image/png")).run()
    for _ in range(3):
        at.run()
    assert not at.exception and calls == ["a.png"]
    assert at.markdown[-1].value == "64x48"
    # a corrupt file: decoded (and refused) once, the error is shown on every rerun
    at.file_uploader(key="u").set_value(("bad.png", b"\x89PNG not really", "image/png")).run()
    at.run()
    assert calls == ["a.png", "bad.png"] and len(at.error) == 1
    assert uploads.markdown_literal("bad.png") in at.error[0].value  # named (as Markdown that shows "bad.png")
    # another session decodes its own copy
    other = AppTest.from_function(_upload_script, default_timeout=30)
    other.run()
    other.file_uploader(key="u").set_value(("a.png", _png(64, 48), "image/png")).run()
    assert calls == ["a.png", "bad.png", "a.png"]


def _styles_script():
    import streamlit as st

    from teachkit.lessons import uploads

    styles = uploads.style_uploader("styles", "style", "s")
    st.write(f"{len(styles)} styles")


def test_style_uploads_are_capped():
    at = AppTest.from_function(_styles_script, default_timeout=30)
    at.run()
    files = [(f"s{i}.png", _png(40 + i, 40, (i * 40, 0, 0)), "image/png") for i in range(uploads.MAX_STYLE_UPLOADS + 2)]
    at.file_uploader(key="s").set_value(files).run()
    assert not at.exception
    assert at.markdown[-1].value == f"{uploads.MAX_STYLE_UPLOADS} styles"
    assert len(at.warning) == 1 and str(uploads.MAX_STYLE_UPLOADS) in at.warning[0].value


# ---- the limits of the served app --------------------------------------------------------------


def _limits_script():
    import streamlit as st

    from teachkit.lessons import uploads

    st.write("allowed" if uploads.check_served_limits() else "refused")
    uploads.uploader("photo", "u")


def test_a_server_limit_above_the_apps_switches_uploads_off():
    from streamlit import config

    old = config.get_option("server.maxUploadSize")
    try:
        config.set_option("server.maxUploadSize", 200)  # what `streamlit run` gives outside the repo root
        at = AppTest.from_function(_limits_script, default_timeout=30)
        at.run()
        assert at.markdown[0].value == "refused"
        assert not at.file_uploader and "switched off" in at.caption[0].value
        config.set_option("server.maxUploadSize", uploads.UPLOAD_MAX_MB)
        at = AppTest.from_function(_limits_script, default_timeout=30)
        at.run()
        assert at.markdown[0].value == "allowed" and len(at.file_uploader) == 1
        assert config.get_option("client.showErrorDetails") in ("none", "type")  # no tracebacks for visitors
    finally:
        config.set_option("server.maxUploadSize", old)


def _light_reruns_script():
    import streamlit as st

    from teachkit.lessons import resources

    resources.light_reruns()
    st.write("ran")


def test_no_full_garbage_collection_after_every_run_unless_the_teacher_asks():
    """Streamlit's default gc.collect() after every run is switched off by the app; a flag that asks
    for it explicitly is obeyed."""
    from streamlit import config
    from streamlit.config_option import ConfigOption

    old, where = config.get_option("runner.postScriptGC"), config.get_where_defined("runner.postScriptGC")
    try:
        config.set_option("runner.postScriptGC", True, where_defined=ConfigOption.DEFAULT_DEFINITION)
        AppTest.from_function(_light_reruns_script, default_timeout=30).run()
        assert config.get_option("runner.postScriptGC") is False
        config.set_option("runner.postScriptGC", True, where_defined=config._DEFINED_BY_FLAG)
        AppTest.from_function(_light_reruns_script, default_timeout=30).run()
        assert config.get_option("runner.postScriptGC") is True
    finally:
        config.set_option("runner.postScriptGC", old, where_defined=where)


def _make_run_flags() -> list[str]:
    """The `streamlit run` options of `make run`: its `teachkit app` command line, read from the Makefile
    itself, turned into flags by teachkit.serve (the one place that holds the served settings)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    from teachkit.cli import build_parser
    from teachkit.serve import streamlit_flags

    out = subprocess.run(["make", "-s", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = " ".join(out.replace("\\\n", " ").split("\n"))
    args = build_parser().parse_args(["app", *line.split("teachkit app", 1)[1].split()])
    return streamlit_flags(args.upload_mb, local=True)


def test_the_start_command_passes_the_limits():
    flags = _make_run_flags()
    assert flags[flags.index("--server.maxUploadSize") + 1] == str(uploads.UPLOAD_MAX_MB)
    assert flags[flags.index("--client.showErrorDetails") + 1] == "none"
    # and the repository's config file agrees (it is read when Streamlit starts in the repo root)
    conf = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert conf["server"]["maxUploadSize"] <= uploads.UPLOAD_MAX_MB
    assert conf["client"]["showErrorDetails"] == "none"


# ---- in a real browser: the limits hold however the server was started ---------------------------


def test_served_limits_in_a_browser(tmp_path, classroom, classroom_server):
    """Started with `make run`'s options outside the repo root (the shared classroom server), the server
    refuses an 11 MB upload (the browser does, and the server does for a request that skips the browser);
    started with a larger limit, the app switches its uploads off."""
    need_browser()
    from playwright.sync_api import sync_playwright

    from teachkit.serve import streamlit_flags

    assert classroom_server.flags == _make_run_flags() == streamlit_flags(uploads.UPLOAD_MAX_MB, local=True)
    env = dict(os.environ, **classroom.env)
    big = tmp_path / "big.png"
    big.write_bytes(_png(64, 64) + b"\0" * (uploads.UPLOAD_MAX_MB * 1024 * 1024 + 1024))
    small = tmp_path / "small.png"
    small.write_bytes(_png(64, 48))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bare = None
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", loopback_only)
            page = context.new_page()
            sent = []
            page.on("request", lambda r: sent.append(r) if "/_stcore/upload_file/" in r.url else None)
            page.goto(f"{classroom_server.url}/run", wait_until="domcontentloaded")
            inputs = page.locator('[data-testid="stFileUploader"] input[type="file"]')
            inputs.first.wait_for(state="attached", timeout=90_000)
            inputs.first.set_input_files(str(big))  # the browser refuses it (per-widget limit)
            page.wait_for_timeout(1500)
            assert not [r for r in sent if r.method == "PUT"], "the browser sent the 11 MB file"
            with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url and r.method == "PUT",
                                     timeout=30_000) as request:
                inputs.first.set_input_files(str(small))  # a good one goes through
            put = request.value
            # the same request with 11 MB, from the same browser (its cookies and XSRF header): 413
            headers = {k: v for k, v in put.headers.items() if k.lower() in ("x-xsrftoken", "cookie")}
            resp = page.request.put(put.url, headers=headers, multipart={
                "file": {"name": "big.png", "mimeType": "image/png", "buffer": big.read_bytes()}})
            assert resp.status == 413, resp.status
            # a real decompression bomb (4 KB, 30 megapixels): one short error naming it, from its header
            bomb = tmp_path / "bomb.png"
            bomb.write_bytes(_png_bomb(6000, 5000))
            inputs.first.set_input_files(str(bomb))
            page.locator('[data-testid="stAlertContentError"]').filter(has_text="bomb.png").first.wait_for(
                timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            context.close()

            # A server told to take more (a flag, STREAMLIT_SERVER_MAX_UPLOAD_SIZE or a global config):
            bare = start_app(["--server.maxUploadSize", "200"], cwd=elsewhere, env=env, log=tmp_path / "bare.log")
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", loopback_only)
            page = context.new_page()
            page.goto(f"{bare.url}/run", wait_until="domcontentloaded")
            page.get_by_text("switched off").first.wait_for(timeout=90_000)
            assert page.locator('[data-testid="stFileUploader"]').count() == 0
            browser.close()
    finally:
        if bare is not None:
            bare.stop()


# ---- upload storage, one client's jobs, failure texts, file names (issue 17) ---------------------------


def _upload_manager():
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    return MemoryUploadedFileManager("/_stcore/upload_file")


def _rec(file_id: str, size: int):
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    return UploadedFileRec(file_id=file_id, name=f"{file_id}.png", type="image/png", data=b"x" * size)


def _held(manager) -> tuple[int, int]:
    """(files, bytes) in Streamlit's upload storage, counted from its own records."""
    files = [f for per_session in manager.file_storage.values() for f in per_session.values()]
    return len(files), sum(len(f.data) for f in files)


def test_upload_storage_is_bounded_per_session_per_client_and_for_the_server(monkeypatch):
    """A file past a bound is kept as an empty placeholder (the upload "succeeds", so the page, not
    Streamlit's "AxiosError ... 413", says why, in the student's language); only a session that holds
    3 x its files already is refused at the HTTP level."""
    from starlette.exceptions import HTTPException

    for name, value in (("SESSION_FILES", 3), ("SESSION_MB", 2), ("CLIENT_MB", 2), ("SERVER_MB", 4)):
        monkeypatch.setattr(uploads, name, value)
    mgr = _upload_manager()
    mgr.add_file = uploads.bounded_add_file(  # what install_upload_bounds does, with a made-up client of each session
        mgr.add_file, mgr.file_storage, session_files=3, session_bytes=2 * 2**20, client_bytes=2 * 2**20,
        server_bytes=4 * 2**20, client_of=lambda sid: "browser:one" if sid.startswith("tab") else None)
    monkeypatch.setattr(uploads, "session_id", lambda: "a")
    mib = 2**20
    kept, why = [], {}
    for i in range(9):  # one session, made-up ids, 0.6 MiB each: 3 fit by bytes and by the files cap
        mgr.add_file("a", _rec(f"a{i}", int(0.6 * mib)))
        kept.append(len(mgr.file_storage["a"][f"a{i}"].data) > 0)
        why[i] = uploads.refusal(SimpleNamespace(file_id=f"a{i}"))
    assert kept == [True] * 3 + [False] * 6 and all(why[i] is None for i in range(3))
    assert {why[i].id for i in range(3, 9)} == {"serving.upload_session_files"}
    assert why[3].params == {"held": 3, "limit": 3} and "3" in why[3].text("zh")
    with pytest.raises(HTTPException) as refused:  # 9 records (3 x the files cap): the door closes
        mgr.add_file("a", _rec("a9", 10))
    assert refused.value.status_code == 413
    assert _held(mgr) == (9, 3 * int(0.6 * mib))  # placeholders take no bytes
    for i in range(2, 9):
        mgr.remove_file("a", f"a{i}")  # the student removes the refused files and one more (x)
    mgr.add_file("a", _rec("big", int(0.9 * mib)))  # 1.2 + 0.9 MiB: over the session's 2 MiB
    assert uploads.refusal(SimpleNamespace(file_id="big")).id == "serving.upload_session_mb"
    mgr.add_file("a", _rec("a1", int(0.1 * mib)))  # the same id again replaces (counted instead, not on top)
    assert mgr.file_storage["a"]["a1"].data and uploads.refusal(SimpleNamespace(file_id="a1")) is None
    # two tabs of one browser hold 2 MiB together; another student's tab is another client
    mgr.add_file("tab1", _rec("f", int(1.5 * mib)))
    mgr.add_file("tab2", _rec("g", int(0.9 * mib)))
    monkeypatch.setattr(uploads, "session_id", lambda: "tab2")
    refused = uploads.refusal(SimpleNamespace(file_id="g"))
    assert refused.id == "serving.upload_client_mb" and refused.params["limit"] == 2
    assert abs(refused.params["mb"] - 2.4) < 0.01 and not mgr.file_storage["tab2"]["g"].data
    mgr.add_file("s1", _rec("f", int(0.9 * mib)))  # another student: 0.7 + 1.5 + 0.9 MiB held
    mgr.add_file("s2", _rec("f", mib))  # 4.1 MiB: over the server's 4 MiB
    monkeypatch.setattr(uploads, "session_id", lambda: "s2")
    assert uploads.refusal(SimpleNamespace(file_id="f")).id == "serving.upload_server_full"
    assert _held(mgr)[1] <= 4 * mib
    mgr.remove_session_files("tab1")  # a session that ends gives its bytes back
    mgr.add_file("s2", _rec("f", mib))
    assert uploads.refusal(SimpleNamespace(file_id="f")) is None and mgr.file_storage["s2"]["f"].data


def test_without_a_server_there_is_nothing_to_bound():
    from streamlit.runtime import Runtime

    assert not Runtime.exists()
    assert uploads.install_upload_bounds() is False


def test_session_connected_asks_a_real_runtime():
    """With a Streamlit runtime, ``_session_connected`` answers True/False from it (a changed API
    raises here instead of leaving only the heartbeat); without one it says it cannot tell."""
    from streamlit.runtime import Runtime, RuntimeConfig
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    assert jobs._session_connected("nobody") is None
    Runtime(RuntimeConfig(script_path=APP, media_file_storage=MemoryMediaFileStorage("/media"),
                          uploaded_file_manager=_upload_manager()))
    try:
        assert jobs._session_connected("nobody") is False
        assert uploads.install_upload_bounds() is True  # the running server's upload storage gets its bounds
        assert Runtime.instance().uploaded_file_mgr.add_file.teachkit_bounded
    finally:
        Runtime._instance = None


def _xsrf_cookie(token: bytes) -> str:
    """Streamlit's XSRF cookie for ``token``, masked afresh as on every page load: 2|mask|masked|time,
    a 4-byte mask repeated over the token (what the server sets: tests/test_serving.py's real-server
    test below sees it from two tabs)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(token))
    return "|".join(["2", mask.hex(), masked.hex(), str(int(time.time()))])


def test_a_client_is_a_browser_with_all_its_tabs_else_an_address():
    token, other = os.urandom(16), os.urandom(16)
    tab1, tab2 = _xsrf_cookie(token), _xsrf_cookie(token)
    assert tab1 != tab2  # two tabs of one browser can hold differently masked cookies ...
    key = jobs.client_key_for({"_streamlit_xsrf": tab1}, "10.0.0.5")
    assert key == jobs.client_key_for({"_streamlit_xsrf": tab2}, "10.0.0.7")  # ... and are one client
    assert key != jobs.client_key_for({"_streamlit_xsrf": _xsrf_cookie(other)}, "10.0.0.5")
    assert token.hex() not in key  # the secret itself is not kept
    assert jobs.client_key_for({}, "10.0.0.5") == jobs.client_key_for(None, "10.0.0.5") != \
        jobs.client_key_for({}, "10.0.0.6")
    assert jobs.client_key_for({}, None) is None


def test_two_tabs_of_one_client_hold_one_job(fake_transfer):
    board = _board()
    client = jobs.client_key_for({"_streamlit_xsrf": _xsrf_cookie(b"k" * 16)}, "10.0.0.5")
    tab1, other = _job(board, client).start(), _job(board, "browser:someone-else").start()
    _until(lambda: tab1.snapshot()["state"] == "running")
    tab2 = _job(board, client).start()  # the same student's second tab
    _until(lambda: not tab1.alive)
    assert tab1.snapshot()["reason"] == "replaced" and "tab" in jobs.reason_text(tab1.snapshot())
    assert other.alive and other.reason is None
    for job in (tab2, other):
        job.cancel()
    _until(lambda: not (tab2.alive or other.alive))


def test_a_failed_job_shows_a_message_never_the_exception_text(monkeypatch, caplog):
    """One home for how an exception is shown to a visitor (i18n.error_text): a failed job's snapshot
    says it in one general sentence, the details go to the server log; a fixable error keeps its words."""
    from teachkit import transfer
    from teachkit.images import ImageError
    from teachkit.lessons import i18n

    secret = "/srv/teachkit/secret/path.py line 12: tensor shape mismatch"

    def boom(*a, **k):
        raise RuntimeError(secret)

    monkeypatch.setattr(transfer, "Engine", boom)
    job = _job(_board(), "s").start()
    _until(lambda: not job.alive)
    with caplog.at_level("WARNING"):
        shown = job.snapshot()["error"]
    assert job.snapshot()["state"] == "failed"
    assert shown == EN["ui.error_internal"] and "/srv" not in shown and "tensor" not in shown
    assert secret in caplog.text  # the teacher finds the details in the server log
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    assert i18n.error_text(RuntimeError("x")) == catalogue("zh")["ui.error_internal"]
    # an error a student can act on keeps its words, in their language
    err = ImageError.about("a.png", "image.not_encoded")
    assert i18n.error_text(err) == err.text("zh")
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    assert i18n.error_text(err) == str(err)


_MD_NAME = "**bold** _it_ [link](http://x.example) $x^2$ :red[red] :smile: `code` <b>b</b> #1\nline.png"


def _unescape(shown: str) -> str:
    """What a reader sees of markdown_literal's output: backslash escapes and word joiners removed."""
    out, i = [], 0
    while i < len(shown):
        if shown[i] == "\\" and i + 1 < len(shown):
            out.append(shown[i + 1])
            i += 2
        else:
            out.append(shown[i])
            i += 1
    return "".join(out).replace("\u2060", "")


def test_file_names_are_shown_literally_never_as_markdown():
    shown = uploads.markdown_literal(_MD_NAME)
    assert _unescape(shown) == _MD_NAME.replace("\n", " ")
    for i, ch in enumerate(shown):  # every ASCII punctuation mark is escaped (or is the escape)
        if ch == ":":
            assert shown[i + 1] == "\u2060", (i, shown)
        elif ch.isascii() and not ch.isalnum() and not ch.isspace() and ch != "\\":
            assert shown[i - 1] == "\\", (i, shown)
    assert ":\u2060" in shown and "\n" not in shown  # no :colour[...] or :icon: directives, one line


def test_a_bad_upload_names_the_file_literally_on_the_page():
    at = AppTest.from_function(_upload_script, default_timeout=30)
    at.run()
    at.file_uploader(key="u").set_value((_MD_NAME, b"\x89PNG not really", "image/png")).run()
    assert not at.exception and len(at.error) == 1
    body = at.error[0].value
    assert uploads.markdown_literal(_MD_NAME) in body and "**bold**" not in body and "[link](" not in body


# ---- against a real server, through Streamlit's own protocol (tests/local_server.py: Tab) -------------


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    """The app served on 127.0.0.1 with the classroom flags (teachkit.serve), tiny demos, and small
    upload bounds: 1 MB a file, 3 files or 2 MB a session, 3 MB for the whole server; a closed tab's
    uploads freed after 1 s."""
    pytest.importorskip("websockets")
    from teachkit.serve import streamlit_flags

    log = tmp_path_factory.mktemp("class_server") / "server.log"
    env = dict(os.environ, TEACHKIT_OFFLINE="1", TEACHKIT_FAST="1", TEACHKIT_WARMUP="0",
               TEACHKIT_UPLOAD_MAX_MB="1", TEACHKIT_UPLOAD_SESSION_FILES="3", TEACHKIT_UPLOAD_SESSION_MB="2",
               TEACHKIT_UPLOAD_SERVER_MB="3", TEACHKIT_HEARTBEAT_SECONDS="3", TEACHKIT_UPLOAD_FREE_SECONDS="1")
    with serve_app(streamlit_flags(1, local=True), cwd=ROOT, env=env, log=log) as server:
        yield server


def _run_async(coro, timeout: float = 240):
    import asyncio

    return asyncio.run(asyncio.wait_for(coro, timeout))


def _held_upload_bytes(metrics: bytes) -> int:
    """The bytes Streamlit's upload storage holds, from the server's own /_stcore/metrics."""
    total = 0
    for line in metrics.decode().splitlines():
        if line.startswith("cache_memory_bytes") and "UploadedFileManager" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_puts_past_the_upload_bounds_are_held_to_them_at_the_server(class_server):
    """The hole: 40 PUTs with made-up file ids all returned 204 and the server grew by 42 MB.  Now a
    session may hold 2 MB, the server 3 MB: the rest is kept as empty placeholders (the page says why),
    and a session holding 3 x its 3 files is refused (413); the server holds no more."""
    import uuid

    from local_server import Tab

    mb = 2**20

    async def go():
        a, b = Tab(class_server.url), Tab(class_server.url)  # two students' browsers
        await a.open()
        await b.open()
        try:
            sa = [await a.put_file(f"/_stcore/upload_file/{a.session_id}/{uuid.uuid4()}", f"a{i}.png",
                                   b"\0" * int(0.9 * mb)) for i in range(11)]
            sb = [await b.put_file(f"/_stcore/upload_file/{b.session_id}/{uuid.uuid4()}", f"b{i}.png",
                                   b"\0" * int(0.9 * mb)) for i in range(3)]
            status, metrics = await a.http("GET", "/_stcore/metrics")
            return sa, sb, status, metrics
        finally:
            await a.close()
            await b.close()

    sa, sb, status, metrics = _run_async(go())
    assert sa == [204] * 9 + [413] * 2 and sb == [204] * 3
    # a's 2 files (1.8 MB, its session's 2 MB) + b's 1 (the server's 3 MB); every other one is empty
    assert status == 200 and _held_upload_bytes(metrics) == 3 * int(0.9 * mb)
    assert "upload refused" in class_server.log.read_text()


def _noise_png(side: int, seed: int) -> bytes:
    """An RGB PNG of random pixels (it does not compress: ~3 bytes a pixel)."""
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def test_one_browser_cannot_fill_the_upload_space_and_a_closed_tab_frees_it_in_seconds(class_server):
    """The attack walk: 10 tabs of one browser stored 285 MiB, another student's photo was then refused
    with "AxiosError: ... 413", and the space came back after 4 minutes.  Now one browser's tabs hold at
    most the client's 2 MB (the server 3 MB), the refused file is named on the page in the tab's language,
    another student still uploads, file names in captions are literal, and closed tabs free their bytes
    within seconds (lesson 6, through Streamlit's own protocol)."""
    import asyncio

    from local_server import Tab

    from teachkit.messages import Message

    name = "**A** $x^2$ [l](http://x.example).png"
    a, b, c, d = (_noise_png(540, seed) for seed in range(4))
    assert max(map(len, (a, b, c, d))) < 2**20 and len(a) + len(b) <= 2 * 2**20 < len(a) + len(b) + len(c)

    async def held() -> int:
        status, metrics = await Tab(class_server.url).http("GET", "/_stcore/metrics")
        assert status == 200
        return _held_upload_bytes(metrics)

    async def freed(seconds: float) -> bool:
        for _ in range(int(seconds * 2)):
            if await held() == 0:
                return True
            await asyncio.sleep(0.5)
        return False

    async def go():
        assert await freed(40)  # whatever earlier tests uploaded: their tabs are closed
        jar: dict = {}
        tab1, tab2 = Tab(class_server.url, jar=jar), Tab(class_server.url, lang="zh", jar=jar)
        other = Tab(class_server.url)
        try:
            await tab1.open("run")
            s1, run1 = await tab1.upload("p6_content_upload", [(name, a, "image/png")])
            s2, run2 = await tab1.upload("p6_style_upload", [(name, b, "image/png")])
            captions = [img.caption for e in run2.elements.values() if e.WhichOneof("type") == "imgs"
                        for img in e.imgs.imgs]
            await tab2.open("run")
            s3, run3 = await tab2.upload("p6_content_upload", [("c.png", c, "image/png")])
            await other.open("run")
            s4, run4 = await other.upload("p6_content_upload", [("d.png", d, "image/png")])
            await asyncio.sleep(5.5)  # Streamlit's /_stcore/metrics keeps the memory figures for 5 s
            during = await held()
            return (s1 + s2 + s3 + s4, captions, tab1.errors(run2.elements), tab2.errors(run3.elements),
                    other.errors(run4.elements), during)
        finally:
            for tab in (tab1, tab2, other):
                await tab.close()

    async def main():
        result = await go()
        return result, await freed(40)

    (statuses, captions, errors1, errors2, errors4, during), emptied = _run_async(main())
    assert statuses == [204] * 4  # never Streamlit's "AxiosError: Request failed with status code 413"
    assert errors1 == [] and errors4 == []  # the first tab's two photos and another student's are used
    said = Message("serving.upload_client_mb", {"mb": (len(a) + len(b) + len(c)) / 2**20, "limit": 2}).text("zh")
    assert len(errors2) == 1 and said in errors2[0] and "c.png" in _unescape(errors2[0])
    assert during == len(a) + len(b) + len(d)  # the refused photo takes no space
    shown = uploads.markdown_literal(name)
    assert any(cap.startswith(shown + " ·") for cap in captions), captions  # lesson 6's content caption
    assert shown in captions  # and its style caption: the name as literal Markdown
    assert emptied  # the closed tabs gave their bytes back within seconds, not minutes


def test_two_tabs_of_one_browser_hold_one_transfer(class_server):
    """Many tabs used to fill the class's queue: now a second tab's transfer replaces the first
    tab's (one client = one browser's XSRF cookie); when the tab closes, its transfer is cancelled."""
    from local_server import Tab

    replaced = EN["ui.job_replaced"]

    async def start(tab):
        await tab.open("run")
        await tab.set_slider("p6_size", 128)  # long enough to be running still when the second tab starts
        await tab.set_slider("p6_steps", 500)
        await tab.press("p6_start")

    async def go():
        jar: dict = {}
        tab1, tab2 = Tab(class_server.url, jar=jar), Tab(class_server.url, jar=jar)
        try:
            await start(tab1)
            await start(tab2)
            seen = await tab1._wait(lambda: replaced in tab1.texts("alert"), 60)  # tab 1's progress fragment
            running = tab2.widget("p6_cancel") is not None or await tab2._wait(
                lambda: tab2.widget("p6_cancel") is not None, 30)
            return seen, running, tab1.errors() + tab2.errors()
        finally:
            await tab1.close()
            await tab2.close()

    seen, running, errors = _run_async(go())
    assert seen and running and errors == []
    _until(lambda: "session went away was cancelled" in class_server.log.read_text(), timeout=30)


def test_long_work_gives_way_to_a_click_between_its_steps(monkeypatch):
    """A click on "Step" (the quick lane) runs while long work waits between two of its steps."""
    monkeypatch.setattr(jobs, "QUICK_PRIORITY_SECONDS", 5.0)
    assert jobs.yield_to_quick() == 0.0  # nothing quick running: no wait at all
    inside, leave, waited = threading.Event(), threading.Event(), []

    def click():
        with jobs.compute_slot(quick=True):
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=click, daemon=True)
    worker.start()
    assert inside.wait(10) and jobs.quick_running() == 1
    long_work = threading.Thread(target=lambda: waited.append(jobs.yield_to_quick()), daemon=True)
    long_work.start()
    time.sleep(0.3)
    assert not waited  # still waiting for the click
    leave.set()
    long_work.join(10)
    worker.join(10)
    assert 0.25 <= waited[0] < 5.0 and jobs.quick_running() == 0  # waited for the click, not the whole bound
    with jobs.compute_slot(quick=True):  # and never longer than the bound
        assert 0.05 <= jobs.yield_to_quick(max_wait=0.1) < 1.0
