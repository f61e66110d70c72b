"""teachkit runs on Windows and macOS too: no POSIX-only module or signal without a guard.

Two checks, each cheap:

* every module of ``teachkit`` and ``teachkit.lessons`` (the page scripts and the app's entry aside: they
  need a running Streamlit session) imports in a fresh Python where ``resource``, ``fcntl``, ``termios``,
  ``pwd`` and ``grp`` -- modules Windows does not have -- cannot be imported by teachkit's own code
  (a meta-path finder refuses them to any importer inside teachkit);
* no source file of ``teachkit/`` or ``lessons/`` uses a POSIX-only signal or call (``signal.SIGALRM``,
  ``SIGUSR1``, ``signal.alarm``, ``os.fork``, a "fork" multiprocessing context, ...) or imports one of
  those modules anywhere (inside functions too) without a guard: an ``if`` that asks ``hasattr``,
  ``sys.platform`` or ``os.name``, or a ``try`` that catches ImportError / AttributeError.  The checker
  is itself tested on planted snippets.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSIX_MODULES = ("resource", "fcntl", "termios", "pwd", "grp")
#: attributes that exist on POSIX only (of the modules signal, os, multiprocessing)
POSIX_NAMES = {
    "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGHUP", "SIGCHLD", "SIGPIPE", "SIGQUIT", "SIGKILL", "SIGSTOP",
    "SIGCONT", "SIGTSTP", "SIGWINCH", "SIGVTALRM", "SIGPROF", "alarm", "setitimer", "getitimer", "pause",
    "siginterrupt", "pthread_kill", "pthread_sigmask", "sigwait", "fork", "forkpty", "getuid", "geteuid",
    "getgid", "setsid", "killpg", "getpgid", "setpgrp", "wait3", "wait4", "getloadavg",
}
GUARD_CALLS = {"hasattr", "getattr"}
GUARD_NAMES = {"platform", "name"}  # sys.platform, os.name
GUARD_ERRORS = {"ImportError", "ModuleNotFoundError", "AttributeError", "OSError", "Exception", "BaseException"}

# ---- the import check ----------------------------------------------------------------------------

_IMPORT_ALL = r"""
import importlib, importlib.abc, json, pkgutil, sys

HIDDEN = set(json.loads(sys.argv[1]))


class Refuse(importlib.abc.MetaPathFinder):
    '''Refuses the POSIX-only modules to any importer inside teachkit (as on Windows).'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in HIDDEN:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
            frame = frame.f_back
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back
        caller = frame.f_globals.get("__name__", "") if frame is not None else ""
        if caller == "teachkit" or caller.startswith("teachkit."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: not on Windows)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
for name in HIDDEN:  # imported already by the interpreter's start-up: make the next import ask again
    sys.modules.pop(name, None)

import teachkit, teachkit.lessons  # noqa: E401

SCRIPTS = set(json.loads(sys.argv[2]))
names = ["teachkit"]
for package in (teachkit, teachkit.lessons):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1] not in SCRIPTS and info.name != "teachkit.__main__":
            names.append(info.name)
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"imported": names, "failed": failed}))
"""


def _scripts() -> list[str]:
    """Files that do their work when run, not modules to import: the app's entry, every page script
    (a file name ``x.py`` written in a lessons/ source, as the page registry and st.Page write them), and
    the notebook sources (teachkit/notebooks/lesson*.py)."""
    names = {"app"}
    for path in (ROOT / "lessons").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py") \
                    and (ROOT / "lessons" / node.value).is_file():
                names.add(node.value[:-3])
    names |= {p.stem for p in (ROOT / "teachkit" / "notebooks").glob("lesson*.py")}
    return sorted(names)


def test_every_module_imports_without_posix_only_modules(tmp_path):
    run = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(POSIX_MODULES), json.dumps(_scripts())],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "TEACHKIT_OFFLINE": "1", "TEACHKIT_WARMUP": "0"})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert not report["failed"], report["failed"]
    imported = set(report["imported"])
    # the walk found the modules it should (an oracle from the file system)
    expected = {f"teachkit.{p.stem}" for p in (ROOT / "teachkit").glob("*.py") if p.stem not in ("__init__", "__main__")}
    expected |= {f"teachkit.lessons.{p.stem}" for p in (ROOT / "lessons").glob("*.py")
                 if p.stem != "__init__" and p.stem not in _scripts()}
    assert expected <= imported, sorted(expected - imported)


def test_the_finder_refuses_a_posix_module_to_teachkit_code(tmp_path):
    """The import check can fail: a module inside a 'teachkit' package that imports fcntl is refused."""
    pkg = tmp_path / "fake" / "teachkit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import fcntl\n")
    (pkg / "lessons").mkdir()
    (pkg / "lessons" / "__init__.py").write_text("")
    run = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(POSIX_MODULES), "[]"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "fake")})
    assert run.returncode != 0 and "fcntl" in run.stderr and "hidden" in run.stderr


# ---- the static check ----------------------------------------------------------------------------


def _guarded(node: ast.AST, parents: dict) -> bool:
    """Is ``node`` inside an ``if`` asking hasattr / sys.platform / os.name, or a ``try`` catching
    ImportError / AttributeError (or broader)?"""
    child, here = node, parents.get(node)
    while here is not None:
        if isinstance(here, (ast.If, ast.IfExp)):
            for sub in ast.walk(here.test):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in GUARD_CALLS:
                    return True
                if isinstance(sub, ast.Attribute) and sub.attr in GUARD_NAMES:
                    return True
        if isinstance(here, ast.Try) and child in here.body:
            for handler in here.handlers:
                types = handler.type
                names = ([types] if types is not None else [])
                if isinstance(types, ast.Tuple):
                    names = list(types.elts)
                if handler.type is None or any(isinstance(t, ast.Name) and t.id in GUARD_ERRORS for t in names):
                    return True
        child, here = here, parents.get(here)
    return False


def posix_problems(source: str, filename: str = "<source>") -> list[str]:
    """Unguarded POSIX-only uses in ``source``: 'file:line: what'."""
    tree = ast.parse(source, filename)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Import):
            hit = [a.name for a in node.names if a.name.split(".")[0] in POSIX_MODULES]
            what = f"import {', '.join(hit)}" if hit else None
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.split(".")[0] in POSIX_MODULES:
                what = f"from {node.module} import ..."
            elif node.module in ("signal", "os"):
                hit = [a.name for a in node.names if a.name in POSIX_NAMES]
                what = f"from {node.module} import {', '.join(hit)}" if hit else None
        elif isinstance(node, ast.Attribute) and node.attr in POSIX_NAMES:
            if isinstance(node.value, ast.Name) and node.value.id in ("signal", "os"):
                what = f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "get_context", "set_start_method"):
            if any(isinstance(a, ast.Constant) and a.value in ("fork", "forkserver") for a in node.args):
                what = f"multiprocessing {node.func.attr}({node.args[0].value!r})"
        if what and not _guarded(node, parents):
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def test_the_static_check_finds_planted_unguarded_uses():
    bad = textwrap.dedent("""
        import signal, os
        import multiprocessing as mp
        def f():
            import fcntl
            signal.signal(signal.SIGALRM, None)
            os.fork()
            mp.get_context("fork")
    """)
    assert len(posix_problems(bad)) == 4
    good = textwrap.dedent("""
        import signal, sys, os
        try:
            import resource
        except ImportError:
            resource = None
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, None)
        if sys.platform != "win32":
            os.fork()
        ALARM = getattr(signal, "SIGALRM", None)
        signal.signal(signal.SIGTERM, None)
    """)
    assert posix_problems(good) == []


def test_no_unguarded_posix_only_signal_call_or_module_in_the_sources():
    problems = []
    for folder in ("teachkit", "lessons"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            problems += posix_problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "POSIX-only, without a guard:\n" + "\n".join(problems)
