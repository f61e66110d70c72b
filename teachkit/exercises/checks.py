r"""Checks of a student's own cost functions that say *why* something is wrong, in English and Chinese.

Each ``check_*`` takes the student's function and returns a :class:`CheckResult`: what was checked, what
passed and, at the first failure, the reason as a teacher would say it (a :class:`teachkit.messages.Message`).
A check never raises for a mistake of the student's.  The oracle is always :mod:`teachkit.costs`:
properties that hold whatever the constant (zero for equal inputs, symmetry, the Gram matrix's
symmetry, positive semi-definiteness and blindness to the order of positions, how each result scales
when the activations are doubled), values on random inputs of several shapes with the constant in
front recognised and named, and the gradient against autograd.  The student may use NumPy or torch;
``layout`` is what their function receives: ``'engine'`` ``(1, n_C, n_H, n_W)``, ``'assignment'``
``(1, n_H, n_W, n_C)`` or, for a Gram matrix, ``'unrolled'`` ``(n_C, n_H n_W)``.
"""

from __future__ import annotations

import ctypes
import functools
import html
import inspect
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import costs
from ..messages import InputError, Message, language

__all__ = ["Item", "CheckResult", "LAYOUTS", "CONSTANTS", "CALL_LIMIT_S", "TooSlow", "InputChanged",
           "check_content_cost", "check_gram_matrix", "check_layer_style_cost", "check_style_cost",
           "check_total_cost", "check_receptive_field", "CHECKS", "to_layout", "from_layout"]

LAYOUTS = ("engine", "assignment", "unrolled")

#: The constants a student may put in front of a sum of squares: name -> factor(n_H, n_W, n_C).
CONSTANTS: dict[str, dict[str, Callable[[int, int, int], float]]] = {
    "content": {
        "notes": lambda h, w, c: 0.5,  # the lecture notes' and the slides' 1/2 (teachkit.costs, 'lecture')
        "assignment": lambda h, w, c: 1.0 / (4.0 * h * w * c),
        "none": lambda h, w, c: 1.0,
        "mean": lambda h, w, c: 1.0 / (h * w * c),
    },
    "style": {
        "notes": lambda h, w, c: 1.0 / (2.0 * h * w * c),  # teachkit.costs.style_factor 'lecture'
        # the slides' (1/(2 n_H n_W n_C))^2 is the assignment's 1/(4 n_C^2 (n_H n_W)^2): one number
        "slides": lambda h, w, c: 1.0 / (2.0 * h * w * c) ** 2,
        "none": lambda h, w, c: 1.0,
        "mean": lambda h, w, c: 1.0 / c**2,
    },
    "gram": {
        "none": lambda h, w, c: 1.0,
        "positions": lambda h, w, c: 1.0 / (h * w),
        "mean": lambda h, w, c: 1.0 / (h * w * c),
    },
}
_ALIASES = {"content": {"slides": "notes", "lecture": "notes"},
            "style": {"assignment": "slides", "gatys": "slides", "lecture": "notes"}}

#: shapes (n_C, n_H, n_W) of the random inputs: their sizes differ, so the constants can be told apart
SHAPES = ((3, 4, 5), (6, 2, 3), (4, 7, 2))
RTOL = 1e-4
CALL_LIMIT_S = 10.0  #: seconds one call of a student's function may take in a check


def M(msg_id: str, **params: Any) -> Message:
    return Message(msg_id, params)


@dataclass
class Item:
    """One thing checked: ``what``, whether it ``passed``, and ``reason`` (why it failed, or a note)."""

    what: Message
    passed: bool
    reason: Message | None = None


@dataclass
class CheckResult:
    """What one check found; ``str()`` is plain text, a notebook shows HTML, ``text('zh')`` Chinese."""

    exercise: str
    items: list[Item] = field(default_factory=list)
    layout: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.items) and all(i.passed for i in self.items)

    @property
    def first_failure(self) -> Item | None:
        return next((i for i in self.items if not i.passed), None)

    @property
    def reason(self) -> Message | None:
        f = self.first_failure
        return f.reason if f else None

    def _title(self, lang: str) -> str:
        key = "exercises.result.passed" if self.passed else "exercises.result.failed"
        return M(key, name=M(f"exercises.name.{self.exercise}"), n=sum(i.passed for i in self.items),
                 total=len(self.items)).text(lang)

    def text(self, lang: str | None = None) -> str:
        lang = lang or language()
        lines = [self._title(lang)]
        for i in self.items:
            lines.append(f"  {'✓' if i.passed else '✗'} {i.what.text(lang)}"
                         + (f"\n      {i.reason.text(lang)}" if i.reason is not None else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_html_(self) -> str:  # a notebook shows this
        lang = language()
        rows = "".join(f"<li>{'✓' if i.passed else '✗'} {html.escape(i.what.text(lang))}"
                       + (f"<br><i>{html.escape(i.reason.text(lang))}</i>" if i.reason is not None else "") + "</li>"
                       for i in self.items)
        return (f"<div>{'✅' if self.passed else '❌'} <b style='color:{'#1a7f37' if self.passed else '#cf222e'}'>"
                f"{html.escape(self._title(lang))}</b><ul style='list-style:none'>{rows}</ul></div>")


class _Stop(Exception):
    """Ends a check early: the item that failed is already recorded."""


class _Run:
    """The items of one check, collected as it goes."""

    def __init__(self, exercise: str, layout: str | None = None):
        self.result = CheckResult(exercise, [], layout)

    def ok(self, what: Message, note: Message | None = None) -> None:
        self.result.items.append(Item(what, True, note))

    def fail(self, what: Message, reason: Message) -> None:
        self.result.items.append(Item(what, False, reason))
        raise _Stop

    def require(self, cond: bool, what: Message, reason: Message) -> None:
        self.ok(what) if cond else self.fail(what, reason)


def _checked(exercise: str, body: Callable[[_Run], None], layout: str | None = None) -> CheckResult:
    run = _Run(exercise, layout)
    try:
        body(run)
    except _Stop:
        pass
    return run.result


class TooSlow(BaseException):
    """A call ran out of time (a BaseException, so that a student's ``except Exception`` lets it through)."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class InputChanged(Exception):
    """The function changed one of its inputs in place."""


class _TimeUp(BaseException):
    pass


class _Failed(Exception):
    def __init__(self, message: Message, cause: BaseException | None):
        super().__init__(message.id)
        self.message, self.cause = message, cause


def _limited(fn: Callable, args: Sequence[Any], seconds: float | None) -> Any:
    """``fn(*args)``, interrupted after ``seconds`` by an exception raised in this thread (CPython), again
    every 50 ms until it lands, so that a loop that catches it still ends."""
    api = getattr(ctypes, "pythonapi", None)
    if seconds is None or api is None:
        return fn(*args)
    tid, lock, done, on = threading.get_ident(), threading.Lock(), threading.Event(), [True]

    def raise_here(exc) -> None:
        api.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(exc) if exc else None)

    def watch() -> None:
        wait = seconds
        while not done.wait(wait):
            with lock:
                if not on[0]:
                    return
                raise_here(_TimeUp)
            wait = 0.05

    threading.Thread(target=watch, daemon=True).start()
    try:
        try:
            return fn(*args)
        finally:
            with lock:
                on[0] = False
                raise_here(None)  # one that was set but not yet raised
            done.set()
    except _TimeUp:
        raise TooSlow(seconds) from None


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _blame(exc: BaseException, fn: Callable) -> str:
    """The function that raised ``exc`` (the innermost frame: an unwritten helper, not its caller)."""
    where = getattr(exc, "function", None)
    tb = exc.__traceback__
    while where is None and tb is not None:
        where, tb = (tb.tb_frame.f_code.co_name if tb.tb_next is None else None), tb.tb_next
    return where if where and where.isidentifier() else _name(fn)


def _why(exc: BaseException, fn: Callable) -> Message:
    if isinstance(exc, NotImplementedError):
        return M("exercises.not_written", name=_blame(exc, fn))
    if isinstance(exc, TooSlow):
        return M("exercises.too_slow", name=_name(fn), seconds=f"{exc.seconds:g}")
    if isinstance(exc, InputChanged):
        return M("exercises.changes_input", name=_name(fn))
    return M("exercises.raised", name=_name(fn), error=f"{type(exc).__name__}: {exc}")


def _clone(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return a.detach().clone()
    if isinstance(a, np.ndarray):
        return a.copy()
    return type(a)(_clone(x) for x in a) if isinstance(a, (list, tuple)) else a


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b.detach())
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return all(_same(x, y) for x, y in zip(a, b)) if isinstance(a, (list, tuple)) else True


def _attempt(fn: Callable, args: Sequence[Any]) -> Any:
    """The student's ``fn(*args)`` within the time limit; any failure raises :class:`_Failed` with its message."""
    before = _clone(list(args))
    try:
        out = _limited(fn, args, getattr(fn, "time_limit", CALL_LIMIT_S))
    except (Exception, TooSlow) as exc:  # the student's code: whatever it raises is a message
        raise _Failed(_why(exc, fn), exc) from None
    if not _same(before, list(args)):
        raise _Failed(_why(InputChanged(), fn), None)
    return out


def _call(run: _Run, fn: Callable, args: Sequence[Any], what: Message, hints: dict | None = None) -> Any:
    try:
        return _attempt(fn, args)
    except _Failed as f:
        run.fail(what, next((m for t, m in (hints or {}).items() if isinstance(f.cause, t)), f.message))


def _numpy_args(args: Sequence[Any]) -> list[Any]:
    return [a.detach().numpy().copy() if isinstance(a, torch.Tensor) else
            [x.detach().numpy().copy() for x in a] if isinstance(a, list) else a for a in args]


def _as_array(run: _Run, fn: Callable, out: Any, what: Message) -> np.ndarray:
    """The student's result as a float64 array, or one message saying what it was instead."""
    if out is None:
        run.fail(what, M("exercises.returned_none", name=_name(fn)))
    try:
        return out.detach().cpu().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float64)
    except (TypeError, ValueError, RuntimeError):
        run.fail(what, M("exercises.not_number", name=_name(fn), got=type(out).__name__))


def _first_call(run: _Run, fn: Callable, args: Sequence[Any], layout: str | None, note: bool = True) -> tuple[str, Any]:
    """Call with torch inputs; if that raises, try NumPy.  Returns ('torch'|'numpy', output)."""
    what = M("exercises.item.runs", layout=M(f"exercises.layout.{layout}")) if layout else M("exercises.item.runs_plain")
    if not callable(fn):
        run.fail(what, M("exercises.not_callable", got=type(fn).__name__))
    try:
        kind, out = "torch", _attempt(fn, _clone(args))
    except _Failed as first:
        if first.message.id != "exercises.raised":
            run.fail(what, first.message)
        try:
            kind, out = "numpy", _attempt(fn, _numpy_args(args))
        except _Failed:
            run.fail(what, first.message)
    written = "torch" if isinstance(out, torch.Tensor) else "Python float" if type(out) in (float, int) else "NumPy"
    run.ok(what, M("exercises.note.kind", kind=written) if note and (layout or written != "torch") else None)
    return kind, out


def _evaluate(run: _Run, fn: Callable, kind: str, args: Sequence[Any], what: Message, hints: dict | None = None) -> np.ndarray:
    args = _numpy_args(args) if kind == "numpy" else _clone(list(args))
    return _as_array(run, fn, _call(run, fn, args, what, hints), what)


def _finite(run: _Run, fn: Callable, arr: np.ndarray) -> None:
    run.require(bool(np.isfinite(arr).all()), M("exercises.item.finite"), M("exercises.not_finite", name=_name(fn)))


def _cost(run: _Run, fn: Callable, out: Any, negative: bool = False) -> float:
    """A cost's first value: one finite number, never negative (unless ``negative`` is allowed)."""
    what = M("exercises.item.scalar")
    arr = _as_array(run, fn, out, what)
    run.require(arr.size == 1, what, M("exercises.not_scalar", name=_name(fn), shape=str(tuple(arr.shape))))
    _finite(run, fn, arr)
    value = float(arr.reshape(()))
    if value < 0 and not negative:
        run.fail(M("exercises.item.not_negative"), M("exercises.negative_cost", name=_name(fn), got=value))
    return value


def _close(a: float, b: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-12


def _factor(got: float, want: float, n_layers: int = 0) -> Message | None:
    """An exact factor between a result and the expected one, as a hint (2, 1/2, 1/number of layers)."""
    q = got / want if want else float("nan")
    for factor, label in ((2.0, "2"), (0.5, "1/2")):
        if _close(q, factor):
            return M("exercises.factor", factor=label)
    return M("exercises.lambda_mean", n=n_layers) if n_layers > 1 and _close(q, 1 / n_layers) else None


def _check_layout(layout: str, allowed: Sequence[str]) -> None:
    if layout not in allowed:
        raise InputError("exercises.bad_layout", layout=layout, allowed=", ".join(allowed))


def to_layout(a: torch.Tensor, layout: str) -> torch.Tensor:
    """An engine-layout activation ``(1, n_C, n_H, n_W)`` in ``layout`` (a view: gradients flow back)."""
    if layout == "assignment":
        return a.permute(0, 2, 3, 1).contiguous()
    return a[0].flatten(1) if layout == "unrolled" else a


def from_layout(a: torch.Tensor, layout: str, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """The inverse of :func:`to_layout` (``shape`` = ``(n_C, n_H, n_W)`` is needed for 'unrolled')."""
    if layout == "assignment":
        return a.permute(0, 3, 1, 2)
    return a.reshape(1, *shape) if layout == "unrolled" else a


def _activation(shape: tuple[int, int, int], gen: torch.Generator) -> torch.Tensor:
    """A ReLU-like random activation (1, n_C, n_H, n_W), float64: non-negative, some zeros."""
    return torch.randn((1, *shape), generator=gen, dtype=torch.float64).clamp_min(-0.3) + 0.3


def _shuffle_positions(a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same activation with its n_H x n_W positions in another order (each channel alike)."""
    n = a.shape[-2] * a.shape[-1]
    perm = torch.randperm(n, generator=gen)
    perm = perm.roll(1) if bool((perm == torch.arange(n)).all()) else perm
    return a.flatten(2)[..., perm].reshape(a.shape)


def _expected(kind: str, constant: str) -> str:
    constant = _ALIASES.get(kind, {}).get(constant, constant)
    if constant not in CONSTANTS[kind] and constant != "any":
        raise InputError("exercises.bad_constant", constant=constant, allowed=", ".join([*CONSTANTS[kind], "any"]))
    return constant


def _constant_item(run: _Run, kind: str, want: str, values: list[float], raws: list[float], shapes) -> str:
    """The 'values' item: which constant the student wrote (``values[i] = c(shape_i) * raws[i]``); passes
    when it is the expected one."""
    what = M("exercises.item.values", n=len(shapes))
    got = next((name for name, factor in CONSTANTS[kind].items()
                if all(_close(v, factor(h, w, c) * r) for v, r, (c, h, w) in zip(values, raws, shapes))), None)
    if got is not None and want in ("any", got):
        run.ok(what, M("exercises.note.constant", constant=M(f"exercises.const.{kind}.{got}")))
        return got
    base = want if want != "any" else "none" if kind == "gram" else "notes"
    want_name = M(f"exercises.const.{kind}.{base}")
    if got is None:
        refs = [CONSTANTS[kind][base](h, w, c) * r for r, (c, h, w) in zip(raws, shapes)]
        hints = [_factor(v, r) for v, r in zip(values, refs)]
        if hints[0] is not None and all(h == hints[0] for h in hints):
            run.fail(what, hints[0])
        i = next(i for i, (v, r) in enumerate(zip(values, refs)) if not _close(v, r))
        c, h, w = shapes[i]
        run.fail(what, M("exercises.values_differ", shape=f"(n_C, n_H, n_W) = ({c}, {h}, {w})", got=values[i],
                         want=refs[i]))
    if got == "none":
        run.fail(what, M("exercises.constant_missing", want=want_name))
    key = "assignment" if kind == "style" and got == "slides" else got
    run.fail(what, M("exercises.constant_other", got=M(f"exercises.const.{kind}.{got}"), want=want_name, key=key))


def _gradient(run: _Run, fn: Callable, kind: str, make_args: Callable[[], tuple[list, list[torch.Tensor]]],
              reference: Callable[..., torch.Tensor]) -> None:
    """Compare the gradient of the student's ``fn`` with autograd of ``reference`` (same inputs)."""
    what = M("exercises.item.gradient")
    numpy = M("exercises.grad_numpy", name=_name(fn))
    if kind == "numpy":
        run.fail(what, numpy)
    args, leaves = make_args()
    try:
        with warnings.catch_warnings():  # e.g. float() of a tensor that requires grad: the message says it
            warnings.simplefilter("ignore")
            out = _attempt(fn, args)
    except _Failed as f:  # it ran on plain inputs: what breaks on inputs that carry a gradient is NumPy
        run.fail(what, numpy if f.message.id == "exercises.raised" else f.message)
    if not isinstance(out, torch.Tensor):
        run.fail(what, M("exercises.grad_float", name=_name(fn)) if type(out) in (float, int) else numpy)
    if not out.requires_grad:
        run.fail(what, M("exercises.grad_detached", name=_name(fn)))
    try:
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    except (Exception, TooSlow) as exc:
        run.fail(what, _why(exc, fn))
    ref_args, ref_leaves = make_args()
    ref_grads = torch.autograd.grad(reference(*ref_args).sum(), ref_leaves)
    if any(g is None for g in grads):
        run.fail(what, M("exercises.grad_detached", name=_name(fn)))
    err = max(float((g.double() - r).norm() / r.norm().clamp_min(1e-30)) for g, r in zip(grads, ref_grads))
    run.require(err <= 1e-3, what, M("exercises.grad_differs", name=_name(fn), err=err))


def _scaling(run: _Run, what_name: str, want: float, got: float, square_missing: float) -> None:
    what = M("exercises.item.scaling", want=f"{want:g}")
    if _close(got, want, 1e-3):
        return run.ok(what)
    key = "exercises.scaling_square" if _close(got, square_missing, 1e-3) else "exercises.scaling_other"
    run.fail(what, M(key, what=M(f"exercises.name.{what_name}"), want=f"{want:g}", got=got))


def _layout_hint(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """A failing check is tried once more with the other layout (engine <-> assignment): when it passes
    there, the student wrote for that layout, and the first failure says so instead."""
    signature = inspect.signature(check)

    @functools.wraps(check)
    def wrapped(*args, **kwargs) -> CheckResult:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        result = check(*bound.args, **bound.kwargs)
        layout = bound.arguments["layout"]
        if result.passed or layout not in ("engine", "assignment") or result.reason is None or \
                result.reason.id in ("exercises.not_written", "exercises.not_callable", "exercises.too_slow"):
            return result
        other = "assignment" if layout == "engine" else "engine"
        bound.arguments["layout"] = other
        if check(*bound.args, **bound.kwargs).passed:
            result.first_failure.reason = M("exercises.other_layout", layout=M(f"exercises.layout.{other}"),
                                            given=M(f"exercises.layout.{layout}"), key=other)
        return result

    return wrapped


def _pair_reference(kind: str, constant: str):
    def ref(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n_C, n_H, n_W = y.shape[-3:]
        raw = costs.content_cost(x, y, "none") if kind == "content" else \
            costs.style_layer_cost(costs.gram_matrix(x), y, "none")
        return raw * CONSTANTS[kind][constant](n_H, n_W, n_C)
    return ref


def _pair_check(exercise: str, kind: str, fn: Callable, layout: str, constant: str, seed: int) -> CheckResult:
    """content_cost(a_C, a_G) and layer_style_cost(a_S, a_G): the same properties, scaling x4 or x16."""
    _check_layout(layout, ("engine", "assignment"))
    want = _expected(kind, constant)
    layer = kind == "style"

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        a, b = _activation(SHAPES[0], gen), _activation(SHAPES[0], gen)
        L = lambda x: to_layout(x, layout)  # noqa: E731
        kind_, out = _first_call(run, fn, [L(a), L(b)], layout)
        value = _cost(run, fn, out)

        def ev(x, y, what):
            return float(_evaluate(run, fn, kind_, [L(x), L(y)], what).sum())

        zero = ev(b, b, M("exercises.item.zero"))
        run.require(abs(zero) <= 1e-9 * max(1.0, abs(value)), M("exercises.item.zero"), M("exercises.not_zero", got=zero))
        swapped = ev(b, a, M("exercises.item.symmetric_cost"))
        run.require(_close(swapped, value), M("exercises.item.symmetric_cost"),
                    M("exercises.not_symmetric_cost", a=value, b=swapped))
        if layer:
            shuffled = ev(a, _shuffle_positions(b, gen), M("exercises.item.shuffle"))
            run.require(_close(shuffled, value), M("exercises.item.shuffle"),
                        M("exercises.not_shuffle_invariant", what=M("exercises.name.layer_style_cost")))
        grown = ev(2 * a, 2 * b, M("exercises.item.scaling", want="16" if layer else "4"))
        _scaling(run, exercise, 16.0 if layer else 4.0, grown / value if value else float("nan"), 4.0 if layer else 2.0)
        values, raws = [], []
        for shape in SHAPES:
            x, y = _activation(shape, gen), _activation(shape, gen)
            values.append(ev(x, y, M("exercises.item.values", n=len(SHAPES))))
            raws.append(float(_pair_reference(kind, "none")(x, y)))
        used = _constant_item(run, kind, want, values, raws, SHAPES)

        def make_args():
            x = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 1))
            y = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 2)).requires_grad_(True)
            return [L(x), L(y)], [y]

        _gradient(run, fn, kind_, make_args,
                  lambda x, y: _pair_reference(kind, used)(from_layout(x, layout), from_layout(y, layout)))

    return _checked(exercise, body, layout)


@_layout_hint
def check_content_cost(fn: Callable, layout: str = "engine", constant: str = "notes", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_C, a_G) -> J_content = c * ||a(C) - a(G)||^2``.  ``constant``: ``'notes'`` (= the
    slides' 1/2, teachkit's), ``'assignment'`` (1/(4 n_H n_W n_C)), ``'none'``, ``'mean'`` or ``'any'``."""
    return _pair_check("content_cost", "content", fn, layout, constant, seed)


@_layout_hint
def check_layer_style_cost(fn: Callable, layout: str = "engine", constant: str = "notes",
                           seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_S, a_G) -> J_style[l] = c * ||G(S) - G(G)||_F^2``.  ``constant``: ``'notes'``
    (1/(2 n_H n_W n_C), teachkit's), ``'slides'`` = ``'assignment'`` ((1/(2 n_H n_W n_C))^2), ``'none'``,
    ``'mean'`` or ``'any'``."""
    return _pair_check("layer_style_cost", "style", fn, layout, constant, seed)


@_layout_hint
def check_gram_matrix(fn: Callable, layout: str = "engine", constant: str = "none", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a) -> G``, ``G_kk' = sum_ij a_ijk a_ijk'`` (n_C x n_C; ``(1, n_C, n_C)`` is accepted).
    ``a`` in ``layout`` (``'unrolled'``: the assignment's ``gram_matrix(A)``).  ``constant``: ``'none'``
    (a plain sum, teachkit's), ``'positions'`` (divided by n_H n_W), ``'mean'`` or ``'any'``."""
    _check_layout(layout, LAYOUTS)
    want = _expected("gram", constant)
    values_item = M("exercises.item.values", n=len(SHAPES))

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        n_C, n_H, n_W = SHAPES[0]
        a = _activation(SHAPES[0], gen)
        kind, out = _first_call(run, fn, [to_layout(a, layout)], layout)
        what_shape = M("exercises.item.gram_shape")
        g = _as_array(run, fn, out, what_shape)
        g_sq = g.reshape(g.shape[-2:]) if g.ndim >= 2 and int(np.prod(g.shape[:-2])) == 1 else g
        if g_sq.shape != (n_C, n_C):
            if g_sq.shape == (n_H * n_W, n_H * n_W):
                run.fail(what_shape, M("exercises.gram_positions", shape=str(tuple(g.shape))))
            run.fail(what_shape, M("exercises.gram_shape", shape=str(tuple(g.shape)), want=f"({n_C}, {n_C})"))
        run.ok(what_shape)
        _finite(run, fn, g_sq)
        run.require(np.allclose(g_sq, g_sq.T, rtol=RTOL, atol=1e-9 * np.abs(g_sq).max()),
                    M("exercises.item.symmetric_gram"), M("exercises.not_symmetric_gram"))
        ev_min = float(np.linalg.eigvalsh((g_sq + g_sq.T) / 2).min())
        run.require(ev_min >= -1e-6 * max(1.0, float(np.abs(g_sq).max())), M("exercises.item.psd"),
                    M("exercises.not_psd", ev=f"{ev_min:.3g}"))

        def ev(x, what=values_item):
            r = _evaluate(run, fn, kind, [to_layout(x, layout)], what)
            return r.reshape(r.shape[-2:]) if r.ndim >= 2 else r

        shuffled = ev(_shuffle_positions(a, gen), M("exercises.item.shuffle"))
        run.require(shuffled.shape == g_sq.shape and np.allclose(shuffled, g_sq, rtol=RTOL, atol=1e-9),
                    M("exercises.item.shuffle"), M("exercises.not_shuffle_invariant", what=M("exercises.name.gram_matrix")))
        doubled = ev(2 * a, M("exercises.item.scaling", want="4"))
        _scaling(run, "gram_matrix", 4.0, float(np.abs(doubled).sum() / np.abs(g_sq).sum()) if np.abs(g_sq).sum()
                 else float("nan"), 2.0)
        values, raws = [], []
        scale = CONSTANTS["gram"]["none" if want == "any" else want]
        for c, h, w in SHAPES:
            x = _activation((c, h, w), gen)
            mine, ref = ev(x), costs.gram_matrix(x[0]).numpy()
            if mine.shape != ref.shape:
                run.fail(values_item, M("exercises.gram_shape", shape=str(tuple(mine.shape)), want=str(tuple(ref.shape))))
            if not np.allclose(mine / max(np.abs(mine).max(), 1e-300), ref / np.abs(ref).max(), rtol=1e-3, atol=1e-6):
                # not a multiple of the reference: no constant can explain it; show the worst entry
                k, k2 = np.unravel_index(np.argmax(np.abs(mine - scale(h, w, c) * ref)), ref.shape)
                run.fail(values_item, M("exercises.gram_differs", shape=f"(n_C, n_H, n_W) = ({c}, {h}, {w})", k=int(k),
                                        k2=int(k2), got=float(mine[k, k2]), want=float(scale(h, w, c) * ref[k, k2])))
            values.append(float((mine * ref).sum()))  # one number per shape: the projection on the reference
            raws.append(float((ref * ref).sum()))
        used = _constant_item(run, "gram", want, values, raws, SHAPES)

        def make_args():
            x = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 1)).requires_grad_(True)
            return [to_layout(x, layout)], [x]

        def reference(x_in):
            c, h, w = SHAPES[1]
            return costs.gram_matrix(from_layout(x_in, layout, SHAPES[1])[0]) * CONSTANTS["gram"][used](h, w, c)

        _gradient(run, fn, kind, make_args, reference)

    return _checked("gram_matrix", body, layout)


@_layout_hint
def check_style_cost(fn: Callable, layer_style_cost: Callable | None = None, layout: str = "engine",
                     constant: str = "notes", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_S, a_G, lambdas) -> J_style = sum_l lambda[l] J_style[l]`` (lists, one per layer).
    Each ``J_style[l]`` is the student's own ``layer_style_cost`` when given (so this check looks at the
    weighting only), else teachkit's with ``constant``."""
    _check_layout(layout, ("engine", "assignment"))
    want = _expected("style", constant)
    ref_layer = _pair_reference("style", "notes" if want == "any" else want)

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        S, G = [_activation(s, gen) for s in SHAPES], [_activation(s, gen) for s in SHAPES]
        L = lambda xs: [to_layout(x, layout) for x in xs]  # noqa: E731
        lam, n = [0.5, 0.2, 0.3], len(SHAPES)
        kind, out = _first_call(run, fn, [L(S), L(G), list(lam)], layout)
        value = _cost(run, fn, out)
        values_item = M("exercises.item.values", n=n)
        if layer_style_cost is not None:
            terms = [float(_as_array(run, layer_style_cost, _call(run, layer_style_cost, [to_layout(s, layout), to_layout(
                g, layout)], values_item), M("exercises.item.scalar")).sum()) for s, g in zip(S, G)]
        else:
            terms = [float(ref_layer(s, g)) for s, g in zip(S, G)]

        def ev(weights, what, hints=None):
            return float(_evaluate(run, fn, kind, [L(S), L(G), list(weights)], what, hints).sum())

        what = M("exercises.item.lambda_zero")
        zero = ev([0.0] * n, what, {ZeroDivisionError: M("exercises.lambda_normalised")})
        if not np.isfinite(zero):
            run.fail(what, M("exercises.lambda_normalised"))
        run.require(abs(zero) <= 1e-9 * max(1.0, abs(value)), what, M("exercises.lambda_ignored", got=zero))
        what = M("exercises.item.lambda_onehot")
        for i in range(n):
            got_i = ev([1.0 if j == i else 0.0 for j in range(n)], what)
            if not _close(got_i, terms[i]):
                if abs(got_i) <= 1e-12 and i < n - 1 and _close(value, lam[-1] * terms[-1]):
                    run.fail(what, M("exercises.lambda_last_only"))
                if abs(got_i) <= 1e-12 and i > 0 and _close(value, lam[0] * terms[0]):
                    run.fail(what, M("exercises.lambda_first_only"))
                run.fail(what, _factor(got_i, terms[i], n) or M("exercises.lambda_wrong_layer", i=i, want=terms[i], got=got_i))
        run.ok(what)
        expected = sum(w * t for w, t in zip(lam, terms))
        run.require(_close(value, expected), M("exercises.item.values_sum"), _factor(value, expected, n) or
                    M("exercises.values_differ", shape=f"λ = {lam}", got=value, want=expected))

        def make_args():
            g2 = torch.Generator().manual_seed(seed + 3)
            s_, g_ = [_activation(s, g2) for s in SHAPES], [_activation(s, g2).requires_grad_(True) for s in SHAPES]
            return [L(s_), L(g_), list(lam)], g_

        def reference(s_in, g_in, weights):
            layer = layer_style_cost or (lambda x, y: ref_layer(from_layout(x, layout), from_layout(y, layout)))
            return sum(w * layer(x, y) for w, x, y in zip(weights, s_in, g_in))

        _gradient(run, fn, kind, make_args, reference)

    return _checked("style_cost", body, layout)


def check_total_cost(fn: Callable, seed: int = 0) -> CheckResult:
    r"""Check ``fn(J_content, J_style, alpha, beta) -> J = alpha J_content + beta J_style``."""

    def body(run: _Run) -> None:
        t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
        kind, out = _first_call(run, fn, [t(3.0), t(5.0), 10.0, 40.0], None)
        _cost(run, fn, out, negative=True)
        what = M("exercises.item.weights")
        rng = np.random.default_rng(seed)
        ev = lambda jc, js, a, b: float(_evaluate(run, fn, kind, [t(jc), t(js), a, b], what).sum())  # noqa: E731
        for _ in range(3):
            jc, js, a, b = (float(v) for v in rng.uniform(0.5, 5.0, 4))
            got, want = ev(jc, js, a, b), a * jc + b * js
            if _close(got, want):
                continue
            if _close(got, b * jc + a * js):
                run.fail(what, M("exercises.total_swapped"))
            if _close(got, jc + js):
                run.fail(what, M("exercises.total_unweighted"))
            if _close(ev(jc, js, 2 * a + 1, 3 * b + 1), got):
                run.fail(what, M("exercises.total_ignores_weights"))
            run.fail(what, _factor(got, want) or M("exercises.values_differ", shape=f"J_content={jc:.3g}, "
                     f"J_style={js:.3g}, alpha={a:.3g}, beta={b:.3g}", got=got, want=want))
        run.ok(what)

        def make_args():
            jc = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
            js = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
            return [jc, js, 3.0, 0.5], [jc, js]

        _gradient(run, fn, kind, make_args, lambda jc, js, a, b: costs.total_cost(jc, js, a, b))

    return _checked("total_cost", body, None)


#: VGG19's layers up to pool3 as (kernel, stride): conv 3x3 stride 1, max-pool 2x2 stride 2
VGG19_TO_POOL3 = [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (3, 1), (3, 1), (2, 2)]


def _rf_reference(layers: Sequence[tuple[int, int]]) -> list[int]:
    from torch import nn

    from ..receptive_field import receptive_fields

    seq = nn.Sequential(*[nn.MaxPool2d(kernel_size=int(k), stride=int(s)) for k, s in layers])
    return [rf.size for rf in receptive_fields(seq).values()]


def _rf_variants(layers):
    """The sizes that three common mistakes give: no jump, the layer's own stride, starting from 0."""
    no_jump, own, off = [], [], []
    s1, s2, jump, s3 = 1, 1, 1, 1
    for k, s in layers:
        s1 += k - 1
        no_jump.append(s1)
        s2 += (k - 1) * jump * s
        own.append(s2)
        s3 += (k - 1) * jump
        off.append(s3 - 1)
        jump *= s
    return {"exercises.rf_no_jump": no_jump, "exercises.rf_own_stride": own, "exercises.rf_off_by_one": off}


def check_receptive_field(fn: Callable, seed: int = 0) -> CheckResult:
    r"""Check ``fn(layers) -> sizes``: the receptive-field size after each ``(kernel, stride)`` layer,
    ``size = 1 + sum_l (k_l - 1) * jump_l`` (``jump_l``: the product of the strides before layer ``l``).
    Reference: :func:`teachkit.receptive_field.receptive_fields`."""

    def body(run: _Run) -> None:
        rng = np.random.default_rng(seed)
        stacks = [VGG19_TO_POOL3] + [[(int(rng.integers(2, 6)), int(rng.integers(1, 3)))
                                      for _ in range(int(rng.integers(3, 7)))] for _ in range(3)]
        _first_call(run, fn, [list(stacks[0])], None, note=False)
        what_len, what = M("exercises.item.rf_length"), M("exercises.item.rf_values", n=len(stacks))
        for layers in stacks:
            got = _as_array(run, fn, _call(run, fn, [list(layers)], what), what_len).reshape(-1)
            if got.size != len(layers):
                run.fail(what_len, M("exercises.rf_length", want=len(layers), got=got.size))
            want = _rf_reference(layers)
            if np.allclose(got, want):
                continue
            run.ok(what_len)
            for msg_id, sizes in _rf_variants(layers).items():
                if np.allclose(got, sizes):
                    run.fail(what, M(msg_id))
            i = int(np.argmax(~np.isclose(got, want)))
            run.fail(what, M("exercises.rf_values", layers=str(list(layers)), i=i + 1, want=want[i],
                             got=int(got[i]) if float(got[i]).is_integer() else float(got[i])))
        run.ok(what_len)
        run.ok(what)

    return _checked("receptive_field", body, None)


#: exercise name -> its check
CHECKS: dict[str, Callable[..., CheckResult]] = {
    "receptive_field": check_receptive_field,
    "total_cost": check_total_cost,
    "content_cost": check_content_cost,
    "gram_matrix": check_gram_matrix,
    "layer_style_cost": check_layer_style_cost,
    "style_cost": check_style_cost,
}
