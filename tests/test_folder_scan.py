"""A visitor's folder scan in the served app (lessons/jobs.py's atlas builders, with a data root).

Capped in files (refused before any slot is taken) and in time (the images done so far are kept),
cancellable by its visitor even while it waits, never in the last compute slot, and its errors and
progress name the folder as typed inside the data root, never the server's path.  A tiny hand-made
network (tests/test_patches.py) keeps each test well under a second of compute.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")

from teachkit.lessons import jobs  # noqa: E402
from test_patches import random_net  # noqa: E402

LAYERS = ("relu1_1", "relu2_1")


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A data root with 'cats' (20 images), 'empty' (none); the default dataset is 'sample'."""
    base = tmp_path / "srv" / "classroom-data"
    rng = np.random.default_rng(0)
    (base / "cats").mkdir(parents=True)
    for i in range(20):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype("uint8")).save(base / "cats" / f"{i:02d}.png")
    (base / "empty").mkdir()
    monkeypatch.setattr(jobs, "DATA_ROOT", base.resolve())
    monkeypatch.setenv("TEACHKIT_ATLAS_DATASET", "sample")
    monkeypatch.setenv("TEACHKIT_ATLAS_SIZE", "24")
    monkeypatch.setenv("TEACHKIT_CACHE", str(tmp_path / "cache"))
    return base


def build(spec: str) -> jobs.AtlasBuilder:
    b = jobs.AtlasBuilder(jobs.dataset_spec(spec, "sample"), random_net(), LAYERS)
    assert b.done.wait(60)
    return b


def test_too_many_files_is_refused_naming_the_folder_as_typed(root, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "SCAN_MAX_FILES", 19)
    b = build("cats")
    assert b.atlas is None and b.exception.msg_id == "dataset.too_many_files"
    for lang in ("en", "zh"):
        shown = b.exception.text(lang)
        assert "cats" in shown and "19" in shown and str(tmp_path) not in shown and "srv" not in shown
    monkeypatch.setattr(jobs, "SCAN_MAX_FILES", 20)
    assert build("cats").atlas.n_images == 20  # at the cap: scanned


def test_empty_folder_error_and_progress_line_show_no_server_path(root, tmp_path):
    b = build("./empty/")
    assert b.exception.msg_id == "dataset.no_images"
    assert str(tmp_path) not in b.exception.text("en") and "'empty'" in b.exception.text("en")
    assert build("cats").label == "cats"  # what lesson 1's progress line names (p1_scanning)


def test_time_limit_keeps_the_images_done_so_far(root, monkeypatch):
    monkeypatch.setattr(jobs, "SCAN_SECONDS", 1e-9)  # over after the first batch of 16
    b = build("cats")
    m = b.atlas.meta
    assert m["stopped"] == "time_limit" and m["n_images"] == 16 and not m["complete"]


def _hold(sem, n):
    for _ in range(n):
        assert sem.acquire(timeout=5)


def test_cancel_while_waiting_for_a_slot_frees_everything(root):
    _hold(jobs._SLOTS, jobs.MAX_JOBS)  # the lessons hold every compute slot
    try:
        b = jobs.AtlasBuilder(jobs.dataset_spec("cats", "sample"), random_net(), LAYERS)
        assert not b.done.wait(0.5)  # waiting for its turn
        b.cancel()
        assert b.done.wait(2) and b.cancelled and b.atlas is None and b.error is None
    finally:
        for _ in range(jobs.MAX_JOBS):
            jobs._SLOTS.release()
    assert jobs._SLOTS.counts() == (0, 0, 0)  # its place in the queue was given back


@pytest.mark.skipif(jobs.MAX_JOBS < 2, reason="with one slot, folder scans are off")
def test_folder_scans_never_take_the_last_compute_slot(root, monkeypatch):
    import teachkit.patches

    running, release = [], threading.Event()

    def slow_get_atlas(data, **kw):  # a scan that runs until the test lets it finish
        running.append(data.label)
        release.wait(10)
        return None

    monkeypatch.setattr(teachkit.patches, "get_atlas", slow_get_atlas)
    (root / "dogs").mkdir()
    Image.new("RGB", (24, 24)).save(root / "dogs" / "a.png")
    builders = [jobs.AtlasBuilder(jobs.dataset_spec(f, "sample"), None, LAYERS) for f in ("cats", "dogs")]
    try:
        deadline = time.monotonic() + 5
        while len(running) < jobs.FOLDER_SCAN_SLOTS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(running) == jobs.FOLDER_SCAN_SLOTS  # the other folder scan waits ...
        assert jobs._SLOTS.acquire(timeout=1)  # ... while a lesson still gets a slot at once
        jobs._SLOTS.release()
    finally:
        release.set()
        assert all(b.done.wait(10) for b in builders)
    assert sorted(running) == ["cats", "dogs"]  # and then it ran


def test_one_compute_slot_means_no_folder_scans(root, monkeypatch):
    monkeypatch.setattr(jobs, "FOLDER_SCAN_SLOTS", 0)
    monkeypatch.setattr(jobs, "_BUILDERS", type(jobs._BUILDERS)())
    with pytest.raises(jobs.BuildersBusy):
        jobs.atlas_builder(jobs.dataset_spec("cats", "sample"), None, LAYERS)


def test_lesson1_page_names_an_empty_folder_without_the_server_path(root, classroom, tmp_path, monkeypatch):
    """The page itself (AppTest, the real backbone on the run's classroom: tests/conftest.py)."""
    from streamlit.testing.v1 import AppTest

    for key, value in classroom.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(jobs, "_BUILDERS", type(jobs._BUILDERS)())
    at = AppTest.from_file(str(jobs.Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    at.text_input(key="p1_folder").input("empty").run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "'empty'" in shown and str(tmp_path) not in shown and "srv" not in shown
