r"""The teacher's check of submissions: ``teachkit exercises check FILE.py|FILE.ipynb ... [--csv]``.

Each file runs in its own Python process with a time limit (:data:`TIMEOUT_S` by default).  That
process keeps only the file's imports, function and class definitions and literal constants (so a
notebook's long cells -- a whole style transfer -- do not run), executes them, runs every check whose
function the file defines (:data:`FUNCTIONS`) and writes what it found, as message ids and parameters,
to a JSON file; the parent renders one table in the teacher's language: file x exercise, "passed" or
the first reason.  It still executes the students' code on the teacher's machine: the command's help
says so.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..messages import Message, language

__all__ = ["FUNCTIONS", "TIMEOUT_S", "definitions", "grade_file", "grade_files", "table", "add_exercises_parser"]

#: exercise -> the name of the student's function (as in the notebooks)
FUNCTIONS = {
    "receptive_field": "rf_sizes",
    "total_cost": "total_cost",
    "content_cost": "content_cost",
    "gram_matrix": "gram_matrix",
    "layer_style_cost": "layer_style_cost",
    "style_cost": "style_cost",
}
TIMEOUT_S = 60


class GradeError(ValueError):
    """A file that cannot be read: one line, naming it."""


# ---- reading a submission ----------------------------------------------------------------------


def _cells(path: Path) -> list[str]:
    """The code of a .py file (one piece) or of a notebook's code cells (one piece each)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GradeError(Message("exercises.grade.unreadable", {"path": str(path), "error": exc}).text()) from None
    if path.suffix.lower() != ".ipynb":
        return [raw]
    try:
        nb = json.loads(raw)
        cells = nb["cells"]
        return ["".join(c["source"]) if isinstance(c["source"], list) else str(c["source"])
                for c in cells if c.get("cell_type") == "code"]
    except (ValueError, KeyError, TypeError) as exc:
        raise GradeError(Message("exercises.grade.unreadable",
                                 {"path": str(path), "error": f"not a notebook ({exc})"}).text()) from None


def _kept(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
            return True
        except ValueError:
            return False
    return False


def definitions(pieces: list[str]) -> str:
    """The imports, definitions and literal constants of the pieces of code, in order.

    A notebook cell that is not Python (a ``%magic``, a syntax error in an unrelated cell) is skipped;
    a ``.py`` file with a syntax error raises :class:`SyntaxError` (the worker reports it)."""
    kept: list[str] = []
    for piece in pieces:
        # IPython magics and shell lines (%matplotlib inline, !pip ...) are not Python: left out
        piece = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in piece.splitlines())
        try:
            tree = ast.parse(piece)
        except SyntaxError:
            if len(pieces) == 1:
                raise
            continue
        kept += [ast.get_source_segment(piece, node) or "" for node in tree.body if _kept(node)]
    return "\n\n".join(kept)


# ---- the worker (its own process) ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A message parameter as JSON (a nested Message keeps its id and parameters)."""
    if isinstance(value, Message):
        return {"__message__": value.id, "params": {k: _plain(v) for k, v in value.params.items()}}
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def _message(data: Any) -> Any:
    if isinstance(data, dict) and "__message__" in data:
        return Message(data["__message__"], {k: _message(v) for k, v in data["params"].items()})
    return data


def _work(path: Path, layout: str, out: Path) -> None:
    """Run in the child process: execute the definitions, run the checks, write JSON to ``out``."""
    import torch

    from .checks import CHECKS

    torch.set_num_threads(1)
    found: dict[str, Any] = {}
    try:
        code = definitions(_cells(path))
        namespace: dict[str, Any] = {"__name__": "submission"}
        exec(compile(code, str(path), "exec"), namespace)  # noqa: S102 -- the student's code, by design
    except Exception as exc:  # a file that does not run: one reason for the whole row
        found["__file__"] = _plain(Message("exercises.grade.crashed", {"error": f"{type(exc).__name__}: {exc}"}))
        out.write_text(json.dumps(found), encoding="utf-8")
        return
    for exercise, name in FUNCTIONS.items():
        fn = namespace.get(name)
        if fn is None:
            continue
        kwargs: dict[str, Any] = {}
        if exercise in ("content_cost", "gram_matrix", "layer_style_cost", "style_cost"):
            kwargs["layout"] = layout
        if exercise == "style_cost" and callable(namespace.get("layer_style_cost")):
            kwargs["layer_style_cost"] = namespace["layer_style_cost"]
        result = CHECKS[exercise](fn, **kwargs)
        found[exercise] = None if result.passed else _plain(result.reason)
    out.write_text(json.dumps(found), encoding="utf-8")


# ---- the parent -----------------------------------------------------------------------------------


def grade_file(path, layout: str = "engine", timeout: float = TIMEOUT_S) -> dict[str, Message | None]:
    """Check one file in its own process: ``{exercise: None (passed) or the first reason}``, for the
    exercises whose function the file defines; ``{'__file__': reason}`` when the file as a whole failed
    (could not run, ran out of time)."""
    path = Path(path)
    if not path.is_file():
        raise GradeError(Message("exercises.grade.unreadable", {"path": str(path), "error": "no such file"}).text())
    with tempfile.TemporaryDirectory(prefix="teachkit-grade-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "teachkit.exercises.grade", "--worker", str(path.resolve()), "--layout", layout,
               "--out", str(out)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"__file__": Message("exercises.grade.timeout", {"seconds": f"{timeout:g}"})}
        if not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["exit code " + str(proc.returncode)])[-1]
            return {"__file__": Message("exercises.grade.crashed", {"error": last})}
        data = json.loads(out.read_text(encoding="utf-8"))
    return {k: _message(v) for k, v in data.items()}


def grade_files(paths, layout: str = "engine", timeout: float = TIMEOUT_S) -> dict[str, dict[str, Message | None]]:
    return {str(p): grade_file(p, layout, timeout) for p in paths}


def _cell(found: dict[str, Message | None], exercise: str, lang: str) -> tuple[bool | None, str]:
    if "__file__" in found:
        return False, found["__file__"].text(lang)
    if exercise not in found:
        return None, Message("exercises.grade.missing").text(lang)
    reason = found[exercise]
    return (True, Message("exercises.grade.passed").text(lang)) if reason is None else (False, reason.text(lang))


def table(results: dict[str, dict[str, Message | None]], lang: str | None = None, as_csv: bool = False) -> str:
    """One table, file x exercise.  Text: ✓ / ✗ [n] / – with the reasons numbered below it; CSV: the
    full text in each cell."""
    lang = lang or language()
    exercises = [e for e in FUNCTIONS if any(e in f or "__file__" in f for f in results.values())] or list(FUNCTIONS)
    head = [Message("exercises.grade.file").text(lang), *exercises]
    if as_csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        for path, found in results.items():
            w.writerow([path, *(_cell(found, e, lang)[1] for e in exercises)])
        return buf.getvalue()
    reasons: list[str] = []
    rows = []
    for path, found in results.items():
        row = [path]
        for e in exercises:
            ok, txt = _cell(found, e, lang)
            if ok is None:
                row.append("–")
            elif ok:
                row.append("✓")
            else:
                if txt not in reasons:
                    reasons.append(txt)
                row.append(f"✗ [{reasons.index(txt) + 1}]")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    passed = sum(1 for f in results.values() for e in exercises if _cell(f, e, lang)[0])
    total = sum(1 for f in results.values() for e in exercises if _cell(f, e, lang)[0] is not None)
    lines += ["", *(f"[{i}] {t}" for i, t in enumerate(reasons, start=1))]
    lines.append(Message("exercises.grade.summary", {"files": len(results), "passed": passed, "total": total}).text(lang))
    return "\n".join(lines)


# ---- teachkit exercises check ---------------------------------------------------------------------


def add_exercises_parser(sub) -> None:
    p = sub.add_parser(
        "exercises",
        help="the teacher's check of students' exercise files (runs their code)",
        description="Check students' solutions of the teachkit notebooks' exercises.",
    )
    esub = p.add_subparsers(dest="exercises_command", required=True, metavar="{check}")
    c = esub.add_parser(
        "check",
        help="run the checks on students' .py / .ipynb files and print one table",
        description=(
            "Run the exercise checks on students' files (.py or .ipynb) and print one table: file x exercise, "
            "'passed' or the first reason (in the language of --lang, else the locale). "
            "WARNING: this EXECUTES THE STUDENTS' CODE on this machine: the imports, function definitions and "
            "constants of each file, then the functions themselves. Each file runs in its own Python process "
            "with a time limit (--timeout), but with your user's rights: run it only on files you are willing "
            "to run, or inside a container or sandbox. Functions are found by name: "
            + ", ".join(f"{n} ({e})" for e, n in FUNCTIONS.items()) + "."
        ),
    )
    c.add_argument("files", nargs="+", metavar="FILE", help="students' files: .py or .ipynb")
    c.add_argument("--csv", action="store_true", help="print CSV (one row per file, full reasons) instead of a table")
    c.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per file (default: %(default)s)")
    c.add_argument("--layout", choices=("engine", "assignment"), default="engine",
                   help="the activations the students' functions take: teachkit's (1, n_C, n_H, n_W) or the "
                        "assignment's (1, n_H, n_W, n_C) (default: %(default)s)")
    c.add_argument("--lang", choices=("en", "zh"), default=argparse.SUPPRESS,  # else teachkit's own --lang
                   help="language of the table (default: teachkit's --lang, else the locale)")
    c.set_defaults(func=cmd_exercises_check)


def cmd_exercises_check(args) -> int:
    # --lang (here or before the sub-command) is applied by teachkit.cli.main for the whole command
    if not args.timeout > 0:
        raise ValueError("--timeout must be > 0")
    try:
        results = grade_files(args.files, args.layout, args.timeout)
    except GradeError as exc:
        print(f"teachkit: error: {exc}", file=sys.stderr)
        return 2
    print(table(results, as_csv=args.csv), end="" if args.csv else "\n")
    return 0


def _worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="teachkit.exercises.grade")
    p.add_argument("--worker", required=True)
    p.add_argument("--layout", default="engine")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    _work(Path(a.worker), a.layout, Path(a.out))
    return 0


if __name__ == "__main__":  # the worker process of grade_file
    sys.exit(_worker_main(sys.argv[1:]))
