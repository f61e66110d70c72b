"""Background work and its fair sharing: compute slots, progress on the page, transfer jobs, atlas builders.

Served to a class, one machine is shared by thirty students; this module keeps it fair and safe:

* **compute slots** -- at most ``MAX_JOBS`` heavy computations at once for the whole classroom,
  served in order of arrival (:class:`ComputeSlots`); long work (transfers, folder scans) never holds
  the last one, a waiting demo's page shows its place, and a demo with others waiting behind it runs
  shorter (:func:`demo_limit`);
* **progress** -- :class:`LiveView`, a teachkit progress callback that draws into the page (it runs
  in the page's own script thread);
* **transfer jobs** (lesson 6) -- :class:`TransferJob` runs a transfer in a thread.  The
  :class:`JobBoard` gives each client at most one job (a new one replaces the old; a client is a
  browser with all its tabs, known by Streamlit's XSRF cookie, else an address: :func:`client_key`), keeps a
  bounded queue that tells each student their place, and a job whose session has gone (no
  heartbeat for ``HEARTBEAT_SECONDS``) is cancelled and frees its place.  :data:`LIMITS` caps
  size, steps, style scale, L-BFGS memory and the number of styles so that one job stays within
  a stated memory budget, and a job stops at its time limit;
* **atlas builders** (lesson 1) -- :class:`AtlasBuilder` scans a dataset once per process for every
  session; at most ``MAX_SCANS`` builders exist at once (least recently used finished ones are
  freed).  The folder box is off unless the teacher names a data root at start
  (``TEACHKIT_DATA_ROOT``); then only folders inside it, after resolving symlinks, are scanned.

Worker threads never call Streamlit: they only store their state, which the pages read.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import streamlit as st

from teachkit.datasets import FolderRefused  # noqa: F401 - the pages catch it as jobs.FolderRefused
from teachkit.memory import out_of_memory
from teachkit.options import OPTIONS, over_caps, served_caps

from teachkit.lessons._strings import UI
from teachkit.lessons.i18n import error_text, out_of_memory_on_page, progress_message, tr, value_label
from teachkit.lessons.settings import BACKBONE, atlas_default_dataset, atlas_image_size, env_int

_log = logging.getLogger(__name__)

MAX_JOBS = max(1, env_int("TEACHKIT_MAX_JOBS", 2))
ATLAS_K = 9
#: the shortest a demo of lessons 2-5 is ever cut to when others queue behind it (:func:`demo_limit`)
DEMO_MIN_SECONDS = float(max(1, env_int("TEACHKIT_DEMO_MIN_SECONDS", 6)))


class Ticket:
    """A place in the queue of :class:`ComputeSlots` (``long``: minutes of work; ``background``: after
    every visitor).  Once granted, ``behind`` is how many visitors' computations were waiting then and
    ``free`` how many slots they could use (the basis of :func:`demo_limit`)."""

    __slots__ = ("seq", "long", "background", "granted", "behind", "free")

    def __init__(self, seq: int, long: bool, background: bool):
        self.seq, self.long, self.background = seq, long, background
        self.granted = False
        self.behind = 0
        self.free = 1


class ComputeSlots:
    """The server's ``n`` compute slots, handed out first come, first served, with a place for everyone.

    Whoever waits holds a :class:`Ticket`, so a page can say "you are number 3 of 7".  Two rules on
    top of the order of arrival:

    * **long work** (lesson-6 transfers, visitors' folder scans, the warm-up's preparations: minutes
      each) holds at most ``long_slots`` slots together (``n - 1``): a demo pressed on lessons 2-5 always
      finds a slot that no long job can take, and passes the long jobs that cannot start anyway;
    * **background** work (the app's own warm-up) goes after every visitor's.

    It also works as a semaphore (``acquire(timeout=...)`` / ``release()``) for a plain, short hold.
    A class of 60 on 2 cores, before this: a lesson-2 demo waited up to ~3 minutes behind two
    transfers (benchmarks/RESULTS_load.md).
    """

    def __init__(self, n: int, long_slots: int | None = None):
        self.n = max(1, int(n))
        self.long_slots = max(1, min(self.n, self.n - 1 if long_slots is None else int(long_slots)))
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []  # in the order they are served (visitors first, then background)
        self._held = 0
        self._held_long = 0
        self._seq = 0

    # -- queue --

    def ticket(self, *, long: bool = False, background: bool = False) -> Ticket:
        with self._cond:
            self._seq += 1
            t = Ticket(self._seq, long, background)
            self._waiting.append(t)
            self._waiting.sort(key=lambda u: (u.background, u.seq))
            return t

    def _may_start(self, t: Ticket) -> bool:
        return not t.long or self._held_long < self.long_slots

    def _ahead(self, t: Ticket) -> list[Ticket]:
        """The waiting tickets that will be served before ``t`` (those that may start)."""
        out = []
        for u in self._waiting:
            if u is t:
                break
            if self._may_start(u):
                out.append(u)
        return out

    def _grantable(self, t: Ticket) -> bool:
        free = self.n - self._held
        return free > 0 and self._may_start(t) and len(self._ahead(t)) < free

    def _grant(self, t: Ticket) -> None:
        self._waiting.remove(t)
        self._held += 1
        self._held_long += t.long
        t.granted = True
        t.behind = sum(1 for u in self._waiting if not (u.long or u.background))
        t.free = max(1, self.n - self._held_long)  # the slots visitors' short computations can use

    def wait(self, t: Ticket, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` s until ``t`` holds a slot (True); False: still waiting, place kept."""
        with self._cond:
            if t.granted:
                return True
            if self._cond.wait_for(lambda: self._grantable(t), timeout):
                self._grant(t)
                return True
            return False

    def withdraw(self, t: Ticket) -> None:
        """Give up a place in the queue (a granted ticket is released instead)."""
        with self._cond:
            if t.granted:
                self._release(t)
            elif t in self._waiting:
                self._waiting.remove(t)
                self._cond.notify_all()

    def release(self, t: Ticket | None = None) -> None:
        """Give back a slot: that of ticket ``t``, or (without one) a plain hold from :meth:`acquire`."""
        with self._cond:
            self._release(t)

    def _release(self, t: Ticket | None) -> None:
        if t is not None:
            if not t.granted:
                raise ValueError("release of a ticket that holds no slot")
            t.granted = False
            self._held_long -= t.long
        if self._held <= 0:
            raise ValueError("ComputeSlots released too many times")
        self._held -= 1
        self._cond.notify_all()

    def place(self, t: Ticket) -> tuple[int, int] | None:
        """``(place, waiting)``: ``t``'s 1-based place among those who will be served before it, and how
        many visitors' computations wait in all; None once it holds a slot."""
        with self._cond:
            if t.granted or t not in self._waiting:
                return None
            waiting = sum(1 for u in self._waiting if not u.background)
            return len(self._ahead(t)) + 1, max(waiting, 1)

    def counts(self) -> tuple[int, int, int]:
        """(held, of which long, waiting)"""
        with self._cond:
            return self._held, self._held_long, len(self._waiting)

    # -- as a semaphore --

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        t = self.ticket()
        if self.wait(t, (timeout if blocking else 0)):
            return True
        self.withdraw(t)
        return False


_SLOTS = ComputeSlots(MAX_JOBS)
#: computations of a second or less (one step of lesson 3's demo) have a lane of their own, so that a
#: click on "Step" never waits behind the 25-s demos and 5-minute transfers that hold the compute slots
#: (30 students on 2 cores: a step waited 31 s median, 177 s worst; benchmarks/RESULTS_load.md).  Two
#: lanes: with 60 students a click waited 2.5 / 38.0 s (median / worst) with one, 1.3 / 17.2 s with two
#: (each step is a fraction of a second of CPU; most of its time goes to waiting its turn for Python's GIL)
QUICK_JOBS = max(1, env_int("TEACHKIT_QUICK_JOBS", 2))
_QUICK = threading.BoundedSemaphore(QUICK_JOBS)

_HELD = threading.local()  #: the ticket of the slot this thread holds (for demo_limit)

#: quick computations running now; long work gives way to them between its steps (yield_to_quick)
_QUICK_RUNNING = [0]
_QUICK_DONE = threading.Condition()
QUICK_PRIORITY_SECONDS = 0.5  #: the longest one step of long work waits for the quick lane


def quick_running() -> int:
    """How many quick computations (clicks on lesson 3's "Step") run now."""
    return _QUICK_RUNNING[0]


def yield_to_quick(max_wait: float | None = None) -> float:
    """Called by long work (demos, transfers, folder scans) between two of its steps: while a quick
    computation (a click on lesson 3's "Step") runs, wait until it is done, at most ``max_wait`` s
    (``QUICK_PRIORITY_SECONDS``).  On 2 cores the slots' demos and transfers already take every core,
    so a step shared the CPU with them and, with 60 students, waited 8 s median, 101 s worst
    (benchmarks/RESULTS_load.md); now a click gets the machine for its fraction of a second and long
    work loses at most that.  Returns the seconds waited."""
    if not _QUICK_RUNNING[0]:
        return 0.0
    t0 = time.monotonic()
    with _QUICK_DONE:
        _QUICK_DONE.wait_for(lambda: not _QUICK_RUNNING[0],
                             QUICK_PRIORITY_SECONDS if max_wait is None else max_wait)
    return time.monotonic() - t0


@contextlib.contextmanager
def compute_slot(stop: threading.Event | None = None,
                 on_wait: Callable[[int, int, float], None] | None = None, *, quick: bool = False,
                 long: bool = False, background: bool = False, every: float = 1.0) -> Iterator[bool]:
    """Hold one of the MAX_JOBS compute slots while the block runs, served in order of arrival
    (:class:`ComputeSlots`; ``long``: minutes of work, never in the last free slot; ``background``:
    after every visitor); ``quick``: one of the QUICK_JOBS slots for computations of a second or less.

    On a 2-core laptop, thirty students pressing "run" at once would make everybody wait
    forever; with slots, the first ones run at full speed and the rest queue.  While it waits,
    ``on_wait(place, waiting, seconds)`` is called at once and then every ``every`` s (e.g. to show
    "you are number 3 of 7"; the quick lane has no queue: ``(0, 0, 0.0)``, once); an exception it
    raises (Streamlit stopping a page that was left) gives the place up.  Yields False when ``stop`` was set while waiting (the slot is then not held).
    """
    if quick:
        got = _QUICK.acquire(timeout=0.05)
        if not got and on_wait is not None:
            on_wait(0, 0, 0.0)
        while not got:
            if stop is not None and stop.is_set():
                yield False
                return
            got = _QUICK.acquire(timeout=0.25)
        with _QUICK_DONE:
            _QUICK_RUNNING[0] += 1
        try:
            yield True
        finally:
            with _QUICK_DONE:
                _QUICK_RUNNING[0] -= 1
                _QUICK_DONE.notify_all()
            _QUICK.release()
        return
    slots = _SLOTS
    ticket = slots.ticket(long=long, background=background)
    t0 = time.monotonic()
    try:
        got = slots.wait(ticket, 0.05)
        next_note = 0.0
        while not got:
            if stop is not None and stop.is_set():
                break
            waited = time.monotonic() - t0
            if on_wait is not None and waited >= next_note:
                place = slots.place(ticket)
                if place is not None:
                    on_wait(place[0], place[1], waited)
                next_note = waited + every
            got = slots.wait(ticket, min(0.25, every))
    except BaseException:
        slots.withdraw(ticket)
        raise
    if not got:
        slots.withdraw(ticket)
        yield False
        return
    outer = getattr(_HELD, "ticket", None)
    _HELD.ticket = ticket
    try:
        yield True
    finally:
        _HELD.ticket = outer
        slots.release(ticket)


_CONFIGURED = object()


def demo_limit(seconds=_CONFIGURED) -> float | None:
    """The time limit of a demo that has just got its compute slot: ``seconds`` (default: the classroom's,
    ``TEACHKIT_DEMO_SECONDS``), cut when others were waiting behind it, so that the queue empties in
    about one demo's time: ``seconds x free / (free + waiting)`` (``free``: the slots demos can use), never
    below ``DEMO_MIN_SECONDS`` (nor above ``seconds``).  A cut demo stops at its limit with the image it
    has, like any demo.  Outside a slot, or with nobody waiting: ``seconds`` as it is.

    A class of 60 on 2 cores pressed 15 demos of 25 s within a minute: the last waited ~3 minutes.
    """
    if seconds is _CONFIGURED:
        from teachkit.lessons.settings import demo_seconds

        seconds = demo_seconds()
    ticket = getattr(_HELD, "ticket", None)
    if seconds is None or ticket is None or not ticket.behind:
        return seconds
    share = float(seconds) * ticket.free / (ticket.free + ticket.behind)
    return min(float(seconds), max(min(DEMO_MIN_SECONDS, float(seconds)), share))


@contextlib.contextmanager
def slot_on_page(quick: bool = False) -> Iterator[None]:
    """``compute_slot`` for a computation that runs in the page's own script thread (``quick``: a
    second or less, e.g. one step; it then never waits behind the long ones).  While it waits, the page
    says where it is in the queue (updated every second); a demo inside should take its time limit from
    :func:`demo_limit` (shorter when others wait)."""
    note = st.empty()

    def waiting(place: int, total: int, secs: float) -> None:
        if quick or not place:
            note.info(tr("waiting_cpu"))
        else:
            note.info(tr("waiting_place", place=place, waiting=total, secs=secs))

    with compute_slot(on_wait=waiting, quick=quick):
        note.empty()
        with out_of_memory_on_page():  # memory running out: one line saying what to lower (lessons 2-5)
            yield


# ---- progress on the page ----


class LiveView:
    """A teachkit progress callback (``callback(Progress)``) that draws into the page.

    It shows a progress bar with a short status line and, when the job sends one, the current
    image.  A demo's time limit is the job's own (``time_limit=`` of teachkit's transfer and
    reconstructions), so a classroom demo ends on time even on a slow or busy machine.
    The time of the first image is kept (``first_image_s``) and written to
    ``st.session_state['_timings']`` for the benchmark.
    """

    def __init__(self, name: str, *, image_caption: str | None = None, image_width: int | str = "stretch",
                 image_slot=None, show_values: tuple[str, ...] = ("total",)):
        self.name = name
        self.started = time.perf_counter()
        self.bar = st.progress(0.0, text=tr("starting"))
        self.slot = image_slot if image_slot is not None else st.empty()
        self.caption = image_caption
        self.width = image_width
        self.show_values = show_values
        self.first_image_s: float | None = None
        self.last_image = None

    def __call__(self, p) -> bool:
        frac = min(1.0, p.step / p.total) if p.total else 0.0
        shown = "  ".join(f"{value_label(k)} = {p.values[k]:.3g}" for k in self.show_values if k in p.values)
        status = tr("progress_line", step=p.step, total=p.total or "?", secs=time.perf_counter() - self.started)
        self.bar.progress(frac, text=f"{status}  {shown}".strip())
        if p.image is not None:
            self.last_image = p.image
            self.slot.image(p.image, caption=self.caption, width=self.width)
            if self.first_image_s is None:
                self.first_image_s = time.perf_counter() - self.started
                timings = st.session_state.setdefault("_timings", {})
                timings[self.name] = {"first_image_at": time.time(), "first_image_s": self.first_image_s}
        return False

    def done(self) -> None:
        self.bar.empty()


# ---- limits of one transfer job (lesson 6) ----


@dataclasses.dataclass(frozen=True)
class JobLimits:
    """What one lesson-6 job may ask for.  The caps keep the job's own memory (over the shared, loaded
    backbone) within ``memory_budget_mib`` on a CPU: it grows with the pixels of G, of the style images
    (size x style_scale, squared) and with the L-BFGS memory (2 x history_size image-sized vectors).
    The largest job they allow is measured by ``benchmarks/load.py --job-peak`` (RESULTS_load.md)."""

    # the option caps: declared with the options (teachkit/options.py, ``served_max``), held here
    max_size: int = int(served_caps()["max_size"])  #: long side of G, px
    max_steps: int = int(served_caps()["max_steps"])
    max_style_scale: float = float(served_caps()["max_style_scale"])  #: style long side <= 512 * 2.0 = 1024 px
    max_history: int = int(served_caps()["max_history"])  #: L-BFGS pairs kept (each costs 2 image-sized vectors)
    max_styles: int = 4  #: style images in one job (samples + uploads)
    seconds: float = 300.0  #: running time limit; the job stops and keeps its latest image
    queue: int = 8  #: jobs that may wait for a slot; more are refused with a message
    #: jobs queued or running from one network address (0: no cap).  One job per client is keyed on the
    #: browser's cookie, which a student can renew (a private window, a cleared cookie) to queue more;
    #: this bounds what one laptop can hold of the class's queue.  The loopback address is exempt (the
    #: teacher's own machine, or every student behind a reverse proxy on it).
    per_address: int = 3
    heartbeat_seconds: float = 20.0  #: a job whose session has been gone this long is cancelled
    memory_budget_mib: int = 2048  #: the stated budget the caps are measured against

    @property
    def work_side(self) -> int:
        """The largest side any input image is ever used at (uploads are kept at most this large)."""
        return int(round(self.max_size * self.max_style_scale))


def _limits_from_env() -> JobLimits:
    d = JobLimits()
    return JobLimits(
        # the whole-number option caps, lowered by TEACHKIT_JOB_MAX_SIZE / _STEPS / _HISTORY
        **{o.cap: max(1, o.low, env_int(f"TEACHKIT_JOB_{o.cap.upper()}", getattr(d, o.cap)))
           for o in OPTIONS if o.cap and o.type is int},
        seconds=float(max(1, env_int("TEACHKIT_JOB_SECONDS", int(d.seconds)))),
        queue=max(0, env_int("TEACHKIT_JOB_QUEUE", d.queue)),
        per_address=max(0, env_int("TEACHKIT_JOBS_PER_ADDRESS", d.per_address)),
        heartbeat_seconds=float(max(1, env_int("TEACHKIT_HEARTBEAT_SECONDS", int(d.heartbeat_seconds)))),
    )


LIMITS = _limits_from_env()


def check_transfer(config, n_styles: int, limits: JobLimits | None = None) -> list[str]:
    """What ``config`` (a Schedule, or a TransferConfig resolved here) asks beyond the classroom limits:
    one message each.  The page's widgets stop at them; :meth:`TransferJob.start` checks again,
    whatever the browser sent."""
    from teachkit.transfer import schedule

    lim = limits or LIMITS
    out = [progress_message(m) for m in over_caps(schedule(config, n_styles), dataclasses.asdict(lim))]
    if n_styles > lim.max_styles:
        out.append(tr("limit_styles", value=n_styles, limit=lim.max_styles))
    return out


# ---- who runs, who waits: one job per session, a bounded queue ----


def session_id() -> str:
    """The id of the Streamlit session whose script is running (``"-"`` outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else "-"


_OWNER_KEY = "_job_owner"


def owner_key() -> str:
    """Who owns a job: a random key kept in this session's state (made on first use).

    Not Streamlit's session id: every in-process test session (AppTest) has the same one, and a
    board keyed by it took three students' jobs for one student's, each new one replacing the last.
    """
    import secrets

    key = st.session_state.get(_OWNER_KEY)
    if not isinstance(key, str):
        key = st.session_state[_OWNER_KEY] = secrets.token_hex(8)
    return key


_CLIENT_KEY = "_job_client"
XSRF_COOKIE = "_streamlit_xsrf"  #: set by Streamlit's server on the first page load, shared by a browser's tabs


def _browser_secret(cookie: str) -> bytes:
    """The secret of Streamlit's XSRF cookie.  Its value is ``2|mask|masked token|time`` (as
    Tornado's): the token XOR the mask repeated, masked afresh on every page load (two tabs of one
    browser can hold different values), so the token is unmasked before it is used; any other form
    is used as it is."""
    parts = cookie.split("|")
    if len(parts) == 4 and parts[0] == "2":
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            if mask:
                return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
        except ValueError:
            pass
    return cookie.encode("utf-8", "replace")


def client_key_for(cookies, address) -> str | None:
    """Who a visitor is, for the one-job-per-client rule: their browser (Streamlit's XSRF cookie,
    hashed), else their address; None when neither is known."""
    import hashlib

    cookie = cookies.get(XSRF_COOKIE) if hasattr(cookies, "get") else None
    if cookie:
        return "browser:" + hashlib.sha256(_browser_secret(str(cookie))).hexdigest()[:20]
    if address:
        return f"address:{address}"
    return None


def _public_address(address) -> str | None:
    """The address a per-address cap counts: None for none, and for loopback (see JobLimits.per_address)."""
    import ipaddress

    if not address:
        return None
    try:
        if ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        return None  # not an address (a test harness): nothing to count
    return str(address)


def client_address() -> str | None:
    """The network address of the running session's visitor, as the per-address cap counts it
    (:func:`_public_address`; None without a server context, e.g. AppTest)."""
    try:
        return _public_address(st.context.ip_address)
    except Exception:  # noqa: BLE001 - no server context
        return None


def client_key() -> str:
    """The client of the running session (:func:`client_key_for` of its cookies and address, read
    once per session); a session without either (AppTest) is a client of its own (:func:`owner_key`)."""
    key = st.session_state.get(_CLIENT_KEY)
    if isinstance(key, str):
        return key
    try:
        context = st.context
        cookies, address = context.cookies, context.ip_address
    except Exception:  # noqa: BLE001 - no server context (AppTest): this session is its own client
        cookies, address = None, None
    key = client_key_for(cookies, address) or owner_key()
    st.session_state[_CLIENT_KEY] = key
    return key


def _session_connected(sid: str) -> bool | None:
    """Whether the browser of session ``sid`` is still connected; None when there is no server
    runtime to ask (AppTest, plain Python): then only the page's heartbeat counts.

    Only a missing runtime means "cannot tell": should Streamlit's API change, the error is raised
    (tests/test_serving.py asks a real runtime), not silently turned into "heartbeat only"."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return None
    return bool(Runtime.instance().is_active_session(sid))


class QueueFull(RuntimeError):
    """Raised by :meth:`JobBoard.submit` when ``queue`` jobs already wait."""


class AddressFull(RuntimeError):
    """Raised by :meth:`JobBoard.submit` when the job's address has ``per_address`` jobs queued or running."""


class JobBoard:
    """The lesson-6 jobs of the whole process: at most one per session, a bounded FIFO queue.

    A job waits in the queue until it is first and a compute slot is free for long work (a transfer
    holds one of :class:`ComputeSlots`' ``long_slots``, never the last free slot: the demos of lessons
    2-5 always find one).  Submitting a job for a session that has one already cancels the old one; a
    new job takes a waiting old one's place in the queue.  ``place(job)`` is the job's 1-based place
    among the waiting ones.
    """

    def __init__(self, limits: JobLimits | None = None, slots: ComputeSlots | None = None):
        self.limits = limits or LIMITS
        self.slots = slots if slots is not None else _SLOTS
        self._lock = threading.Lock()
        self._waiting: list[TransferJob] = []
        self._running: dict[TransferJob, Ticket] = {}
        self._by_session: dict[str, TransferJob] = {}

    def submit(self, job: "TransferJob") -> "TransferJob":
        with self._lock:
            old = self._by_session.get(job.session)
            waiting = [j for j in self._waiting if j is not old]
            if len(waiting) >= self.limits.queue:
                raise QueueFull(len(waiting))
            if job.address is not None and self.limits.per_address:
                mine = [j for j in [*self._waiting, *self._running] if j is not old and j is not job
                        and j.address == job.address and not j.stop_event.is_set()]
                if len(mine) >= self.limits.per_address:
                    raise AddressFull(len(mine))
            if old is not None and old is not job:
                old.cancel(reason="replaced")
            if old is not None and old in self._waiting:  # the new job takes the old one's place
                self._waiting[self._waiting.index(old)] = job
            else:
                self._waiting.append(job)
            self._by_session[job.session] = job
        return job

    def place(self, job: "TransferJob") -> int | None:
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def counts(self) -> tuple[int, int]:
        """(running, waiting)"""
        with self._lock:
            return len(self._running), len(self._waiting)

    def wait_turn(self, job: "TransferJob") -> bool:
        """Block (in the job's thread) until the job holds a compute slot: True; False if it was
        cancelled or abandoned while it waited (its place is then given up).  Only the first job of
        the board asks the slots for one (a long one), and keeps its ticket until it is served."""
        ticket: Ticket | None = None
        try:
            while True:
                if job.stop_event.is_set() or job.check_abandoned():
                    return False
                with self._lock:
                    first = bool(self._waiting) and self._waiting[0] is job
                if first and ticket is None:
                    ticket = self.slots.ticket(long=True)
                if ticket is not None and self.slots.wait(ticket, 0.25):
                    with self._lock:
                        if job in self._waiting:
                            self._waiting.remove(job)
                        self._running[job] = ticket
                    ticket = None
                    if job.stop_event.is_set():  # cancelled in the meantime
                        self.release(job)
                        return False
                    return True
                if not first:
                    job.stop_event.wait(0.25)
        finally:
            if ticket is not None:
                self.slots.withdraw(ticket)
            with self._lock:
                if job in self._waiting and (job.stop_event.is_set() or job.reason):
                    self._waiting.remove(job)

    def release(self, job: "TransferJob") -> None:
        with self._lock:
            ticket = self._running.pop(job, None)
            if ticket is not None:
                self.slots.release(ticket)
            if job in self._waiting:
                self._waiting.remove(job)
            if self._by_session.get(job.session) is job:
                del self._by_session[job.session]


BOARD = JobBoard()


# ---- the background transfer job (lesson 6) ----


class TransferJob:
    """A style transfer running in a background thread, for one session.

    The page starts it and keeps it in ``st.session_state``; the thread waits for its turn on the
    :class:`JobBoard`, then calls :func:`teachkit.transfer.transfer` with ``stop=self.stop_event``
    and a progress callback that only stores the latest report (a background thread must not touch
    Streamlit).  The page polls :meth:`snapshot` from a fragment that reruns every fraction of a
    second; each poll is the page's heartbeat.  **Cancel** sets the event, ``transfer`` returns at
    the end of the current step with ``stopped=True`` and the latest image, which the page then
    offers for download like a finished result.  ``reason`` says why a job stopped early:
    ``"cancelled"``, ``"replaced"`` (a newer job of the same session), ``"abandoned"`` (its session
    went away), ``"time_limit"``, ``"queue_full"`` or ``"over_limits"`` (refused), or None.
    """

    def __init__(self, content, styles, config, net, *, session: str | None = None, board: JobBoard | None = None,
                 address: str | None = None):
        from teachkit.transfer import schedule

        self.content = content
        self.styles = styles
        self.schedule = schedule(config, len(styles))  #: resolved once (a Schedule passes through as it is)
        self.net = net
        self.board = board if board is not None else BOARD
        self.limits = self.board.limits
        self.session = session if session is not None else client_key()  #: one job per client (JobBoard)
        self.runtime_session = session_id()  #: Streamlit's session, asked whether its browser is still there
        self.address = _public_address(address) if address is not None else client_address()  #: per-address cap
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self.state = "queued"  # queued -> running -> done | cancelled | failed
        self.reason: str | None = None
        self.step = 0
        self.total = self.schedule.steps  #: the steps over all scales (scale_steps override steps)
        self.values: dict[str, float] = {}
        self.records: list[dict] = []  # weighted cost terms per step, for the live chart
        self.image = None
        self.message = ""
        self.result = None
        self.error: str | BaseException | None = None  #: a limit's text (worded already), or the error
        self.started = time.time()
        self.last_seen = time.monotonic()
        self.first_image_at: float | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="teachkit-transfer", daemon=True)

    def start(self) -> "TransferJob":
        """Put the job on the board and start its thread.  Nothing runs for a job beyond the limits
        (state 'failed', reason 'over_limits', ``error`` says which) or when the queue is full
        (state 'failed', reason 'queue_full')."""
        problems = check_transfer(self.schedule, len(self.styles), self.limits)
        if problems:  # the page's widgets stop at the limits; this holds whatever the browser sent
            with self._lock:
                self.state, self.reason, self.error = "failed", "over_limits", " ".join(problems)
                self.finished_at = time.time()
            return self
        try:
            self.board.submit(self)
        except (QueueFull, AddressFull) as err:
            with self._lock:
                self.state, self.reason = "failed", "queue_full" if isinstance(err, QueueFull) else "address_full"
                self.finished_at = time.time()
            return self
        self._thread.start()
        return self

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self.stop_event.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def touch(self) -> None:
        """A heartbeat: the session that owns the job is still there."""
        self.last_seen = time.monotonic()

    def check_abandoned(self) -> bool:
        """Cancel the job (reason 'abandoned') if its session has been gone for longer than the
        heartbeat limit: no poll from its page, and the server no longer sees its browser."""
        if _session_connected(self.runtime_session):
            self.touch()
        if time.monotonic() - self.last_seen > self.limits.heartbeat_seconds:
            self.cancel(reason="abandoned")
            return True
        return False

    def _callback(self, p) -> bool:
        with self._lock:
            self.state = "running"
            self.step, self.total = p.step, p.total or self.total
            self.values = dict(p.values)
            self.message = p.message  # a Message: worded in the page's language by snapshot()
            if p.weights is not None:  # the parts of J with the weights the engine multiplied at this step
                from teachkit.costs import weighted_record

                self.records.append(weighted_record({"step": p.step, **p.values}, p.weights))
            if p.image is not None:
                self.image = p.image
                if self.first_image_at is None:
                    self.first_image_at = time.time()
        self.check_abandoned()
        yield_to_quick()  # a click on "Step" first
        return False  # stopping goes through stop_event

    def _run(self) -> None:
        from teachkit.transfer import Engine

        got = False
        try:
            got = self.board.wait_turn(self)
            if not got:
                with self._lock:
                    self.state = "cancelled"
                return
            with self._lock:
                self.state = "running"
            engine = Engine(self.content, self.styles, self.schedule, backbone=self.net)
            result = engine.run(callback=self._callback, stop=self.stop_event, time_limit=self.limits.seconds)
            with self._lock:
                if result.stop_reason == "time_limit" and self.reason is None:
                    self.reason = "time_limit"
                self.result = result
                self.image = result.image
                self.state = "cancelled" if result.stopped else "done"
        except Exception as err:  # noqa: BLE001 - shown on the page, never a traceback
            _log.warning("teachkit app: a transfer job failed: %s: %s", type(err).__name__, err)
            with self._lock:
                # the error itself: the page words it in its language (i18n.error_text); out of
                # memory becomes one line saying what to lower (teachkit.memory)
                self.error = out_of_memory(err, for_app=True) or err
                self.state = "failed"
        finally:
            self.board.release(self)
            self.content = self.styles = None  # the inputs are not needed any more
            self.finished_at = time.time()
            if self.reason == "abandoned":
                _log.warning("teachkit app: a transfer whose session went away was cancelled after %d steps; "
                             "its slot is free", self.step)

    def snapshot(self) -> dict:
        """What the page shows (called from the page: texts in its language); each call is a
        heartbeat of the job's session."""
        self.touch()
        place = self.board.place(self) if self.state == "queued" else None
        with self._lock:
            return {
                "state": self.state, "step": self.step, "total": self.total, "values": dict(self.values),
                "image": self.image, "message": progress_message(self.message), "result": self.result,
                "error": self.error if self.error is None or isinstance(self.error, str) else failure_text(self.error),
                "records": list(self.records), "reason": self.reason, "place": place,
                "elapsed": (self.finished_at or time.time()) - self.started, "limit_seconds": self.limits.seconds,
                "limit_queue": self.limits.queue, "limit_per_address": self.limits.per_address,
            }

    def log_json(self) -> str:
        """The cost log of the result: config, history and final costs (TransferResult.to_dict)."""
        if self.result is None:
            return "{}"
        return json.dumps(self.result.to_dict(), indent=1, allow_nan=False)


def failure_text(err: BaseException) -> str:
    """What a visitor reads about a job that failed, in the session's language: the app's one way of
    showing an exception (:func:`teachkit.lessons.i18n.error_text`) -- a teachkit error keeps its words
    (it says what to change, e.g. teachkit.memory's out-of-memory line), anything else is one general
    sentence, never the exception's own text, which can carry the server's paths or internals (the
    server log has it)."""
    return error_text(err)


def queue_text(snap: dict) -> str:
    """'Waiting: you are number 3 in the queue' (for a queued job's snapshot)."""
    _, waiting = BOARD.counts()
    place = snap.get("place")
    if place is None:
        return tr("p6_queued")
    return tr("job_place", place=place, waiting=waiting, slots=_SLOTS.long_slots)


def reason_text(snap: dict) -> str | None:
    """Why a job ended early, for the page (None for a plain finish, failure or Cancel)."""
    reason = snap.get("reason")
    if reason == "time_limit":
        return tr("job_time_limit", secs=snap.get("limit_seconds", LIMITS.seconds))
    if reason == "replaced":
        return tr("job_replaced")
    if reason == "abandoned":
        return tr("job_abandoned")
    if reason == "queue_full":
        return tr("job_queue_full", n=snap.get("limit_queue", LIMITS.queue))
    if reason == "address_full":
        return tr("job_address_full", n=snap.get("limit_per_address", LIMITS.per_address))
    return None


# ---- lesson 1's dataset folder: off unless the teacher names a data root ----


def _data_root_from_env() -> Path | None:
    raw = os.environ.get("TEACHKIT_DATA_ROOT", "").strip()
    if not raw:
        return None
    root = Path(raw).expanduser()
    try:
        root = root.resolve(strict=True)
    except OSError:
        _log.warning("teachkit app: TEACHKIT_DATA_ROOT=%s does not exist; the folder box stays off", raw)
        return None
    if not root.is_dir():
        _log.warning("teachkit app: TEACHKIT_DATA_ROOT=%s is not a folder; the folder box stays off", raw)
        return None
    return root


DATA_ROOT: Path | None = _data_root_from_env()  #: read once, when the app starts


def folder_box_enabled() -> bool:
    """Whether lesson 1 offers its folder box (only when a data root was named at start)."""
    return DATA_ROOT is not None


def dataset_spec(user_text: str | None, default: str) -> str:
    """The dataset lesson 1 scans for what a visitor typed: ``default`` for nothing, else the
    resolved folder inside the data root (as a string, so ``/x`` and ``/x/`` are one key).

    Raises :class:`FolderRefused` with one neutral message for everything else (no data root,
    a path outside it, a symlink that leads out, a file, a folder that does not exist), so the
    message tells nothing about the server's files.
    """
    text = (user_text or "").strip()
    if not text:
        return default
    if DATA_ROOT is None:
        raise FolderRefused(tr("p1_folder_refused"))
    from teachkit.datasets import resolve_dataset_folder

    try:  # teachkit's check: resolved (links followed), inside the root, an existing folder
        folder = resolve_dataset_folder(text, DATA_ROOT)
    except Exception:  # noqa: BLE001 - every refusal looks the same to the visitor
        raise FolderRefused(tr("p1_folder_refused")) from None
    return str(folder)


# ---- the patch atlas of lesson 1: scanned once per process, shared by every session ----


#: A visitor's folder scan: at most this many image files (more: refused before any scan) ...
SCAN_MAX_FILES = max(1, env_int("TEACHKIT_SCAN_MAX_FILES", 300))
#: ... and at most this many seconds of scanning (then it stops and keeps what it has).
SCAN_SECONDS = max(1, env_int("TEACHKIT_SCAN_SECONDS", 90))
#: Folder scans that may hold a compute slot at once: never every slot -- one always stays for the
#: lessons (with a single slot, visitors' folder scans are off).
FOLDER_SCAN_SLOTS = MAX_JOBS - 1
_FOLDER_SCANS = threading.BoundedSemaphore(max(1, FOLDER_SCAN_SLOTS))


def folder_label(spec: str) -> str:
    """How the page names a folder: its path inside the data root (never the server's path)."""
    if DATA_ROOT is not None:
        with contextlib.suppress(ValueError):
            return Path(spec).relative_to(DATA_ROOT).as_posix()
    return Path(spec).name


@contextlib.contextmanager
def _folder_scan_turn(stop: threading.Event) -> Iterator[bool]:
    """Hold one of the FOLDER_SCAN_SLOTS, then a compute slot; False (nothing held) if ``stop`` is set
    while waiting."""
    while not _FOLDER_SCANS.acquire(timeout=0.25):
        if stop.is_set():
            yield False
            return
    try:
        with compute_slot(stop=stop, long=True) as got:
            yield got
    finally:
        _FOLDER_SCANS.release()


def _current_owner() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return owner_key() if get_script_run_ctx(suppress_warning=True) is not None else None


class AtlasBuilder:
    """Builds one atlas (:func:`teachkit.patches.get_atlas`) in a background thread.

    The first session that asks starts it; every session polls the same builder, so a scan that
    the teacher started keeps running when the page is left, and nobody scans twice.  A scan
    that was done before (on disk, see ``TEACHKIT_CACHE``) is loaded in a moment.

    A visitor's folder (anything but the default dataset) is scanned under limits: at most
    ``SCAN_MAX_FILES`` images (a larger folder is refused before anything is read), at most
    ``SCAN_SECONDS`` of scanning (the atlas of the images done so far is kept, ``meta['stopped']``
    is ``'time_limit'``), only in one of the ``FOLDER_SCAN_SLOTS`` (so a lesson always finds a
    compute slot), and the session that started it can :meth:`cancel` it.
    """

    def __init__(self, spec: str, net, layers):
        self.spec = spec
        self.net = net
        self.layers = tuple(layers)
        self.folder = spec != atlas_default_dataset()  #: a visitor's folder: scanned under the limits
        self.label = folder_label(spec) if self.folder else spec  #: what the page calls the dataset
        self.owner = _current_owner() if self.folder else None  #: the session that may cancel it
        self.step = 0
        self.total = 0
        self.atlas = None
        self.error: str | None = None
        self.exception: BaseException | None = None  #: the error itself (the page words it per language)
        self.stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="teachkit-atlas", daemon=True)
        self._thread.start()

    def _progress(self, p) -> bool:
        self.step, self.total = p.step, p.total
        yield_to_quick()  # a click on "Step" first
        return False

    def can_cancel(self, owner: str | None) -> bool:
        return self.folder and owner is not None and owner == self.owner and not self.done.is_set()

    def cancel(self) -> None:
        """Stop the scan (or the wait for its turn) now; the page then goes back to the default dataset."""
        self.stop.set()

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set()

    def _run(self) -> None:
        from teachkit.datasets import get_dataset
        from teachkit.patches import get_atlas

        try:
            if not self.folder:
                with compute_slot(long=True):  # minutes on a first start: never the demos' last slot
                    self.atlas = get_atlas(self.spec, backbone=self.net, layers=self.layers, k=ATLAS_K,
                                           image_size=atlas_image_size(), callback=self._progress)
                return
            # listed under the file cap first (a refusal costs no slot), then scanned under the time cap
            data = get_dataset(self.spec, max_files=SCAN_MAX_FILES, label=self.label)
            with _folder_scan_turn(self.stop) as got:
                if got:
                    self.atlas = get_atlas(data, backbone=self.net, layers=self.layers, k=ATLAS_K,
                                           image_size=atlas_image_size(), callback=self._progress,
                                           stop=self.stop, time_limit=SCAN_SECONDS)
        except Exception as err:  # noqa: BLE001 - shown on the page
            self.error = str(err) or type(err).__name__
            self.exception = err
        finally:
            self.done.set()


def cancel_folder_scan(builder: AtlasBuilder) -> None:
    """The Cancel button's callback (lesson 1): stop the scan, forget it, empty the folder box."""
    builder.cancel()
    forget_atlas_builder(builder.spec)
    st.session_state["p1_folder"] = ""
    st.session_state["p1_note"] = "p1_scan_cancelled"


MAX_SCANS = max(1, env_int("TEACHKIT_MAX_SCANS", 3))


class BuildersBusy(RuntimeError):
    """Every builder slot holds a scan that is still running."""


_BUILDERS: "collections.OrderedDict[tuple, AtlasBuilder]" = collections.OrderedDict()
_BUILDERS_LOCK = threading.Lock()


def _builder_key(spec: str, layers) -> tuple:
    return (spec, BACKBONE, atlas_image_size(), tuple(layers))


def atlas_builder(spec: str, net, layers) -> AtlasBuilder:
    """The (shared) builder of the atlas of dataset ``spec``; started on first use.

    ``spec`` is the default dataset or a folder from :func:`dataset_spec`.  Besides the default
    dataset's, at most ``MAX_SCANS`` builders are kept: a new one frees the least recently used
    finished one (and its atlas); when all are still scanning, :class:`BuildersBusy` is raised.
    """
    key = _builder_key(spec, layers)
    pinned = atlas_default_dataset()  # the default dataset is always there, and not counted
    with _BUILDERS_LOCK:
        b = _BUILDERS.get(key)
        if b is not None:
            _BUILDERS.move_to_end(key)
            return b
        if spec != pinned:
            if FOLDER_SCAN_SLOTS < 1:  # one compute slot only: it stays for the lessons
                raise BuildersBusy(tr("p1_scans_off"))
            others = [k for k in _BUILDERS if k[0] != pinned]
            while len(others) >= MAX_SCANS:
                finished = next((k for k in others if _BUILDERS[k].done.is_set()), None)
                if finished is None:
                    raise BuildersBusy(tr("p1_scans_busy", n=MAX_SCANS))
                del _BUILDERS[finished]
                others.remove(finished)
        b = _BUILDERS[key] = AtlasBuilder(spec, net, layers)
        return b


def forget_atlas_builder(spec: str, layers=None) -> None:
    """Drop a failed builder so that the next visit tries again."""
    with _BUILDERS_LOCK:
        for key in [k for k in _BUILDERS if k[0] == spec and (layers is None or k[3] == tuple(layers))]:
            del _BUILDERS[key]


def builder_count() -> int:
    with _BUILDERS_LOCK:
        return len(_BUILDERS)


# ---- interface strings of this module and lessons/uploads.py (added to lessons/_strings.py's table) ----

STRINGS = {
    "uploads_off": {
        "en": "Uploads are switched off on this server (its upload limit is larger than the app's). "
              "Use the samples.",
        "zh": "本服务器已关闭上传（其上传上限大于本应用的上限）。请使用示例图片。",
    },
    "dropzone_button": {"en": "Upload", "zh": "上传"},
    "dropzone_limit": {"en": "{mb}MB per file • {types}", "zh": "每个文件最大 {mb} MB • {types}"},
    "uploads_too_many": {
        "en": "{n} style images uploaded: the first {limit} are used.",
        "zh": "上传了 {n} 张风格图：只使用前 {limit} 张。",
    },
    "limit_size": {"en": "Size {value} px is above the classroom limit of {limit} px.",
                   "zh": "尺寸 {value} 像素超过了课堂上限 {limit} 像素。"},
    "limit_steps": {"en": "{value} steps is above the classroom limit of {limit}.",
                    "zh": "{value} 步超过了课堂上限 {limit} 步。"},
    "limit_style_scale": {"en": "Style scale {value} is above the classroom limit of {limit}.",
                          "zh": "风格缩放 {value} 超过了课堂上限 {limit}。"},
    "limit_history": {"en": "L-BFGS memory {value} is above the classroom limit of {limit}.",
                      "zh": "L-BFGS 记忆长度 {value} 超过了课堂上限 {limit}。"},
    "limit_styles": {"en": "{value} style images is above the classroom limit of {limit}.",
                     "zh": "{value} 张风格图超过了课堂上限 {limit} 张。"},
    "job_place": {
        "en": "Waiting: you are number {place} of {waiting} in the queue (transfers compute {slots} at a time, "
              "so that the other lessons' demos always find the CPU free).",
        "zh": "排队中：你在 {waiting} 人中排第 {place} 位（风格迁移任务每次只运行 {slots} 个，好让其他课的演示随时有 CPU 可用）。",
    },
    "waiting_place": {
        "en": "Waiting for the CPU: you are number {place} of {waiting} in the queue ({secs:.0f} s so far). "
              "Your demo starts by itself; while others wait, each demo runs a little shorter.",
        "zh": "正在等待 CPU：你在队列 {waiting} 人中排第 {place} 位（已等 {secs:.0f} 秒）。轮到你时演示会自动开始；"
              "排队的人多时，每个演示会运行得短一些。",
    },
    "job_time_limit": {"en": "Stopped at the classroom time limit ({secs:.0f} s); the latest image is kept.",
                       "zh": "已到课堂时间上限（{secs:.0f} 秒），任务停止；保留最新的图像。"},
    "job_replaced": {"en": "Stopped: a newer transfer of yours (in this tab or another) took its place: "
                           "one transfer per student.",
                     "zh": "已停止：你新开始的任务（在这个或另一个标签页里）取代了它：每位同学同时只能运行一个任务。"},
    "job_abandoned": {"en": "Stopped: this page was away too long, so its place went to others.",
                      "zh": "已停止：此页面离开太久，它的位置已让给其他同学。"},
    "job_address_full": {
        "en": "This computer already has {n} transfers queued or running (in other tabs or windows). Cancel one, "
              "or wait until one has finished, then start again.",
        "zh": "这台电脑已有 {n} 个风格迁移任务在排队或运行（在其他标签页或窗口中）。请先取消一个，或等其中一个完成后再开始。",
    },
    "job_queue_full": {"en": "The queue is full ({n} transfers are waiting). Please try again in a few minutes.",
                       "zh": "队列已满（{n} 个任务在等待）。请过几分钟再试。"},
    "p1_folder_refused": {"en": "This folder cannot be used. Type a folder inside the data folder your teacher set up.",
                          "zh": "无法使用这个文件夹。请输入老师设定的数据文件夹中的某个文件夹。"},
    "p1_scans_off": {"en": "Scanning your own folders is off on this server (it runs one computation at a time).",
                     "zh": "本服务器一次只运行一项计算，因此无法扫描自选的文件夹。"},
    "p1_scan_cancel": {"en": "Cancel the scan", "zh": "取消扫描"},
    "p1_scan_cancelled": {"en": "The folder scan was cancelled; the sample photos are shown.",
                          "zh": "文件夹扫描已取消，现在显示的是示例照片。"},
    "p1_scan_time_limit": {
        "en": "The scan stopped at the classroom time limit ({secs} s): the patches come from the first "
              "{n} of {total} images.",
        "zh": "扫描到达课堂时间上限（{secs} 秒）后停止：图像块只来自 {total} 张图中的前 {n} 张。",
    },
    "p1_scans_busy": {"en": "{n} folders are being scanned already; please try again when one has finished.",
                      "zh": "已有 {n} 个文件夹正在扫描；请等其中一个完成后再试。"},
}
for _key, _texts in STRINGS.items():
    UI.setdefault(_key, _texts)
