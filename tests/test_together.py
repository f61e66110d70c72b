"""Shared demo runs (lessons/together.py): thirty students pressing the same "Run" get one computation.

Planted with threads, as the server runs pages: each "student" is a thread calling ``shared_run`` with a
work function that counts how often it really computes and that waits for the test to let it finish,
so the test decides who arrives while the run is under way.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("streamlit")

from teachkit.lessons import jobs, together  # noqa: E402
from streamlit.runtime.scriptrunner_utils.exceptions import StopException  # noqa: E402


class Note:
    def __init__(self):
        self.shown = []

    def info(self, text):
        self.shown.append(text)

    def empty(self):
        pass


class View:
    """A page's progress view: what it was given to draw."""

    def __init__(self):
        self.drawn = []

    def __call__(self, p):
        self.drawn.append(p)
        return False


def until(cond, seconds=10.0):
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(together, "_RUNS", {})
    monkeypatch.setattr(jobs, "_SLOTS", jobs.ComputeSlots(2))
    yield
    assert together._RUNS == {}  # nothing is left behind


class Work:
    """Publishes ``steps`` progress records (an image every second one), then waits for ``go``."""

    def __init__(self, steps=4, fail=None):
        self.calls, self.steps, self.fail = 0, steps, fail
        self.go, self.published = threading.Event(), threading.Event()

    def __call__(self, cb):
        self.calls += 1
        for i in range(1, self.steps + 1):
            cb["G"](SimpleNamespace(step=i, total=self.steps, image=f"img{i}" if i % 2 == 0 else None))
        self.published.set()
        assert self.go.wait(10)
        if self.fail is not None:
            raise self.fail
        return {"result": "G", "calls": self.calls}


def student(key, work, out, name):
    view, note = View(), Note()
    try:
        out[name] = (together.shared_run(key, {"G": view}, work, note=note, poll=0.01), view, note)
    except BaseException as err:  # noqa: BLE001
        out[name] = (err, view, note)


def test_presses_of_the_same_demo_share_one_run_and_see_its_progress(fresh):
    work, out = Work(), {}
    first = threading.Thread(target=student, args=(("demo", "cat", "starry"), work, out, "first"))
    first.start()
    until(work.published.is_set)
    others = [threading.Thread(target=student, args=(("demo", "cat", "starry"), work, out, f"s{i}")) for i in range(5)]
    for t in others:
        t.start()
    until(lambda: together.running(("demo", "cat", "starry")).watchers == 5)
    work.go.set()
    for t in [first, *others]:
        t.join(10)
    assert work.calls == 1  # computed once for six students
    values = {name: value for name, (value, _, _) in out.items()}
    assert all(v is values["first"] for v in values.values())
    for name in (f"s{i}" for i in range(5)):
        value, view, note = out[name]
        # a watcher that came late draws the latest image and the latest progress, not nothing
        assert [getattr(p, "image", None) for p in view.drawn if p.image] == ["img4"]
        assert view.drawn[-1].step == 4
        assert note.shown and "watching" in note.shown[0]
    assert [p.step for p in out["first"][1].drawn] == [1, 2, 3, 4]  # the one who runs it sees every step


def test_different_settings_are_computed_apart(fresh):
    work_a, work_b, out = Work(), Work(), {}
    threads = [threading.Thread(target=student, args=(("demo", "cat"), work_a, out, "a")),
               threading.Thread(target=student, args=(("demo", "dog"), work_b, out, "b"))]
    for t in threads:
        t.start()
    until(lambda: work_a.published.is_set() and work_b.published.is_set())
    work_a.go.set()
    work_b.go.set()
    for t in threads:
        t.join(10)
    assert (work_a.calls, work_b.calls) == (1, 1)
    assert out["a"][0] is not out["b"][0]


def test_when_the_one_computing_leaves_a_watcher_computes_it_again(fresh):
    leaving, again, out = Work(fail=StopException()), Work(), {}
    first = threading.Thread(target=student, args=(("demo",), leaving, out, "first"))
    first.start()
    until(leaving.published.is_set)
    second = threading.Thread(target=student, args=(("demo",), lambda cb: again(cb), out, "second"))
    second.start()
    until(lambda: together.running(("demo",)).watchers == 1)
    leaving.go.set()  # the first student's page stops (Streamlit's StopException)
    first.join(10)
    assert isinstance(out["first"][0], StopException)
    until(again.published.is_set)  # the watcher started its own run
    again.go.set()
    second.join(10)
    assert again.calls == 1 and out["second"][0]["result"] == "G"


def test_an_error_reaches_every_watcher(fresh):
    failing, out = Work(fail=ValueError("no good")), {}
    first = threading.Thread(target=student, args=(("demo",), failing, out, "first"))
    first.start()
    until(failing.published.is_set)
    second = threading.Thread(target=student, args=(("demo",), failing, out, "second"))
    second.start()
    until(lambda: together.running(("demo",)).watchers == 1)
    failing.go.set()
    for t in (first, second):
        t.join(10)
    assert failing.calls == 1
    assert isinstance(out["second"][0], ValueError) and str(out["second"][0]) == "no good"


def test_the_operator_can_switch_sharing_off(fresh, monkeypatch):
    monkeypatch.setenv("TEACHKIT_SHARED_DEMOS", "0")
    work, out = Work(), {}
    threads = [threading.Thread(target=student, args=(("demo",), work, out, name)) for name in ("a", "b")]
    for t in threads:
        t.start()
    until(lambda: work.calls == 2)  # both compute, neither watches
    work.go.set()
    for t in threads:
        t.join(10)
    assert out["a"][0] is not out["b"][0] and not out["a"][2].shown and not out["b"][2].shown
