r"""The teacher's check of submissions: ``teachkit exercises check FILE.py|FILE.ipynb ... [--csv]``.

The teacher's process decides: it runs the checks itself on fresh random inputs, and each student
function it calls asks a worker process (:mod:`.worker`: one per file, in its own process group, limited
where the OS allows) what the function returns.  Code that runs while the file loads can do anything
there, but only answers the calls it is sent, and its answers are decoded strictly.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import concurrent.futures
import contextlib
import csv
import functools
import io
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import torch

from ..messages import InputError, Message, TeachkitError, language, text
from . import worker as wire
from .checks import CHECKS, InputChanged, M, TooSlow

__all__ = ["FUNCTIONS", "TIMEOUT_S", "definitions", "grade_file", "grade_files", "table", "add_exercises_parser"]

#: exercise -> the names its function is found by: the notebooks', then the course assignment's
FUNCTIONS = {
    "receptive_field": ("rf_sizes",),
    "total_cost": ("total_cost",),
    "content_cost": ("content_cost", "compute_content_cost"),
    "gram_matrix": ("gram_matrix",),
    "layer_style_cost": ("layer_style_cost", "compute_layer_style_cost"),
    "style_cost": ("style_cost", "compute_style_cost"),
}
TIMEOUT_S = 30  #: seconds per exercise (and for loading the file)
START_S = 120  #: seconds for a worker's Python and torch to start (not the student's time)
MEMORY_MB, OUTPUT_MB, FILE_MB = 1024, 16, 8  #: the worker's memory above its start, its files; a submission's size
CONSTANTS = ("notes", "slides", "assignment")
TOKEN = "TEACHKIT_GRADE_WORKER"  #: in each worker's environment: finds what escaped its session
_PARSING = threading.Lock()
_CHEAP_CALLS = {"partial", "float", "int", "tuple", "list", "dict", "set", "frozenset"}


class _Broken(BaseException):
    """The worker ended or answered something unexpected (a BaseException: the checks let it through)."""

    def __init__(self, message: Message):
        super().__init__(message.id)
        self.message = message


def _cells(path: Path) -> list[str]:
    """The code of a .py file (one piece) or of a notebook's code cells (one piece each)."""
    def unreadable(reason) -> InputError:
        return InputError("exercises.grade.unreadable", path=path.name, reason=reason)

    if not path.exists():
        raise unreadable(M("image.not_found"))
    if not path.is_file():
        raise unreadable(M("exercises.grade.not_a_file"))
    try:
        if path.stat().st_size > FILE_MB << 20:
            raise unreadable(M("exercises.grade.too_large", mb=FILE_MB))
        raw = path.read_bytes().decode("utf-8-sig")  # Windows Notepad's BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(M("exercises.grade.os_error", detail=str(exc))) from None
    if path.suffix.lower() != ".ipynb":
        return [raw]
    try:
        return ["".join(c["source"]) if isinstance(c["source"], list) else str(c["source"])
                for c in json.loads(raw)["cells"] if c.get("cell_type") == "code"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise unreadable(M("exercises.grade.not_notebook")) from None


def _cheap(node: ast.AST) -> bool:
    """An expression that computes nothing long: no call but a few builtins and functools.partial (a
    lambda's body runs only when called)."""
    if isinstance(node, ast.Lambda):
        return True
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) not in _CHEAP_CALLS:
        return False
    return all(_cheap(child) for child in ast.iter_child_nodes(node))


def _kept(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Try):
        return all(_kept(n) for n in [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)])
    return isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _cheap(node.value)


def definitions(pieces: list[str]) -> list[str]:
    """The imports, definitions and cheap assignments of the pieces of code, in order; a notebook cell that
    is not Python is skipped, a ``.py`` file with a syntax error raises :class:`SyntaxError`."""
    kept: list[str] = []
    for piece in pieces:
        # IPython magics and shell lines (%matplotlib inline, !pip ...) are not Python; CRLF and CR become LF
        piece = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in piece.splitlines())
        try:
            tree = ast.parse(piece)
        except SyntaxError:
            if len(pieces) == 1:
                raise
            continue
        kept += ["".join(f"@{ast.get_source_segment(piece, d)}\n" for d in getattr(node, "decorator_list", []))
                 + (ast.get_source_segment(piece, node) or "") for node in tree.body if _kept(node)]
    return kept


def _sweep(token: str) -> None:
    """Kill the processes that left the worker's session (a detached child): those whose environment
    holds its token (Linux's /proc; elsewhere there is nothing to read)."""
    mark = f"{TOKEN}={token}".encode()
    for _ in range(5):
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ValueError):
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        if not found:
            return


class _Worker:
    """One worker process with one file's definitions loaded; ``ready`` says which names it defines."""

    def __init__(self, code: list[str], filename: str, names: list[str], limit: float):
        self.token, self.limit, self.calls, self.dead = secrets.token_hex(8), limit, 0, None
        self.tmp = tempfile.TemporaryDirectory(prefix="teachkit-grade-")
        self.log = tempfile.TemporaryFile(dir=self.tmp.name)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", TOKEN: self.token}
        group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
        self.proc = subprocess.Popen([sys.executable, wire.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, cwd=self.tmp.name, env=env, **group)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.deadline = time.monotonic() + START_S
        self._ask(None, "started")  # Python and torch have loaded: the file's own time starts now
        self.deadline = time.monotonic() + limit
        self.ready = self._ask({"code": code, "filename": filename, "names": names, "memory_mb": MEMORY_MB,
                                "file_mb": OUTPUT_MB}, "ready")
        if type(self.ready) is not dict or set(self.ready) != set(names) or not all(
                v is None or v == "foreign" or (type(v) is list and all(type(p) is str for p in v))
                for v in self.ready.values()):
            self._fail(_Broken(M("exercises.grade.bad_reply", detail="ready")))

    def _read(self, pipe) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(lambda: pipe.readline(16 << 20), b""):
                self.lines.put(line)
        self.lines.put(b"")

    def _tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(max(0, self.log.seek(0, 2) - 4096))
            return ([ln for ln in self.log.read().decode("utf-8", "replace").splitlines() if ln.strip()] or [""])[-1]
        return ""

    def _fail(self, exc: BaseException):
        self.dead = exc
        self.close()
        raise exc

    def _ask(self, request: dict, key: str) -> Any:
        if self.dead is not None:
            raise self.dead
        with contextlib.suppress(OSError, ValueError):  # one that has ended answers with its end below
            if request is not None:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
        while True:  # the output's cap is checked here too: RLIMIT_FSIZE does not exist on Windows
            try:
                line = self.lines.get(timeout=min(0.5, max(0.0, self.deadline - time.monotonic())))
                break
            except queue.Empty:
                if os.fstat(self.log.fileno()).st_size > OUTPUT_MB << 20:
                    self._fail(_Broken(M("exercises.grade.output", mb=OUTPUT_MB)))
                if time.monotonic() >= self.deadline:
                    self._fail(TooSlow(self.limit))
        if not line:
            self._fail(_Broken(M("exercises.grade.ended", code=self.proc.poll(), last=self._tail() or "–")))
        try:
            reply = json.loads(line) if line.endswith(b"\n") else None
            raised = _student_error(reply["raised"]) if type(reply) is dict and set(reply) == {"raised"} else None
            if raised is None and (type(reply) is not dict or type(reply.get("changed", False)) is not bool or
                                   set(reply) != ({key, "changed"} if key == "value" else {key})):
                raise ValueError("unexpected reply")
            value = None if raised or reply.get("changed") else wire.decode(reply[key]) if key == "value" else reply[key]
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self._fail(_Broken(M("exercises.grade.bad_reply", detail=str(exc)[:200])))
        if raised is not None:
            raise raised
        if reply.get("changed"):
            raise InputChanged()
        return value

    def call(self, name: str, *args) -> Any:
        self.calls += 1
        value = self._ask({"call": name, "id": self.calls, "args": wire.encode(list(args))}, "value")
        need = [t for t in wire.leaves(args) if isinstance(t, torch.Tensor) and t.requires_grad]
        if isinstance(value, torch.Tensor) and value.requires_grad and need:
            return _RemoteGrad.apply((self, self.calls, need), value.detach(), *need)
        return value.detach() if isinstance(value, torch.Tensor) else value

    def grad(self, call: int, output: torch.Tensor, need: list) -> list:
        grads = self._ask({"grad": call, "output": wire.encode(output)}, "value")
        if type(grads) is not list or len(grads) != len(need) or not all(
                g is None or (isinstance(g, torch.Tensor) and g.shape == n.shape) for g, n in zip(grads, need)):
            self._fail(_Broken(M("exercises.grade.bad_reply", detail="gradient")))
        return [None if g is None else g.to(n.dtype) for g, n in zip(grads, need)]

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
        elif hasattr(os, "killpg"):  # the whole session, then what left it
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            _sweep(self.token)
        with contextlib.suppress(OSError):
            proc.kill()
            proc.stdin.close()
        proc.wait()
        self.log.close()
        self.tmp.cleanup()


def _student_error(raised: Any) -> Exception:
    """The worker's report of an exception, as one of that name (a builtin one when it is)."""
    if type(raised) is not dict or set(raised) != {"type", "message", "where"} or \
            not all(type(v) is str and len(v) <= 500 for v in raised.values()) or not raised["type"].isidentifier():
        raise ValueError("bad exception report")
    cls = getattr(builtins, raised["type"], None)
    try:
        exc = cls(raised["message"]) if isinstance(cls, type) and issubclass(cls, Exception) else None
    except Exception:  # a builtin one that wants other arguments
        exc = None
    exc = exc or type(raised["type"], (Exception,), {})(raised["message"])
    exc.function = raised["where"]
    return exc


class _RemoteGrad(torch.autograd.Function):
    """A worker's result in the teacher's autograd graph: its gradient is asked of the worker."""

    @staticmethod
    def forward(ctx, link, value, *inputs):
        ctx.link = link
        return value.clone()

    @staticmethod
    def backward(ctx, output):
        worker, call, need = ctx.link
        return (None, None, *worker.grad(call, output, need))


def _remote(worker: _Worker, name: str):
    """A student's function as the checks see it: each call is answered by the worker, under its deadline
    (``time_limit`` None: not the in-process limit)."""
    return _named(functools.partial(worker.call, name), name)


def _named(fn, name: str):
    fn.__name__, fn.time_limit = name, None
    return fn


def _assignment_lists(fn, exercise: str):
    """The course assignment's calling convention: lists of layer outputs whose last is the content
    layer's, and STYLE_LAYERS as (name, weight) pairs."""
    if exercise == "content_cost":
        def adapted(a_C, a_G):
            return fn([a_C], [a_G])
    else:
        def adapted(a_S, a_G, lambdas):
            last = [torch.zeros_like(a_S[-1])]  # the content layer's output: the assignment's function skips it
            return fn([*a_S, *last], [*a_G, *last], [(f"layer{i}", w) for i, w in enumerate(lambdas)])
    return _named(adapted, fn.__name__)


def _for_cli(reason: Message) -> Message:
    """A hint that names an argument of the Python checks, said as the option of this command."""
    p = reason.params
    if reason.id == "exercises.constant_other":
        if p["key"] in CONSTANTS:
            return M("exercises.grade.constant_other", got=p["got"], want=p["want"], key=p["key"])
        return M("exercises.grade.constant_plain", got=p["got"], want=p["want"])
    if reason.id == "exercises.other_layout":
        return M("exercises.grade.other_layout", layout=p["layout"], key=p["key"])
    return reason


def _check(exercise: str, name: str, worker: _Worker, layout: str, constant: str, seed: int):
    params = worker.ready[name]
    fn = _remote(worker, name)
    if name.startswith("compute_") and exercise != "layer_style_cost" and params and params[0].endswith("output"):
        fn = _assignment_lists(fn, exercise)
    kw: dict[str, Any] = {"seed": seed}
    if exercise in ("content_cost", "layer_style_cost", "style_cost"):
        kw.update(layout=layout, constant=constant)
    if exercise == "style_cost":
        own = next((n for n in FUNCTIONS["layer_style_cost"] if type(worker.ready[n]) is list), None)
        kw["layer_style_cost"] = _remote(worker, own) if own else None
    if exercise != "gram_matrix" or layout == "engine":
        return CHECKS[exercise](fn, **kw)
    # the assignment's gram_matrix(A) takes the unrolled (n_C, n_H n_W); one written for (1, n_H, n_W, n_C) passes too
    results = [CHECKS[exercise](fn, layout=lay, **kw) for lay in ("unrolled", "assignment")]
    return max(results, key=lambda r: (r.passed, sum(i.passed for i in r.items)))


def grade_file(path, layout: str = "engine", constant: str = "notes", timeout: float = TIMEOUT_S) -> dict[str, Message | None]:
    """Check one file: ``{exercise: None (passed) or the first reason}`` for the exercises whose function
    the file defines; ``{'__file__': reason}`` when the file as a whole failed.  Never raises."""
    path = Path(path)
    try:
        with _PARSING:  # CPython's parser is not safe to run in two threads at once (3.11: SystemError)
            code = definitions(_cells(path))
    except TeachkitError as exc:
        return {"__file__": exc.message}
    except Exception as exc:  # a syntax error, a file too deep to parse
        return {"__file__": M("exercises.grade.crashed", error=f"{type(exc).__name__}: {exc}")}
    names = [n for ns in FUNCTIONS.values() for n in ns]
    seed, found, worker = secrets.randbelow(2**31), {}, None
    try:
        for exercise, candidates in FUNCTIONS.items():
            if worker is None or worker.proc is None:
                worker = _Worker(code, path.name, names, timeout)
            name = next((n for n in candidates if worker.ready[n] is not None), None)
            if name is None:
                continue
            if worker.ready[name] == "foreign":
                found[exercise] = M("exercises.grade.not_own", name=name)
                continue
            worker.deadline = time.monotonic() + timeout
            try:
                result = _check(exercise, name, worker, layout, constant, seed)
                found[exercise] = None if result.passed else _for_cli(result.reason)
            except _Broken as exc:
                found[exercise] = exc.message
            except Exception as exc:  # whatever else: this exercise's row, never the table
                found[exercise] = M("exercises.grade.bad_reply", detail=f"{type(exc).__name__}: {exc}"[:200])
    except (TooSlow, _Broken, Exception) as exc:  # starting the worker, loading the file
        why = exc.message if isinstance(exc, _Broken) else M("exercises.grade.timeout", seconds=f"{timeout:g}") \
            if isinstance(exc, TooSlow) else M("exercises.grade.crashed", error=f"{type(exc).__name__}: {exc}")
        return found if found else {"__file__": why}
    finally:
        if worker is not None:
            worker.close()
    return found


def grade_files(paths, layout: str = "engine", constant: str = "notes", timeout: float = TIMEOUT_S,
                jobs: int = 1) -> dict[str, dict[str, Message | None]]:
    """:func:`grade_file` of every file, ``jobs`` at a time; in the order given."""
    paths = [str(p) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(max(1, int(jobs))) as pool:
        return dict(zip(paths, pool.map(lambda p: grade_file(p, layout, constant, timeout), paths)))


def _clean(s: str) -> str:
    """Without control or format characters (a student's file name or error text reaches the terminal)."""
    return " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in str(s)).split())


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _csv_cell(s: str) -> str:
    s = _clean(s)
    return "'" + s if s.startswith(("=", "+", "-", "@")) else s  # a spreadsheet would run it as a formula


def _cell(found: dict, exercise: str) -> tuple[bool | None, Message | None]:
    if "__file__" in found:
        return False, found["__file__"]
    if exercise not in found:
        return None, M("exercises.grade.missing")
    return (True, None) if found[exercise] is None else (False, found[exercise])


def _students(paths: list[str]) -> dict[str, str]:
    """Who handed in each file: the first folder below the files' common folder when there is one (a
    folder per student), else the file name up to its first ``_``, ``-``, ``.`` or space."""
    full = {p: Path(os.path.abspath(p)) for p in paths}
    files = [f for f in full.values() if f.is_file()] or list(full.values())
    try:
        root = Path(os.path.commonpath([f.parent for f in files]))
    except ValueError:  # different drives
        root = None
    out = {}
    for p, f in full.items():
        parts = f.relative_to(root).parts if root is not None and f.is_relative_to(root) else ()
        out[p] = parts[0] if len(parts) > 1 else re.split(r"[_\-. ]", f.name)[0] or f.name
    return out


def table(results: dict[str, dict[str, Message | None]], lang: str | None = None, as_csv: bool = False) -> str:
    """One table: a row per file (✓ / ✗ [n] / – with the reasons numbered below it, or CSV with the full
    reasons) and its score, then a row per student who handed in several files."""
    lang = lang or language()
    exercises = [e for e in FUNCTIONS if any(e in f or "__file__" in f for f in results.values())] or list(FUNCTIONS)
    students = _students(list(results))
    rows = [(students[p], p, found) for p, found in results.items()]
    for who in dict.fromkeys(students.values()):
        mine = [results[p] for p in results if students[p] == who]
        if len(mine) > 1:  # an exercise passed in any of the student's files counts once
            merged = {}
            for e in exercises:
                if cells := [c for c in (_cell(f, e) for f in mine) if c[0] is not None]:
                    merged[e] = None if any(ok for ok, _ in cells) else cells[0][1]
            rows.append((who, M("exercises.grade.all_files", name=who, n=len(mine)).text(lang), merged))
    score = lambda f: f"{sum(1 for e in exercises if _cell(f, e)[0])}/{len(exercises)}"  # noqa: E731
    words = lambda m: _clean(m.text(lang))  # noqa: E731
    if as_csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([words(M("exercises.grade.student")), words(M("exercises.grade.file")), *exercises,
                    words(M("exercises.grade.score"))])
        for who, label, found in rows:
            cells = [words(M("exercises.grade.passed")) if ok else words(m) for ok, m in (_cell(found, e) for e in exercises)]
            w.writerow([_csv_cell(c) for c in (who, label, *cells, score(found))])
        return buf.getvalue()
    reasons: list[str] = []
    grid = [[words(M("exercises.grade.file")), *exercises, words(M("exercises.grade.score"))]]
    for _, label, found in rows:
        line = [_clean(label)]
        for ok, m in (_cell(found, e) for e in exercises):
            if ok is False and words(m) not in reasons:
                reasons.append(words(m))
            line.append("–" if ok is None else "✓" if ok else f"✗ [{reasons.index(words(m)) + 1}]")
        grid.append([*line, score(found)])
    widths = [max(_width(r[i]) for r in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths)).rstrip() for r in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    files = list(results.values())
    passed = sum(1 for f in files for e in exercises if _cell(f, e)[0])
    total = sum(1 for f in files for e in exercises if _cell(f, e)[0] is not None)
    lines += ["", *(f"[{i}] {t}" for i, t in enumerate(reasons, start=1)),
              M("exercises.grade.summary", files=len(files), passed=passed, total=total).text(lang)]
    return "\n".join(lines)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 1 <= seconds <= 3600:  # also refuses inf and nan
        raise argparse.ArgumentTypeError(text("exercises.grade.bad_timeout", value=value))
    return seconds


def add_exercises_parser(sub) -> None:
    from ..cli import words

    p = sub.add_parser("exercises", help=words("exercises.help.exercises"), description=words("exercises.help.exercises"))
    esub = p.add_subparsers(dest="exercises_command", required=True, metavar="{check}")
    names = ", ".join(f"{'/'.join(n)} ({e})" for e, n in FUNCTIONS.items())
    c = esub.add_parser("check", help=words("exercises.help.check"),
                        description=words("exercises.help.check_description", names=names, timeout=TIMEOUT_S,
                                          memory=MEMORY_MB, output=OUTPUT_MB))
    c.add_argument("files", nargs="+", metavar="FILE", help=words("exercises.help.files"))
    c.add_argument("--csv", action="store_true", help=words("exercises.help.as_csv"))
    c.add_argument("--timeout", type=_seconds, default=TIMEOUT_S, help=words("exercises.help.timeout", default=TIMEOUT_S))
    c.add_argument("--layout", choices=("engine", "assignment"), default="engine", help=words("exercises.help.layout"))
    c.add_argument("--constant", choices=CONSTANTS, default="notes", help=words("exercises.help.constant"))
    c.add_argument("--jobs", type=int, default=2, help=words("exercises.help.jobs", default=2))
    c.add_argument("--lang", choices=("en", "zh"), default=argparse.SUPPRESS,  # else teachkit's own --lang
                   help=words("exercises.help.lang"))
    c.set_defaults(func=cmd_exercises_check)


def cmd_exercises_check(args) -> int:
    # --lang (here or before the sub-command) is applied by teachkit.cli.main for the whole command
    results = grade_files(args.files, args.layout, args.constant, args.timeout, args.jobs)
    print(table(results, as_csv=args.csv), end="" if args.csv else "\n")
    return 0
