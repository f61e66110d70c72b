"""One computation for everyone who presses the same demo at the same time (lessons 2, 4 and 5).

The first press runs the demo in a compute slot; every press of the same demo (the same ``key``: the
picture keys and settings, so the result would be identical) while it is queued or running *watches*
that run: its page draws the same progress and result at no extra cost.  If the page that computes is
left, the run stops with it and its watchers start again (one computes, the others watch); an error
reaches every watcher.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

import streamlit as st

from teachkit.lessons.i18n import out_of_memory_on_page, tr
from teachkit.lessons.jobs import slot_on_page, yield_to_quick

T = TypeVar("T")


class Run:
    """One shared computation: the latest progress per view (and the latest one with an image), then
    its value or its error.  ``publish`` and ``finish`` come from the thread that computes; watchers
    wait on ``changed``."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.seq = 0
        self.latest: dict[str, tuple[int, object]] = {}  # view name -> (seq, progress)
        self.latest_image: dict[str, tuple[int, object]] = {}  # view name -> (seq, progress with an image)
        self.ended = False
        self.abandoned = False  # the page that computed was left: nothing to show, start again
        self.value = None
        self.error: BaseException | None = None
        self.watchers = 0

    def publish(self, name: str, p) -> None:
        with self.changed:
            self.seq += 1
            self.latest[name] = (self.seq, p)
            if getattr(p, "image", None) is not None:
                self.latest_image[name] = (self.seq, p)
            self.changed.notify_all()

    def finish(self, *, value=None, error: BaseException | None = None, abandoned: bool = False) -> None:
        with self.changed:
            self.ended, self.value, self.error, self.abandoned = True, value, error, abandoned
            self.changed.notify_all()


_RUNS: dict[tuple, Run] = {}
_LOCK = threading.Lock()


def running(key: tuple) -> Run | None:
    """The shared run of ``key`` now queued or computing, if any."""
    with _LOCK:
        return _RUNS.get(key)


def _script_control(err: BaseException) -> bool:
    """Streamlit stopping or rerunning the page (the student left or pressed something else)."""
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

    return isinstance(err, ScriptControlException)


def shared_run(key: tuple, views: dict[str, Callable], work: Callable[[dict[str, Callable]], T],
               *, note=None, poll: float = 0.5) -> T:
    """Run ``work(callbacks)`` in a compute slot, or watch the run of the same ``key`` already under way.
    ``views``: name -> a progress callback that draws on this page (e.g. :class:`jobs.LiveView`);
    ``work`` gets one callback per name to hand to teachkit (``callback=callbacks[name]``), which also
    shows the progress to every watcher.  ``work`` runs inside :func:`jobs.slot_on_page`, so it may take
    its time limit from :func:`jobs.demo_limit`.  Returns ``work``'s value (the same object for every
    watcher: read it, do not change it)."""
    from teachkit.lessons.settings import shared_demos

    if not shared_demos():  # the operator's choice (and the benchmark's comparison): every press its own run
        key = (key, object())
    while True:
        with _LOCK:
            run = _RUNS.get(key)
            # a run that was left or failed is not joined again, even before its page has removed it
            mine = run is None or (run.ended and (run.abandoned or run.error is not None))
            if mine:
                run = _RUNS[key] = Run()
            else:
                run.watchers += 1
        if mine:
            return _compute(key, run, views, work)
        done, value = _watch(run, views, note if note is not None else st.empty(), poll)
        if done:
            return value
        # the page that computed was left: start again (the first one back computes, the others watch)


def _compute(key: tuple, run: Run, views: dict[str, Callable], work: Callable[[dict[str, Callable]], T]) -> T:
    def tee(name: str) -> Callable:
        view = views[name]

        def callback(p):
            run.publish(name, p)
            yield_to_quick()  # a click on lesson 3's "Step" first (jobs.yield_to_quick)
            return view(p)
        return callback

    try:
        with slot_on_page():
            try:
                value = work({name: tee(name) for name in views})
            except BaseException as err:
                run.finish(error=None if _script_control(err) else err, abandoned=_script_control(err))
                raise
            run.finish(value=value)
            return value
    except BaseException as err:
        if not run.ended:  # left while it waited for its slot
            run.finish(abandoned=True)
        raise
    finally:
        with _LOCK:
            if _RUNS.get(key) is run:
                del _RUNS[key]


def _watch(run: Run, views: dict[str, Callable], note, poll: float) -> tuple[bool, object]:
    """Draw the run's progress on this page until it ends: (True, value), or (False, None) if abandoned.
    The note is rewritten every ``poll`` seconds: each Streamlit call is where a page that was left
    stops, so a watcher never keeps its student from going to another page."""
    t0 = time.monotonic()
    seen: dict[str, int] = {}
    seen_image: dict[str, int] = {}
    last = 0
    try:
        while True:
            with run.changed:
                if not run.ended and run.seq == last:
                    run.changed.wait(poll)
                last = run.seq
                latest = dict(run.latest)
                latest_image = dict(run.latest_image)
                ended = run.ended
            note.info(tr("together_watching", secs=time.monotonic() - t0))
            for name, view in views.items():
                if name in latest_image and latest_image[name][0] > seen_image.get(name, 0):
                    seq, p = latest_image[name]
                    seen_image[name] = seen[name] = max(seen.get(name, 0), seq)
                    view(p)
                if name in latest and latest[name][0] > seen.get(name, 0):
                    seq, p = latest[name]
                    seen[name] = seq
                    view(p)
            if ended:
                note.empty()
                if run.abandoned:
                    return False, None
                if run.error is not None:
                    with out_of_memory_on_page():  # the one line that says what to lower, as for the runner
                        raise run.error
                return True, run.value
    finally:
        with run.changed:
            run.watchers -= 1
