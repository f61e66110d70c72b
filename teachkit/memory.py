"""Out of memory -> one line that says what to lower.

Whichever allocator gave up (CUDA's ``torch.OutOfMemoryError``, the CPU's or MPS's ``RuntimeError``,
Python's ``MemoryError``), :func:`out_of_memory` turns it into one :class:`OutOfMemory` whose text names
what sets a transfer's memory: the size, the style scale and the number of style images.
"""

from __future__ import annotations

from .messages import TeachkitError

__all__ = ["OutOfMemory", "out_of_memory"]

#: what torch's and the allocators' own texts say when memory runs out (CUDA, MPS, the CPU allocator on
#: Linux/macOS: "can't allocate memory", on Windows: "not enough memory")
_TORCH_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


class OutOfMemory(TeachkitError, MemoryError):
    """Memory ran out during a computation; the text says what to lower (``for_app``: the page's
    controls, else the CLI's options)."""

    def __init__(self, device: str, *, for_app: bool = False):
        super().__init__("memory.out_of_memory_app" if for_app else "memory.out_of_memory", device=device)


def _device_of(err: BaseException) -> str:
    text = str(err)
    if "MPS" in text:
        return "mps"
    if "CUDA" in text or type(err).__name__ == "OutOfMemoryError":
        return "cuda"
    return "cpu"


def out_of_memory(err: BaseException, *, for_app: bool = False) -> OutOfMemory | None:
    """``err`` (or an error it was raised from) as an :class:`OutOfMemory`, or None if memory did not run out."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OutOfMemory):
            return OutOfMemory(err.params.get("device", "cpu"), for_app=for_app)
        oom_type = _torch_oom_type()
        if isinstance(err, MemoryError) or (oom_type is not None and isinstance(err, oom_type)):
            return OutOfMemory(_device_of(err), for_app=for_app)
        if isinstance(err, RuntimeError) and any(w in str(err).lower() for w in _TORCH_WORDS):
            return OutOfMemory(_device_of(err), for_app=for_app)
        err = err.__cause__ or err.__context__
    return None


def _torch_oom_type():
    """torch's out-of-memory error type (``torch.OutOfMemoryError``; ``torch.cuda.OutOfMemoryError`` before 2.5)."""
    import sys

    torch = sys.modules.get("torch")  # nothing to recognise if torch was never imported
    if torch is None:
        return None
    return getattr(torch, "OutOfMemoryError", None) or getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
