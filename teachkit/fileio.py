"""Small shared helpers for arguments and files, one home each: :func:`check_int`; :func:`atomic_write`
(never half a file, nor a stray temporary one, and a plain ``open()``'s permissions); the output
rules: :func:`output_files` (a folder's files, never overwritten without ``--force``),
:func:`check_distinct_outputs` (the per-file checks are :func:`teachkit.images.check_output_path`)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
import threading
from typing import IO, Iterator

import numpy as np

from .messages import InputError

__all__ = ["atomic_write", "check_int", "same_path", "check_distinct_outputs", "output_files"]


def check_int(name: str, value, low: int) -> int:
    """``value`` as an ``int`` if it is a whole number >= ``low`` (bools refused); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError("value.whole_number", name=name, low=low, value=repr(value))
    return int(value)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read from /proc/self/status where Linux shows it; elsewhere set to 0o077 for
    an instant (a file made meanwhile is private, never world-writable) and put straight back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success rename it onto ``path``.  On any
    exception (KeyboardInterrupt included) the temporary file is removed; ``path`` keeps what it held."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write opens files for writing only ('w' or 'wb'), not {mode!r}")
    p, tmp = pathlib.Path(path), None
    try:
        # A hidden name that ends in ".tmp": no glob for "*.png" / "*.npz" ever sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=p.suffix + ".tmp")
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and (tmp is None or exc.filename in (None, tmp)):
            # the temporary file could not be made (a read-only folder), a full disk failed write()
            # (no file named) or the rename failed: the user asked for ``path``, so it is named
            exc.filename = os.fsdecode(p)
        raise


def same_path(a, b) -> bool:
    """Whether ``a`` and ``b`` name the same file: the same file on disk (links resolved) when both
    exist, else the same absolute path once the links of its existing part are resolved (an output
    that is not written yet is still 'the same' as another output of that name)."""
    pa, pb = pathlib.Path(a).expanduser(), pathlib.Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
        return os.path.normcase(str(pa.resolve())) == os.path.normcase(str(pb.resolve()))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


def check_distinct_outputs(outputs) -> None:
    """Refuse two outputs of one command that name the same file (``--plot`` equal to ``-o``): the
    second write would silently replace the first.  ``outputs``: ``{option: path or None}``.
    Raises an InputError naming both options and the path."""
    given = [(name, path) for name, path in outputs.items() if path is not None]
    for i, (first, a) in enumerate(given):
        for second, b in given[i + 1:]:
            if same_path(a, b):
                raise InputError("output.clash", first=first, second=second, path=os.fsdecode(b))


def output_files(folder, names, force: bool = False) -> list[pathlib.Path]:
    """``folder / name`` for each of ``names``, the folder made if missing; InputError when ``folder`` is a
    file, or (unless ``force``) when one of the files exists: it may hold someone's edits."""
    folder = pathlib.Path(os.fspath(folder)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError("output.not_a_folder", path=os.fsdecode(folder))
    paths = [folder / name for name in names]
    for path in [] if force else paths:
        if path.exists():
            raise InputError("output.exists", path=os.fsdecode(path))
    folder.mkdir(parents=True, exist_ok=True)
    return paths
