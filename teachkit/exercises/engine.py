r"""Run teachkit's one optimisation loop with a student's own cost functions (``cost_functions=``), beside
teachkit's own, so that a wrong constant is *seen*, not only reported.  A function its check finds unable to
drive the engine stops there; during the run each call is guarded (copies of its inputs, its own small
graph), and a failure stops the run at that step, keeping the image, with one message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .. import costs
from ..messages import Message, language
from .checks import (CheckResult, M, check_content_cost, check_gram_matrix, check_layer_style_cost,
                     check_style_cost, check_total_cost, to_layout)
from .worker import leaves

__all__ = ["transfer_with", "StudentRun", "FUNCTIONS", "default_config", "BLOCKING"]

#: the functions a student may hand to the engine
FUNCTIONS = ("content_cost", "gram_matrix", "layer_style_cost", "style_cost", "total_cost")

#: a check that fails for one of these reasons means the function cannot drive the engine at all
BLOCKING = frozenset({
    "exercises.not_callable", "exercises.not_written", "exercises.raised", "exercises.returned_none",
    "exercises.not_number", "exercises.not_scalar", "exercises.gram_positions", "exercises.gram_shape",
    "exercises.not_finite", "exercises.grad_numpy", "exercises.grad_float", "exercises.grad_detached",
    "exercises.too_slow",
})


def default_config(**overrides):
    """A small transfer for a notebook on a laptop CPU: 128 px, 30 steps, float32 (repeatable)."""
    from ..transfer import TransferConfig

    return TransferConfig(**{"size": 128, "steps": 30, "dtype": "float32", "preview_every": 0, **overrides})


class _Bridge(torch.autograd.Function):
    """The student's call as one node of the engine's graph; its backward runs the student's own graph."""

    @staticmethod
    def forward(ctx, guard, inner, *inputs):
        ctx.guard, ctx.inner = guard, inner
        return inner[0].detach().clone()

    @staticmethod
    def backward(ctx, grad):
        out, copies = ctx.inner
        try:
            grads = torch.autograd.grad(out, copies, grad, allow_unused=True)
            why = None if all(g is None or bool(torch.isfinite(g).all()) for g in grads) else M("exercises.run.nan_gradient")
        except Exception as exc:  # the student's graph: reported, the run stops after this step
            why = M("exercises.raised", name=ctx.guard.name, error=f"{type(exc).__name__}: {exc}")
        if why is not None:
            ctx.guard.fail(why)
            grads = [None] * len(copies)
        return (None, None, *grads)


class _Guard:
    """One student function as the engine calls it: on copies, in its layout, failures caught."""

    def __init__(self, name: str, fn: Callable, layout: str, state: dict):
        self.name, self.fn, self.layout, self.state = name, fn, layout, state

    def _convert(self, a):
        if isinstance(a, list):
            return [self._convert(x) for x in a]
        if not isinstance(a, torch.Tensor) or self.name == "total_cost" or self.layout == "engine":
            return a
        if self.name == "gram_matrix" and self.layout == "unrolled":
            return to_layout(a.reshape(1, *a.shape[-3:]), "unrolled")
        return to_layout(a, "assignment")

    def fail(self, reason: Message) -> None:
        if self.state["failure"] is None:
            self.state["failure"] = M("exercises.run.failed", name=self.name, step=self.state["step"] + 1, reason=reason)

    def _stand_in(self, tensors: list) -> torch.Tensor:
        """A harmless value: teachkit's Gram matrix, or a zero still connected to the inputs (zero gradient)."""
        if self.name == "gram_matrix":
            return costs.gram_matrix(tensors[0].detach()).reshape(tensors[0].shape[-3], tensors[0].shape[-3])
        return sum(((t * 0).sum() for t in tensors if t.requires_grad and bool(torch.isfinite(t).all())),
                   torch.zeros((), device=tensors[0].device))

    def __call__(self, *args):
        tensors = [t for t in leaves(args) if isinstance(t, torch.Tensor)]
        if self.state["failure"] is not None:
            return self._stand_in(tensors)
        copies = {id(t): t.detach().clone().requires_grad_(t.requires_grad) for t in tensors}
        swap = lambda a: [swap(x) for x in a] if isinstance(a, list) else copies.get(id(a), a)  # noqa: E731
        try:
            with torch.enable_grad():
                out = self.fn(*(self._convert(swap(a)) for a in args))
        except Exception as exc:  # the student's code: a message, and the run stops cleanly
            self.fail(M("exercises.raised", name=self.name, error=f"{type(exc).__name__}: {exc}"))
            return self._stand_in(tensors)
        n_C = tensors[0].shape[-3] if self.name == "gram_matrix" else 1
        if not isinstance(out, torch.Tensor):
            self.fail(M("exercises.grad_numpy", name=self.name))
        elif out.numel() != n_C * n_C:
            self.fail(M("exercises.gram_shape", shape=str(tuple(out.shape)), want=f"({n_C}, {n_C})")
                      if n_C > 1 else M("exercises.not_scalar", name=self.name, shape=str(tuple(out.shape))))
        elif not bool(torch.isfinite(out.detach()).all()):
            self.fail(M("exercises.run.nan"))
        if self.state["failure"] is not None:
            return self._stand_in(tensors)
        need = [t for t in tensors if t.requires_grad]
        if not need or not out.requires_grad:
            return out.detach()
        return _Bridge.apply(self, (out, [copies[id(t)] for t in need]), *need)


@dataclass
class StudentRun:
    """What :func:`transfer_with` returns: the student's run (None if nothing ran), teachkit's from the same
    start, each function's check, and the message that stopped the run or kept it from starting."""

    result: Any = None
    reference: Any = None
    checks: dict[str, CheckResult] = field(default_factory=dict)
    failure: Message | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.result is not None

    def text(self, lang: str | None = None) -> str:
        lang = lang or language()
        lines = [self.failure.text(lang)] if self.failure is not None else []
        if self.result is not None and self.result.history:
            total, steps = self.result.history[-1]["total"], len(self.result.history)
            if self.reference is not None and self.reference.history:
                ref = self.reference.history[-1]["total"]
                diff = abs(total - ref) / max(abs(ref), 1e-30)
                lines.append(M("exercises.run.same" if diff < 1e-3 else "exercises.run.differs", steps=steps,
                               total=total, reference=ref, diff=diff).text(lang))
            else:
                lines.append(M("exercises.run.done", steps=steps, total=total).text(lang))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_markdown_(self) -> str:
        return self.text().replace("\n", "  \n")

    def figure(self, lang: str | None = None):
        """The student's G beside teachkit's (same start) and both cost curves (a matplotlib Figure;
        None when nothing ran)."""
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
            if res is not None and res.history:
                ax.plot([r["step"] for r in res.history], [r["total"] for r in res.history], color=colour,
                        label=curve.text(lang))
        ax.set_yscale("log")
        ax.set_xlabel(M("exercises.fig.step").text(lang))
        ax.set_title(M("exercises.fig.costs").text(lang), fontsize=10)
        ax.legend(fontsize=8)
        return fig


def _preflight(given: dict[str, Callable], layout: str) -> dict[str, CheckResult]:
    cost_layout = "assignment" if layout == "unrolled" else layout
    checks = {"content_cost": lambda f: check_content_cost(f, cost_layout, "any"),
              "gram_matrix": lambda f: check_gram_matrix(f, layout, "any"),
              "layer_style_cost": lambda f: check_layer_style_cost(f, cost_layout, "any"),
              "style_cost": lambda f: check_style_cost(f, given.get("layer_style_cost"), cost_layout, "any"),
              "total_cost": check_total_cost}
    return {name: checks[name](fn) for name, fn in given.items()}


def _style_cost(a_S: list, a_G: list, lambdas: list) -> torch.Tensor:
    """teachkit's own ``J_style = sum_l lambda[l] J_style[l]``, in the signature of a student's."""
    layer = costs.CostFunctions.reference().layer_style_cost
    return sum(w * layer(s, g) for w, s, g in zip(lambdas, a_S, a_G))


def transfer_with(content="chelsea", style="stained_glass", config=None, *, content_cost: Callable | None = None,
                  gram_matrix: Callable | None = None, layer_style_cost: Callable | None = None,
                  style_cost: Callable | None = None, total_cost: Callable | None = None, layout: str = "engine",
                  compare: bool = True, backbone=None, callback=None, reference=None) -> StudentRun:
    r"""Run the one optimisation loop with the student's cost functions (None: teachkit's), in the signatures
    of :class:`teachkit.costs.CostFunctions` with activations in ``layout`` ('engine', 'assignment',
    'unrolled': ``gram_matrix`` gets ``(n_C, n_H n_W)``), and with teachkit's own from the same start when
    ``compare`` (``reference``: such a run of an earlier, equal call).  Never raises for the student's mistakes."""
    from .. import transfer as engine

    given = {n: f for n, f in zip(FUNCTIONS, (content_cost, gram_matrix, layer_style_cost, style_cost, total_cost))
             if f is not None}
    checks = _preflight(given, layout)
    for res in checks.values():
        if res.reason is not None and res.reason.id in BLOCKING:
            return StudentRun(checks=checks, failure=M("exercises.run.not_ready", reason=res.reason))
    config = config or default_config()
    backbone = engine.backbone_for(backbone, config)
    state: dict[str, Any] = {"step": 0, "failure": None}

    def watch(progress):
        state["step"] = progress.step
        return bool(callback is not None and callback(progress)) or state["failure"] is not None  # True: stop

    try:
        result = engine.transfer(content, style, config, callback=watch, backbone=backbone, cost_functions=costs.
                                 CostFunctions(**{n: _Guard(n, f, layout, state) for n, f in given.items()}))
    except Exception as exc:  # not the student's functions (they are guarded): still one message
        return StudentRun(checks=checks, failure=M("exercises.run.crashed", error=f"{type(exc).__name__}: {exc}"))
    # teachkit's own functions through the same hook: the same code path, so a right run matches exactly
    ref = costs.CostFunctions.reference()
    if reference is None and compare:
        reference = engine.transfer(content, style, config, callback=callback, backbone=backbone, cost_functions=costs.
                                    CostFunctions(**{n: getattr(ref, n, None) or _style_cost for n in given}))
    return StudentRun(result=result, reference=reference, checks=checks, failure=state["failure"])
