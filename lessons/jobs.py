"""Background work shared fairly by a class on one machine: :class:`ComputeSlots` (heavy work in order of
arrival, never all slots long, a lane of its own for lesson 3's "Step"), :class:`LiveView` (progress drawn
into the page), lesson 6's :class:`TransferJob` on the :class:`JobBoard` (one job per client, a bounded
queue, :data:`LIMITS`) and lesson 1's :class:`AtlasBuilder`.  Worker threads never call Streamlit.
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

from teachkit.lessons.i18n import error_text, out_of_memory_on_page, progress_message, tr, value_label
from teachkit.lessons.settings import BACKBONE, atlas_default_dataset, atlas_image_size, env_int

_log = logging.getLogger(__name__)

MAX_JOBS = max(1, env_int("TEACHKIT_MAX_JOBS", 2))
ATLAS_K = 9
#: the shortest a demo of lessons 2-5 is cut to when others queue behind it (:func:`demo_limit`)
DEMO_MIN_SECONDS = float(max(1, env_int("TEACHKIT_DEMO_MIN_SECONDS", 6)))


@dataclasses.dataclass(eq=False)
class Ticket:
    """A place in the queue of :class:`ComputeSlots` (``long``: minutes of work; ``background``: last)."""

    seq: int
    long: bool
    background: bool
    granted: bool = False
    behind: int = 0  #: visitors' computations waiting when it was granted (for demo_limit) ...
    free: int = 1  #: ... and the slots they could use


class ComputeSlots:
    """``n`` compute slots, first come first served by :class:`Ticket`; long work holds at most ``long_slots``
    (``n - 1``), so a demo always finds one and passes the long tickets that cannot start."""

    def __init__(self, n: int, long_slots: int | None = None):
        self.n = max(1, int(n))
        self.long_slots = max(1, min(self.n, self.n - 1 if long_slots is None else int(long_slots)))
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []  # in serving order: visitors first, then background
        self._held = 0
        self._held_long = 0
        self._seq = 0

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
        """The waiting tickets served before ``t`` (those before it that may start)."""
        out = []
        for u in self._waiting:
            if u is t:
                break
            if self._may_start(u):
                out.append(u)
        return out

    def _grantable(self, t: Ticket) -> bool:
        free = self.n - self._held
        if t.long:  # long tickets are served in their order, within the long slots
            free = min(free, self.long_slots - self._held_long)
        return free > 0 and len(self._ahead(t)) < free

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
        """Give up a place in the queue, or the slot of a granted ticket."""
        with self._cond:
            if t.granted:
                self._release(t)
            elif t in self._waiting:
                self._waiting.remove(t)
                self._cond.notify_all()

    def release(self, t: Ticket | None = None) -> None:
        """Give back the slot of ticket ``t``, or (without one) a plain hold from :meth:`acquire`."""
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
        """``(place, waiting)``: ``t``'s 1-based place and how many visitors' computations wait; None once granted."""
        with self._cond:
            if t.granted or t not in self._waiting:
                return None
            waiting = sum(1 for u in self._waiting if not u.background)
            return len(self._ahead(t)) + 1, max(waiting, 1)

    def counts(self) -> tuple[int, int, int]:
        """(held, of which long, waiting)"""
        with self._cond:
            return self._held, self._held_long, len(self._waiting)

    def wait_idle(self, timeout: float) -> None:
        """Block up to ``timeout`` s until no slot is held."""
        with self._cond:
            self._cond.wait_for(lambda: not self._held, timeout)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        t = self.ticket()
        if self.wait(t, (timeout if blocking else 0)):
            return True
        self.withdraw(t)
        return False


_SLOTS = ComputeSlots(MAX_JOBS)
#: computations of a second or less (one step of lesson 3's demo) run in a lane of their own
QUICK_JOBS = max(1, env_int("TEACHKIT_QUICK_JOBS", 2))
_QUICK = ComputeSlots(QUICK_JOBS, long_slots=QUICK_JOBS)
QUICK_PRIORITY_SECONDS = 0.5  #: the longest one step of long work waits for the quick lane
_HELD = threading.local()  #: the ticket of the compute slot this thread holds (for demo_limit)


def quick_running() -> int:
    """How many quick computations (clicks on lesson 3's "Step") run now."""
    return _QUICK.counts()[0]


def yield_to_quick(max_wait: float | None = None) -> float:
    """Between two steps of long work: let a running quick computation finish first (at most ``max_wait`` s,
    default ``QUICK_PRIORITY_SECONDS``), so a click gets the CPU.  Returns the seconds waited."""
    if not quick_running():
        return 0.0
    t0 = time.monotonic()
    _QUICK.wait_idle(QUICK_PRIORITY_SECONDS if max_wait is None else max_wait)
    return time.monotonic() - t0


@contextlib.contextmanager
def compute_slot(stop: threading.Event | None = None,
                 on_wait: Callable[[int, int, float], None] | None = None, *, quick: bool = False,
                 long: bool = False, background: bool = False, every: float = 1.0) -> Iterator[bool]:
    """Hold a compute slot while the block runs, calling ``on_wait(place, waiting, seconds)`` every ``every`` s
    while it waits (an exception there gives the place up); yields False when ``stop`` was set meanwhile."""
    slots = _QUICK if quick else _SLOTS
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
    _HELD.ticket = outer if quick else ticket
    try:
        yield True
    finally:
        _HELD.ticket = outer
        slots.release(ticket)


_CONFIGURED = object()


def demo_limit(seconds=_CONFIGURED) -> float | None:
    """The time limit of a demo that holds its slot: ``seconds`` (default ``TEACHKIT_DEMO_SECONDS``),
    cut to ``seconds x free / (free + waiting)`` when visitors wait behind it (``free``: the slots
    demos can use), never below ``DEMO_MIN_SECONDS`` nor above ``seconds``."""
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
    """:func:`compute_slot` for work in the page's own thread; the page shows its place while it waits,
    and memory running out ends the demo with one line (:func:`out_of_memory_on_page`)."""
    note = st.empty()

    def waiting(place: int, total: int, secs: float) -> None:
        if quick or not place:
            note.info(tr("waiting_cpu"))
        else:
            note.info(tr("waiting_place", place=place, waiting=total, secs=secs))

    with compute_slot(on_wait=waiting, quick=quick):
        note.empty()
        with out_of_memory_on_page():
            yield


class LiveView:
    """A progress callback drawing a bar, a status line and the latest image; the time of the first image
    goes to ``st.session_state['_timings']`` (for benchmarks/app.py)."""

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

    def __call__(self, p) -> bool:
        frac = min(1.0, p.step / p.total) if p.total else 0.0
        shown = "  ".join(f"{value_label(k)} = {p.values[k]:.3g}" for k in self.show_values if k in p.values)
        status = tr("progress_line", step=p.step, total=p.total or "?", secs=time.perf_counter() - self.started)
        self.bar.progress(frac, text=f"{status}  {shown}".strip())
        if p.image is not None:
            self.slot.image(p.image, caption=self.caption, width=self.width)
            if self.first_image_s is None:
                self.first_image_s = time.perf_counter() - self.started
                timings = st.session_state.setdefault("_timings", {})
                timings[self.name] = {"first_image_at": time.time(), "first_image_s": self.first_image_s}
        return False

    def done(self) -> None:
        self.bar.empty()


@dataclasses.dataclass(frozen=True)
class JobLimits:
    """What one lesson-6 job may ask for: the caps keep its own memory within ``memory_budget_mib`` (measured
    by ``benchmarks/load.py --job-peak``); the option caps are declared in teachkit/options.py."""

    max_size: int = int(served_caps()["max_size"])  #: long side of G, px
    max_steps: int = int(served_caps()["max_steps"])
    max_style_scale: float = float(served_caps()["max_style_scale"])  #: style long side <= 512 * 2.0 = 1024 px
    max_history: int = int(served_caps()["max_history"])  #: L-BFGS pairs kept (each costs 2 image-sized vectors)
    max_styles: int = 4  #: style images in one job (samples + uploads)
    seconds: float = 300.0  #: running time limit; the job stops and keeps its latest image
    queue: int = 8  #: jobs that may wait for a slot; more are refused with a message
    #: jobs queued or running from one address (0: no cap), as a student can renew the browser cookie the
    #: one-job rule keys on; loopback is exempt (the teacher's machine, or a reverse proxy on it)
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
    """One message per value of ``config`` beyond the classroom limits (checked again at the job's start)."""
    from teachkit.transfer import schedule

    lim = limits or LIMITS
    out = [progress_message(m) for m in over_caps(schedule(config, n_styles), dataclasses.asdict(lim))]
    if n_styles > lim.max_styles:
        out.append(tr("limit_styles", value=n_styles, limit=lim.max_styles))
    return out


def session_id() -> str:
    """The id of the Streamlit session whose script is running (``"-"`` outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else "-"


_OWNER_KEY = "_job_owner"
_CLIENT_KEY = "_job_client"
XSRF_COOKIE = "_streamlit_xsrf"  #: set by Streamlit's server on the first page load, shared by a browser's tabs


def owner_key() -> str:
    """A random key kept in this session's state (not Streamlit's session id: every AppTest session shares one)."""
    import secrets

    key = st.session_state.get(_OWNER_KEY)
    if not isinstance(key, str):
        key = st.session_state[_OWNER_KEY] = secrets.token_hex(8)
    return key


def _browser_secret(cookie: str) -> bytes:
    """The token of Streamlit's XSRF cookie ``2|mask|masked token|time`` unmasked (the mask changes with every
    page load); any other form as it is."""
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
    """Who a visitor is: their browser (the XSRF cookie's token, hashed), else their address, else None."""
    import hashlib

    cookie = cookies.get(XSRF_COOKIE) if hasattr(cookies, "get") else None
    if cookie:
        return "browser:" + hashlib.sha256(_browser_secret(str(cookie))).hexdigest()[:20]
    if address:
        return f"address:{address}"
    return None


def _public_address(address) -> str | None:
    """The address the per-address cap counts: None for none, loopback, or not an address."""
    import ipaddress

    if not address:
        return None
    try:
        if ipaddress.ip_address(str(address).split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        return None
    return str(address)


def client_address() -> str | None:
    """The running session's visitor's address as the per-address cap counts it (None without a server)."""
    try:
        return _public_address(st.context.ip_address)
    except Exception:  # noqa: BLE001 - no server context
        return None


def client_key_of(sid: str) -> str | None:
    """Session ``sid``'s client (:func:`client_key_for`) from its connection; None without one."""
    from streamlit.runtime import Runtime

    client = Runtime.instance().get_client(sid) if Runtime.exists() else None
    context = getattr(client, "client_context", None)
    return None if context is None else client_key_for(context.cookies, _public_address(context.remote_ip))


def client_key() -> str:
    """The running session's client (read once per session); without cookie or address, the session itself."""
    key = st.session_state.get(_CLIENT_KEY)
    if not isinstance(key, str):
        key = st.session_state[_CLIENT_KEY] = client_key_of(session_id()) or owner_key()
    return key


def _session_connected(sid: str) -> bool | None:
    """Whether session ``sid``'s browser is still connected; None without a server runtime."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return None
    return bool(Runtime.instance().is_active_session(sid))


class QueueFull(RuntimeError):
    """:meth:`JobBoard.submit`: ``queue`` jobs already wait."""


class AddressFull(RuntimeError):
    """:meth:`JobBoard.submit`: the job's address has ``per_address`` jobs queued or running."""


class JobBoard:
    """Lesson 6's jobs, each on a long ticket: a client's new job cancels its old one and takes over its place
    in the queue; at most ``limits.queue`` wait and ``limits.per_address`` come from one address."""

    def __init__(self, limits: JobLimits | None = None, slots: ComputeSlots | None = None):
        self.limits = limits or LIMITS
        self.slots = slots if slots is not None else _SLOTS
        self._lock = threading.Lock()
        self._tickets: dict[TransferJob, Ticket] = {}  # every job on the board
        self._by_client: dict[str, TransferJob] = {}

    def submit(self, job: "TransferJob") -> "TransferJob":
        with self._lock:
            old = self._by_client.get(job.session)
            others = [j for j in self._tickets if j is not old and j is not job]
            if sum(not self._tickets[j].granted for j in others) >= self.limits.queue:
                raise QueueFull()
            if job.address is not None and self.limits.per_address:
                mine = [j for j in others if j.address == job.address and not j.stop_event.is_set()]
                if len(mine) >= self.limits.per_address:
                    raise AddressFull()
            ticket = None
            if old is not None and old is not job:
                old.cancel(reason="replaced")
                if old in self._tickets and not self._tickets[old].granted:
                    ticket = self._tickets.pop(old)
            self._tickets[job] = ticket or self.slots.ticket(long=True)
            self._by_client[job.session] = job
        return job

    def place(self, job: "TransferJob") -> int | None:
        """The job's 1-based place among this board's waiting jobs; None when it is not waiting."""
        with self._lock:
            t = self._tickets.get(job)
            if t is None or t.granted:
                return None
            return 1 + sum(1 for u in self._tickets.values() if not u.granted and u.seq < t.seq)

    def counts(self) -> tuple[int, int]:
        """(running, waiting)"""
        with self._lock:
            running = sum(t.granted for t in self._tickets.values())
            return running, len(self._tickets) - running

    def wait_turn(self, job: "TransferJob") -> bool:
        """Block until the job holds its slot (True); False when it was cancelled, replaced or abandoned."""
        with self._lock:
            ticket = self._tickets.get(job)
        if ticket is None:
            return False
        while not self.slots.wait(ticket, 0.25):
            if job.stop_event.is_set() or job.check_abandoned():
                self.release(job)
                return False
        with self._lock:  # submit() hands a ticket on under this lock
            if self._tickets.get(job) is ticket and not job.stop_event.is_set():
                return True
        self.release(job)
        return False

    def release(self, job: "TransferJob") -> None:
        with self._lock:
            ticket = self._tickets.pop(job, None)
            if self._by_client.get(job.session) is job:
                del self._by_client[job.session]
        if ticket is not None:
            self.slots.withdraw(ticket)


BOARD = JobBoard()


class TransferJob:
    """A style transfer in a background thread for one client, polled by its page through :meth:`snapshot`
    (a heartbeat).  ``reason`` says why it stopped early: 'cancelled', 'replaced', 'abandoned',
    'time_limit', or refused: 'queue_full', 'address_full', 'over_limits'."""

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
        """Put the job on the board and start it; beyond the limits or with a full queue it fails at once."""
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
        """A heartbeat: the job's page is still there."""
        self.last_seen = time.monotonic()

    def check_abandoned(self) -> bool:
        """Cancel the job when its page has not polled for the heartbeat limit and its browser has gone."""
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
        yield_to_quick()
        return False  # stopping goes through stop_event

    def _run(self) -> None:
        from teachkit.transfer import Engine

        try:
            if not self.board.wait_turn(self):
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
            with self._lock:  # worded by the page (i18n.error_text); out of memory: what to lower
                self.error = out_of_memory(err, for_app=True) or err
                self.state = "failed"
        finally:
            self.board.release(self)
            self.content = self.styles = None
            self.finished_at = time.time()
            if self.reason == "abandoned":
                _log.warning("teachkit app: a transfer whose session went away was cancelled after %d steps; "
                             "its slot is free", self.step)

    def snapshot(self) -> dict:
        """What the page shows, texts in its language; each call is a heartbeat."""
        self.touch()
        place = self.board.place(self) if self.state == "queued" else None
        with self._lock:
            return {
                "state": self.state, "step": self.step, "total": self.total, "values": dict(self.values),
                "image": self.image, "message": progress_message(self.message), "result": self.result,
                "error": self.error if self.error is None or isinstance(self.error, str) else error_text(self.error),
                "records": list(self.records), "reason": self.reason, "place": place,
                "elapsed": (self.finished_at or time.time()) - self.started, "limit_seconds": self.limits.seconds,
                "limit_queue": self.limits.queue, "limit_per_address": self.limits.per_address,
            }

    def log_json(self) -> str:
        """The cost log of the result (TransferResult.to_dict)."""
        if self.result is None:
            return "{}"
        return json.dumps(self.result.to_dict(), indent=1, allow_nan=False)


def queue_text(snap: dict) -> str:
    """'Waiting: you are number 3 of 7 in the queue' for a queued job's snapshot."""
    _, waiting = BOARD.counts()
    place = snap.get("place")
    if place is None:
        return tr("p6_queued")
    return tr("job_place", place=place, waiting=waiting, slots=_SLOTS.long_slots)


def reason_text(snap: dict) -> str | None:
    """Why a job ended early (None for a plain finish, a failure or Cancel)."""
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


def _data_root_from_env() -> Path | None:
    raw = os.environ.get("TEACHKIT_DATA_ROOT", "").strip()
    if not raw:
        return None
    try:
        root = Path(raw).expanduser().resolve(strict=True)
    except OSError:
        root = None
    if root is None or not root.is_dir():
        _log.warning("teachkit app: TEACHKIT_DATA_ROOT=%s is not a folder; the folder box stays off", raw)
        return None
    return root


DATA_ROOT: Path | None = _data_root_from_env()  #: read once, when the app starts


def folder_box_enabled() -> bool:
    return DATA_ROOT is not None


def dataset_spec(user_text: str | None, default: str) -> str:
    """The dataset for what a visitor typed: ``default``, or the resolved folder inside the data root; else
    :class:`FolderRefused` with one message that tells nothing about the server's files."""
    text = (user_text or "").strip()
    if not text:
        return default
    if DATA_ROOT is None:
        raise FolderRefused(tr("p1_folder_refused"))
    from teachkit.datasets import resolve_dataset_folder

    try:
        folder = resolve_dataset_folder(text, DATA_ROOT)
    except Exception:  # noqa: BLE001 - every refusal looks the same to the visitor
        raise FolderRefused(tr("p1_folder_refused")) from None
    return str(folder)


#: a visitor's folder scan: at most this many image files (more: refused before any scan) ...
SCAN_MAX_FILES = max(1, env_int("TEACHKIT_SCAN_MAX_FILES", 300))
#: ... and at most this many seconds of scanning (then it stops and keeps what it has)
SCAN_SECONDS = max(1, env_int("TEACHKIT_SCAN_SECONDS", 90))
#: folder scans hold long tickets, so never the last slot; with a single slot they are off
FOLDER_SCAN_SLOTS = MAX_JOBS - 1
MAX_SCANS = max(1, env_int("TEACHKIT_MAX_SCANS", 3))


def folder_label(spec: str) -> str:
    """How the page names a folder: its path inside the data root (never the server's path)."""
    if DATA_ROOT is not None:
        with contextlib.suppress(ValueError):
            return Path(spec).relative_to(DATA_ROOT).as_posix()
    return Path(spec).name


def _current_owner() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return owner_key() if get_script_run_ctx(suppress_warning=True) is not None else None


class AtlasBuilder:
    """Builds one atlas in a background thread, for every session; a visitor's folder under limits (at most
    ``SCAN_MAX_FILES`` images, ``SCAN_SECONDS`` keeping what it has), cancellable by the session that asked."""

    def __init__(self, spec: str, net, layers):
        self.spec, self.net, self.layers = spec, net, tuple(layers)
        self.folder = spec != atlas_default_dataset()
        self.label = folder_label(spec) if self.folder else spec  #: what the page calls the dataset
        self.owner = _current_owner() if self.folder else None  #: the session that may cancel it
        self.step = self.total = 0
        self.atlas = None
        self.error: str | None = None
        self.exception: BaseException | None = None  #: the error itself (the page words it)
        self.stop, self.done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="teachkit-atlas", daemon=True)
        self._thread.start()

    def _progress(self, p) -> bool:
        self.step, self.total = p.step, p.total
        yield_to_quick()
        return False

    def can_cancel(self, owner: str | None) -> bool:
        return self.folder and owner is not None and owner == self.owner and not self.done.is_set()

    def cancel(self) -> None:
        """Stop the scan (or its wait for a slot) now."""
        self.stop.set()

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set()

    def _run(self) -> None:
        from teachkit.datasets import get_dataset
        from teachkit.patches import get_atlas

        options = dict(backbone=self.net, layers=self.layers, k=ATLAS_K, image_size=atlas_image_size(),
                       callback=self._progress)
        try:
            if not self.folder:
                with compute_slot(long=True):
                    self.atlas = get_atlas(self.spec, **options)
                return
            data = get_dataset(self.spec, max_files=SCAN_MAX_FILES, label=self.label)  # a refusal costs no slot
            with compute_slot(stop=self.stop, long=True) as got:
                if got:
                    self.atlas = get_atlas(data, stop=self.stop, time_limit=SCAN_SECONDS, **options)
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


class BuildersBusy(RuntimeError):
    """Every builder slot holds a scan that is still running."""


_BUILDERS: "collections.OrderedDict[tuple, AtlasBuilder]" = collections.OrderedDict()
_BUILDERS_LOCK = threading.Lock()


def atlas_builder(spec: str, net, layers) -> AtlasBuilder:
    """The shared builder of ``spec``'s atlas, started on first use; besides the default one, at most
    ``MAX_SCANS`` are kept (a new one frees a finished one, else :class:`BuildersBusy`)."""
    key = (spec, BACKBONE, atlas_image_size(), tuple(layers))
    pinned = atlas_default_dataset()
    with _BUILDERS_LOCK:
        b = _BUILDERS.get(key)
        if b is not None:
            _BUILDERS.move_to_end(key)
            return b
        if spec != pinned:
            if FOLDER_SCAN_SLOTS < 1:
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
    """Drop a builder (a failed or cancelled scan) so that the next visit starts again."""
    with _BUILDERS_LOCK:
        for key in [k for k in _BUILDERS if k[0] == spec and (layers is None or k[3] == tuple(layers))]:
            del _BUILDERS[key]
