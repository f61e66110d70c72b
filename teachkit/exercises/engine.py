r"""Run teachkit's one optimisation loop with a student's own cost functions.

:func:`transfer_with` hands the student's functions to :func:`teachkit.transfer.transfer` through its
``cost_functions=`` hook (:class:`teachkit.costs.CostFunctions`) and, by default, runs teachkit's own
functions from the same start beside it, so that a wrong constant is *seen* -- a different balance of
content and style in the picture and in the cost curves -- not only reported.

Before the run, each function goes through its check (:mod:`teachkit.exercises.checks`): a function
that cannot drive the engine at all (not written, raises, wrong shape, NaN, NumPy where a gradient is
needed) stops here with that check's message, and nothing runs.  A function that is merely *wrong*
(another constant, a missing square) runs, so its effect shows.

During the run each function is guarded: an exception or a NaN inside it is caught, that call returns
a harmless zero-gradient stand-in, and the progress callback asks the engine to stop at the end of
that step -- the engine's own stop mechanism, so the result keeps the image made so far
(``TransferResult.stopped``) and :attr:`StudentRun.failure` says what happened, in both languages.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .. import costs
from ..messages import Message, language
from .checks import (CheckResult, M, check_content_cost, check_gram_matrix, check_layer_style_cost,
                     check_total_cost, to_layout)

__all__ = ["transfer_with", "StudentRun", "FUNCTIONS", "default_config", "BLOCKING"]

#: the functions a student may hand to the engine, in CostFunctions' order
FUNCTIONS = ("content_cost", "gram_matrix", "layer_style_cost", "total_cost")

#: a check that fails for one of these reasons means the function cannot drive the engine at all
BLOCKING = frozenset({
    "exercises.not_callable", "exercises.not_written", "exercises.raised", "exercises.returned_none",
    "exercises.not_number", "exercises.not_scalar", "exercises.gram_positions", "exercises.gram_shape",
    "exercises.not_finite", "exercises.grad_numpy", "exercises.grad_detached",
})


def default_config(**overrides):
    """A small transfer for a notebook on a laptop CPU: 128 px, 30 steps, one scale, float32
    (bit-for-bit repeatable), teachkit's default weights."""
    from ..transfer import TransferConfig

    fields = dict(size=128, steps=30, dtype="float32", preview_every=0)
    fields.update(overrides)
    return TransferConfig(**fields)


class _Guard:
    """One student function as the engine calls it: the layout converted, failures caught."""

    def __init__(self, name: str, fn: Callable, layout: str, state: dict):
        self.name, self.fn, self.layout, self.state = name, fn, layout, state

    def _convert(self, a: torch.Tensor) -> torch.Tensor:
        if self.name == "total_cost" or self.layout == "engine":
            return a
        if self.name == "gram_matrix" and self.layout == "unrolled":
            return to_layout(a.reshape(1, *a.shape[-3:]), "unrolled")
        return to_layout(a, "assignment")

    def _stand_in(self, args) -> torch.Tensor:
        """A harmless value for a failed call: zero, still connected to the inputs (zero gradient)."""
        if self.name == "gram_matrix":
            return costs.gram_matrix(args[0].detach()).reshape(args[0].shape[-3], args[0].shape[-3])
        zero = torch.zeros((), device=args[0].device)
        for a in args:
            if isinstance(a, torch.Tensor) and a.requires_grad and bool(torch.isfinite(a).all()):
                zero = zero + (a * 0).sum()
        return zero

    def _failed(self, reason: Message, args):
        if self.state.get("failure") is None:
            self.state["failure"] = M("exercises.run.failed", name=self.name, step=self.state["step"] + 1,
                                      reason=reason)
        return self._stand_in(args)

    def __call__(self, *args):
        if self.state.get("failure") is not None:
            return self._stand_in(args)
        conv = [self._convert(a) if isinstance(a, torch.Tensor) else a for a in args]
        try:
            out = self.fn(*conv)
        except Exception as exc:  # the student's code: reported as a message, the run stops cleanly
            return self._failed(M("exercises.raised", name=self.name, error=f"{type(exc).__name__}: {exc}"), args)
        if not isinstance(out, torch.Tensor):
            return self._failed(M("exercises.grad_numpy", name=self.name), args)
        if not bool(torch.isfinite(out.detach()).all()):
            return self._failed(M("exercises.run.nan"), args)
        return out


@dataclass
class StudentRun:
    """What :func:`transfer_with` returns.

    ``result`` the run with the student's functions (a :class:`teachkit.transfer.TransferResult`;
    None when nothing could run), ``reference`` teachkit's own run from the same start (None with
    ``compare=False``), ``checks`` the check of each function given, ``failure`` the message that
    stopped the run (or kept it from starting), None when all went well.
    """

    result: Any = None
    reference: Any = None
    checks: dict[str, CheckResult] = field(default_factory=dict)
    failure: Message | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.result is not None

    def text(self, lang: str | None = None) -> str:
        lang = lang or language()
        lines = []
        if self.failure is not None:
            lines.append(self.failure.text(lang))
        if self.result is not None and self.result.history:
            ref = self.reference.history[-1]["total"] if self.reference is not None and self.reference.history \
                else float("nan")
            lines.append(M("exercises.run.done", steps=len(self.result.history),
                           total=self.result.history[-1]["total"], reference=ref).text(lang))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_markdown_(self) -> str:
        return self.text().replace("\n", "  \n")

    def figure(self, lang: str | None = None):
        """The student's G beside teachkit's (same start), and both cost curves J over the steps (a
        matplotlib Figure, shown by a notebook when it is a cell's value); None when nothing ran."""
        from matplotlib.figure import Figure

        from ..figtext import use_cjk_font

        if self.result is None:
            return None
        lang = lang or language()
        if lang == "zh":
            use_cjk_font()
        fig = Figure(figsize=(11, 3.6), layout="constrained")
        axes = fig.subplots(1, 3)
        runs = [(self.result, M("exercises.fig.yours"), "#cf222e", M("exercises.fig.curve_yours")),
                (self.reference, M("exercises.fig.teachkit"), "#0969da", M("exercises.fig.curve_teachkit"))]
        for ax, (res, title, _, _) in zip(axes[:2], runs):
            ax.set_axis_off()
            if res is None:
                continue
            ax.imshow(res.image)
            label = title.text(lang)
            if res.stopped and res is self.result and self.failure is not None:
                label += "\n" + M("exercises.fig.stopped", step=len(res.history)).text(lang)
            ax.set_title(label, fontsize=10)
        ax = axes[2]
        for res, _, colour, curve in runs:
            if res is None or not res.history:
                continue
            ax.plot([r["step"] for r in res.history], [r["total"] for r in res.history], color=colour,
                    label=curve.text(lang))
        ax.set_yscale("log")
        ax.set_xlabel(M("exercises.fig.step").text(lang))
        ax.set_title(M("exercises.fig.costs").text(lang), fontsize=10)
        ax.legend(fontsize=8)
        return fig


def _preflight(functions: dict[str, Callable], layout: str, constants: dict[str, str]) -> dict[str, CheckResult]:
    out = {}
    for name, fn in functions.items():
        lay = layout if name != "gram_matrix" or layout != "unrolled" else "unrolled"
        if name == "content_cost":
            out[name] = check_content_cost(fn, "assignment" if lay == "unrolled" else lay,
                                           constants.get(name, "any"))
        elif name == "gram_matrix":
            out[name] = check_gram_matrix(fn, lay, constants.get(name, "any"))
        elif name == "layer_style_cost":
            out[name] = check_layer_style_cost(fn, "assignment" if lay == "unrolled" else lay,
                                               constants.get(name, "any"))
        else:
            out[name] = check_total_cost(fn)
    return out


def transfer_with(content="chelsea", style="stained_glass", config=None, *, content_cost: Callable | None = None,
                  gram_matrix: Callable | None = None, layer_style_cost: Callable | None = None,
                  total_cost: Callable | None = None, layout: str = "engine", compare: bool = True,
                  backbone=None, callback=None, reference=None) -> StudentRun:
    r"""Run the one optimisation loop with the student's cost functions (and teachkit's, to compare).

    ``content``, ``style``: images, paths or sample names (as :func:`teachkit.transfer.transfer`);
    ``config``: a :class:`teachkit.transfer.TransferConfig` (default :func:`default_config`: small and
    quick); its normalisation must be ``'auto'`` or ``'lecture'``.  The functions, each optional
    (None: teachkit's own), in the signatures of :class:`teachkit.costs.CostFunctions`; ``layout``
    says which activations the student's functions take: ``'engine'`` ``(1, n_C, n_H, n_W)``,
    ``'assignment'`` ``(1, n_H, n_W, n_C)``, or ``'unrolled'`` (``gram_matrix`` gets ``(n_C, n_H n_W)``,
    the costs the assignment's layout).  ``compare``: also run teachkit's own functions from the same
    start; ``reference``: teachkit's run of an earlier call with the same images, config and functions
    given (``StudentRun.reference``), reused instead of running it again.  Never raises for a mistake
    in the student's code: see :class:`StudentRun`.
    """
    from .. import transfer as engine

    given = {n: f for n, f in zip(FUNCTIONS, (content_cost, gram_matrix, layer_style_cost, total_cost))
             if f is not None}
    checks = _preflight(given, layout, {})
    for name, res in checks.items():
        if res.reason is not None and res.reason.id in BLOCKING:
            return StudentRun(checks=checks, failure=M("exercises.run.not_ready", reason=res.reason))
    if "cost_functions" not in inspect.signature(engine.transfer).parameters:
        return StudentRun(checks=checks, failure=M("exercises.run.not_ready", reason=M("exercises.run.no_hook")))
    config = config or default_config()
    if backbone is None:
        from ..features import load_backbone

        backbone = load_backbone(config.backbone, pooling=config.pooling, device=config.device)
    state: dict[str, Any] = {"step": 0, "failure": None}
    cf = costs.CostFunctions(**{n: _Guard(n, f, layout, state) for n, f in given.items()})

    def watch(progress):
        state["step"] = progress.step
        if callback is not None and callback(progress):
            return True
        return state["failure"] is not None  # True: the engine stops after this step, keeping the image

    result = engine.transfer(content, style, config, callback=watch, backbone=backbone, cost_functions=cf)
    # teachkit's own functions through the same hook: the same code path (e.g. an own layer_style_cost
    # makes the engine keep the style image's activations), so a right student run matches it exactly
    ref = costs.CostFunctions.reference()
    same = costs.CostFunctions(**{n: getattr(ref, n) for n in given})
    if reference is None and compare:
        reference = engine.transfer(content, style, config, callback=callback, backbone=backbone,
                                    cost_functions=same)
    return StudentRun(result=result, reference=reference, checks=checks, failure=state["failure"])
