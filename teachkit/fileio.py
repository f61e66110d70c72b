"""Small shared helpers for arguments and files: one home each.

* :func:`check_int` -- validate a whole-number argument with a lower bound.
* :func:`same_path` / :func:`check_distinct_outputs` -- two outputs of one command never name the
  same file (the per-file checks -- extension, folder, permission, not an input -- are
  :func:`teachkit.images.check_output_path`).
* :func:`atomic_write` -- write a file under a temporary name in the same folder and rename it into
  place only when writing succeeded, so an interrupted or failed write never leaves half a file
  (and never a stray temporary file) behind.  The finished file gets the permissions a plain
  ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
import threading
from typing import IO, Iterator

import numpy as np

from .messages import InputError

__all__ = ["atomic_write", "check_int", "same_path", "check_distinct_outputs"]


def check_int(name: str, value, low: int) -> int:
    """``value`` as an ``int`` if it is a whole number >= ``low`` (bools refused); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError("value.whole_number", name=name, low=low, value=repr(value))
    return int(value)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status).

    Elsewhere os.umask can only be read by setting it: it is set to 0o077 for that instant (a file
    another thread creates meanwhile is private, never world-writable) and put straight back.
    """
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
    """Open a temporary file beside ``path`` for writing; on success rename it onto ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the exception
    propagates; ``path`` keeps whatever it held before.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write opens files for writing only ('w' or 'wb'), not {mode!r}")
    p = pathlib.Path(path)
    # A hidden name that ends in ".tmp": no glob for "*.png" / "*.npz" ever sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=p.suffix + ".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            # a full disk fails in write(), which names no file, and a failed rename names the
            # temporary file: either way the file the caller asked for is what a user must see
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
    Raises :class:`teachkit.messages.InputError` (``output.clash``) naming both options and the path."""
    from .messages import InputError

    given = [(name, path) for name, path in outputs.items() if path is not None]
    for i, (first, a) in enumerate(given):
        for second, b in given[i + 1:]:
            if same_path(a, b):
                raise InputError("output.clash", first=first, second=second, path=os.fsdecode(b))
