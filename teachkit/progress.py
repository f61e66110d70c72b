"""One shape of progress report for every long computation (a transfer, a dataset scan, ...).

A long job calls ``callback(Progress(...))`` now and then.  The callback may draw a tqdm bar (the
CLI), update Streamlit widgets (the app) or collect the reports (tests).  If it returns ``True`` the
job stops early and returns what it has made so far; a :class:`threading.Event` passed as ``stop``
to the job does the same from another thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .messages import Message, language

__all__ = ["Progress", "ProgressCallback", "report", "TqdmReporter"]


@dataclass
class Progress:
    task: str  # "transfer", "scan", "reconstruct", ...
    step: int  # steps done so far (1-based after the first step)
    total: int  # steps planned (0 when unknown)
    values: dict[str, float] = field(default_factory=dict)  # e.g. the cost terms of this step
    image: Any = None  # a PIL image of the current result, when the job has one to show
    message: Message | str = ""  # a short note as data ("scale 2/3: 256 px"; str() is its English)
    scale: int = 0  # a transfer: the 1-based index of the scale it is working at (0: not a transfer)
    size: int = 0  # ... and that scale's long side, px
    weights: Optional[dict] = None  # ... and the weights J multiplies there (alpha, beta, layer_weights, tv_weight)


ProgressCallback = Callable[[Progress], Optional[bool]]


def report(
    callback: ProgressCallback | None, progress: Progress, stop: threading.Event | None = None
) -> bool:
    """Send ``progress`` to ``callback``; True when the job should stop now."""
    wants_stop = bool(callback(progress)) if callback is not None else False
    return wants_stop or (stop is not None and stop.is_set())


class TqdmReporter:
    """A progress callback that drives a tqdm bar, showing a few chosen values (e.g. the total cost)."""

    def __init__(self, desc: str = "", keys: tuple[str, ...] = ("total",), **tqdm_kwargs):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.desc = desc
        self.keys = keys
        self.kwargs = tqdm_kwargs
        self.bar = None

    def __call__(self, p: Progress) -> None:
        if self.bar is None or (p.total and self.bar.total != p.total):
            if self.bar is not None:
                self.bar.close()
            self.bar = self._tqdm(total=p.total or None, desc=self.desc or p.task, **self.kwargs)
        self.bar.n = p.step
        shown = {k: f"{p.values[k]:.4g}" for k in self.keys if k in p.values}
        note = p.message.text(language()) if isinstance(p.message, Message) else p.message
        if note:
            self.bar.set_description(f"{self.desc or p.task} {note}", refresh=False)
        self.bar.set_postfix(shown, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
