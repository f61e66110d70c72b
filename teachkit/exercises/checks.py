r"""Checks of a student's own cost functions that say *why* something is wrong, in English and Chinese.

Each ``check_*`` function takes the student's function and returns a :class:`CheckResult`: the list
of what was checked, what passed and, at the first failure, the reason as a teacher would say it (a
:class:`teachkit.messages.Message` of the ``exercises`` domain, rendered in the notebook's language).
A check never raises for a mistake of the student's: an exception inside their function, a wrong
shape, a NaN, NumPy where a gradient is needed -- each becomes one message.

How a check decides (the oracle is always teachkit's own formula, :mod:`teachkit.costs`):

* **properties** that hold whatever the constant: zero for equal inputs, symmetry, the Gram matrix
  is symmetric, positive semi-definite and blind to the order of positions, and how each result
  scales when the activations are doubled (Gram x4, content cost x4, layer style cost x16);
* **values** against :mod:`teachkit.costs` on random inputs of several shapes, where the constant in
  front is recognised among the known ones (the notes', the slides', the assignment's, none, a mean)
  and named;
* the **gradient**, against autograd of teachkit's formula.

Inputs: the student's function may use NumPy or torch (a NumPy function passes the value checks and
is told that the engine needs torch for the gradient).  ``layout`` says what the student's function
receives: ``'engine'`` -- teachkit's ``(1, n_C, n_H, n_W)`` -- or ``'assignment'`` -- the course
assignment's ``(1, n_H, n_W, n_C)``; a Gram matrix may also take the ``'unrolled'`` ``(n_C, n_H n_W)``.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import costs
from ..messages import Message, language

__all__ = [
    "Item", "CheckResult", "LAYOUTS", "CONSTANTS",
    "check_content_cost", "check_gram_matrix", "check_layer_style_cost", "check_style_cost",
    "check_total_cost", "check_receptive_field", "CHECKS", "to_layout", "from_layout",
]

LAYOUTS = ("engine", "assignment", "unrolled")

#: The constants a student may put in front of a sum of squares: name -> factor(n_H, n_W, n_C).
CONSTANTS: dict[str, dict[str, Callable[[int, int, int], float]]] = {
    "content": {
        "notes": lambda h, w, c: 0.5,  # the lecture notes' 1/2 (teachkit.costs, 'lecture')
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
_ALIASES = {"assignment": "slides", "gatys": "slides", "lecture": "notes"}

#: shapes (n_C, n_H, n_W) of the random inputs: their sizes differ, so the constants can be told apart
SHAPES = ((3, 4, 5), (6, 2, 3), (4, 7, 2))
RTOL = 1e-4


# ---- results -----------------------------------------------------------------------------------


def M(msg_id: str, **params: Any) -> Message:
    return Message(msg_id, params)


@dataclass
class Item:
    """One thing checked: ``what`` (a Message), whether it ``passed``, and ``reason`` -- why it
    failed, or a note when it passed (e.g. which constant the student wrote)."""

    what: Message
    passed: bool
    reason: Message | None = None


@dataclass
class CheckResult:
    """What one check found.  ``str(result)`` is plain text in the process's language; in a notebook
    it shows as a small Markdown list; ``result.text('zh')`` renders it in Chinese."""

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
        """The first failure's reason (None when everything passed)."""
        f = self.first_failure
        return f.reason if f else None

    def reason_ids(self) -> list[str]:
        return [i.reason.id for i in self.items if not i.passed and i.reason]

    def _title(self, lang: str) -> str:
        n_ok = sum(i.passed for i in self.items)
        key = "exercises.result.passed" if self.passed else "exercises.result.failed"
        return M(key, name=M(f"exercises.name.{self.exercise}"), n=n_ok, total=len(self.items)).text(lang)

    def text(self, lang: str | None = None) -> str:
        lang = lang or language()
        lines = [self._title(lang)]
        for i in self.items:
            mark = "✓" if i.passed else "✗"
            line = f"  {mark} {i.what.text(lang)}"
            if i.reason is not None:
                line += f"\n      {i.reason.text(lang)}"
            lines.append(line)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        lang = language()
        icon = "✅" if self.passed else "❌"
        out = [f"{icon} **{self._title(lang)}**", ""]
        for i in self.items:
            mark = "✓" if i.passed else "✗"
            line = f"- {mark} {i.what.text(lang)}"
            if i.reason is not None:
                body = i.reason.text(lang)
                line += f"  \n  {'**' + body + '**' if not i.passed else '*' + body + '*'}"
            out.append(line)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        lang = language()
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = []
        for i in self.items:
            mark = "✓" if i.passed else "✗"
            extra = f"<br><i>{html.escape(i.reason.text(lang))}</i>" if i.reason is not None else ""
            rows.append(f"<li>{mark} {html.escape(i.what.text(lang))}{extra}</li>")
        return (f"<div><b style='color:{colour}'>{html.escape(self._title(lang))}</b>"
                f"<ul style='list-style:none'>{''.join(rows)}</ul></div>")


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
        if cond:
            self.ok(what)
        else:
            self.fail(what, reason)


def _checked(exercise: str, body: Callable[[_Run], None], layout: str | None = None) -> CheckResult:
    run = _Run(exercise, layout)
    try:
        body(run)
    except _Stop:
        pass
    return run.result


# ---- calling the student's code -------------------------------------------------------------------


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _call(run: _Run, fn: Callable, args: Sequence[Any], what: Message) -> Any:
    """The student's ``fn(*args)``; any exception becomes one message (NotImplementedError: not written)."""
    try:
        return fn(*args)
    except NotImplementedError:
        run.fail(what, M("exercises.not_written", name=_name(fn)))
    except Exception as exc:  # the student's code: whatever it raises is reported, never a traceback
        run.fail(what, M("exercises.raised", name=_name(fn), error=f"{type(exc).__name__}: {exc}"))


def _numpy_args(args: Sequence[Any]) -> list[Any]:
    return [a.detach().numpy().copy() if isinstance(a, torch.Tensor) else
            [x.detach().numpy().copy() for x in a] if isinstance(a, list) else a for a in args]


def _as_array(run: _Run, fn: Callable, out: Any, what: Message) -> np.ndarray:
    """The student's result as a float64 array, or one message saying what it was instead."""
    if out is None:
        run.fail(what, M("exercises.returned_none", name=_name(fn)))
    try:
        if isinstance(out, torch.Tensor):
            return out.detach().cpu().double().numpy()
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        run.fail(what, M("exercises.not_number", name=_name(fn), got=type(out).__name__))
    return arr


def _first_call(run: _Run, fn: Callable, args: Sequence[Any], layout: str | None, note: bool = True) -> tuple[str, Any]:
    """Call with torch inputs; if that raises, try NumPy.  Returns ('torch'|'numpy', output)."""
    what = M("exercises.item.runs", layout=M(f"exercises.layout.{layout}")) if layout else M("exercises.item.runs_plain")
    if not callable(fn):
        run.fail(what, M("exercises.not_callable", name="function", got=type(fn).__name__))
    try:
        out = fn(*[_clone(a) for a in args])
        kind = "torch"
    except NotImplementedError:
        run.fail(what, M("exercises.not_written", name=_name(fn)))
    except Exception as exc:
        try:
            out = fn(*_numpy_args([_clone(a) for a in args]))
            kind = "numpy"
        except Exception:
            run.fail(what, M("exercises.raised", name=_name(fn), error=f"{type(exc).__name__}: {exc}"))
    written = "torch" if kind == "torch" and isinstance(out, torch.Tensor) else "NumPy"
    run.ok(what, M("exercises.note.kind", kind=written) if note and (layout or written == "NumPy") else None)
    return kind, out


def _clone(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return a.detach().clone()
    if isinstance(a, list):
        return [_clone(x) for x in a]
    return a


def _evaluate(run: _Run, fn: Callable, kind: str, args: Sequence[Any], what: Message) -> np.ndarray:
    args = [_clone(a) for a in args]
    out = _call(run, fn, _numpy_args(args) if kind == "numpy" else args, what)
    return _as_array(run, fn, out, what)


def _scalar(run: _Run, fn: Callable, arr: np.ndarray) -> float:
    what = M("exercises.item.scalar")
    if arr.size != 1:
        run.fail(what, M("exercises.not_scalar", name=_name(fn), shape=str(tuple(arr.shape))))
    run.ok(what)
    return float(arr.reshape(()))


def _finite(run: _Run, fn: Callable, arr: np.ndarray) -> None:
    run.require(bool(np.isfinite(arr).all()), M("exercises.item.finite"), M("exercises.not_finite", name=_name(fn)))


def _close(a: float, b: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-12


# ---- layouts and inputs ----------------------------------------------------------------------------


def _check_layout(layout: str, allowed: Sequence[str]) -> None:
    if layout not in allowed:
        raise ValueError(M("exercises.bad_layout", layout=layout, allowed=", ".join(allowed)).text("en"))


def to_layout(a: torch.Tensor, layout: str) -> torch.Tensor:
    """An engine-layout activation ``(1, n_C, n_H, n_W)`` in ``layout`` (a view: gradients flow back)."""
    if layout == "engine":
        return a
    if layout == "assignment":
        return a.permute(0, 2, 3, 1).contiguous()
    if layout == "unrolled":
        return a[0].flatten(1)
    raise ValueError(f"unknown layout {layout!r}")


def from_layout(a: torch.Tensor, layout: str, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """The inverse of :func:`to_layout` (``shape`` = ``(n_C, n_H, n_W)`` is needed for 'unrolled')."""
    if layout == "engine":
        return a
    if layout == "assignment":
        return a.permute(0, 3, 1, 2)
    return a.reshape(1, *shape)


def _activation(shape: tuple[int, int, int], gen: torch.Generator) -> torch.Tensor:
    """A ReLU-like random activation (1, n_C, n_H, n_W), float64: non-negative, some zeros."""
    a = torch.randn((1, *shape), generator=gen, dtype=torch.float64)
    return a.clamp_min(-0.3) + 0.3


def _shuffle_positions(a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same activation with its n_H x n_W positions in another order (each channel alike)."""
    n = a.shape[-2] * a.shape[-1]
    perm = torch.randperm(n, generator=gen)
    if bool((perm == torch.arange(n)).all()):
        perm = perm.roll(1)
    return a.flatten(2)[..., perm].reshape(a.shape)


def _recognise(kind: str, values: list[float], raws: list[float], shapes: Sequence[tuple[int, int, int]]) -> str | None:
    """The known constant with which ``values[i] = c(shape_i) * raws[i]`` for every i (None: none)."""
    for name, factor in CONSTANTS[kind].items():
        if all(_close(v, factor(h, w, c) * r) for v, r, (c, h, w) in zip(values, raws, shapes)):
            return name
    return None


def _constant_name(kind: str, name: str) -> Message:
    return M(f"exercises.const.{kind}.{name}")


def _expected(kind: str, constant: str) -> str:
    if constant not in CONSTANTS[kind] and _ALIASES.get(constant) in CONSTANTS[kind]:
        constant = _ALIASES[constant]
    if constant not in CONSTANTS[kind] and constant != "any":
        raise ValueError(M("exercises.bad_constant", constant=constant,
                           allowed=", ".join([*CONSTANTS[kind], "any"])).text("en"))
    return constant


def _constant_item(run: _Run, kind: str, want: str, got: str | None, values: list[float], refs: list[float],
                   shapes) -> str:
    """The 'values' item: which constant the student wrote; passes when it is the expected one."""
    what = M("exercises.item.values", n=len(shapes))
    if got is not None and (want in ("any", got)):
        run.ok(what, M("exercises.note.constant", constant=_constant_name(kind, got)))
        return got
    if got is None:
        i = next(i for i, (v, r) in enumerate(zip(values, refs)) if not _close(v, r))
        c, h, w = shapes[i]
        run.fail(what, M("exercises.values_differ", shape=f"(n_C, n_H, n_W) = ({c}, {h}, {w})", got=values[i],
                         want=refs[i]))
    want_name = _constant_name(kind, "notes" if want == "any" else want)
    if got == "none":
        run.fail(what, M("exercises.constant_missing", want=want_name))
    key = "assignment" if kind == "style" and got == "slides" else got
    run.fail(what, M("exercises.constant_other", got=_constant_name(kind, got), want=want_name, key=key))


def _gradient(run: _Run, fn: Callable, kind: str, make_args: Callable[[], tuple[list, list[torch.Tensor]]],
              reference: Callable[..., torch.Tensor]) -> None:
    """Compare the gradient of the student's ``fn`` with autograd of ``reference`` (same inputs)."""
    what = M("exercises.item.gradient")
    if kind == "numpy":
        run.fail(what, M("exercises.grad_numpy", name=_name(fn)))
    args, leaves = make_args()
    try:
        with warnings.catch_warnings():  # e.g. float() of a tensor that requires grad: the message below says it
            warnings.simplefilter("ignore")
            out = fn(*args)
    except Exception:  # it ran on plain inputs: what breaks on inputs that carry a gradient is NumPy
        run.fail(what, M("exercises.grad_numpy", name=_name(fn)))
    if not isinstance(out, torch.Tensor):
        run.fail(what, M("exercises.grad_numpy", name=_name(fn)))
    if not out.requires_grad:
        run.fail(what, M("exercises.grad_detached", name=_name(fn)))
    try:
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    except Exception as exc:
        run.fail(what, M("exercises.raised", name=_name(fn), error=f"{type(exc).__name__}: {exc}"))
    ref_args, ref_leaves = make_args()
    ref_grads = torch.autograd.grad(reference(*ref_args).sum(), ref_leaves)
    err = 0.0
    for g, r in zip(grads, ref_grads):
        if g is None:
            run.fail(what, M("exercises.grad_detached", name=_name(fn)))
        err = max(err, float((g.double() - r).norm() / r.norm().clamp_min(1e-30)))
    run.require(err <= 1e-3, what, M("exercises.grad_differs", name=_name(fn), err=err))


def _scaling(run: _Run, fn: Callable, what_name: str, want: float, got: float, square_missing: float) -> None:
    what = M("exercises.item.scaling", want=f"{want:g}")
    if _close(got, want, 1e-3):
        run.ok(what)
    elif _close(got, square_missing, 1e-3):
        run.fail(what, M("exercises.scaling_square", what=M(f"exercises.name.{what_name}"), want=f"{want:g}",
                         got=got))
    else:
        run.fail(what, M("exercises.scaling_other", what=M(f"exercises.name.{what_name}"), want=f"{want:g}",
                         got=got))


def _layout_hint(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """A failing check is tried once more with the other layout (engine <-> assignment): when it passes
    there, the student wrote for that layout, and the first failure says so instead."""
    import functools
    import inspect

    signature = inspect.signature(check)

    @functools.wraps(check)
    def wrapped(*args, **kwargs) -> CheckResult:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        result = check(*bound.args, **bound.kwargs)
        layout = bound.arguments["layout"]
        if result.passed or layout not in ("engine", "assignment") or result.reason is None or \
                result.reason.id in ("exercises.not_written", "exercises.not_callable"):
            return result
        other = "assignment" if layout == "engine" else "engine"
        bound.arguments["layout"] = other
        if check(*bound.args, **bound.kwargs).passed:
            result.first_failure.reason = M("exercises.other_layout", layout=M(f"exercises.layout.{other}"),
                                            given=M(f"exercises.layout.{layout}"), key=other)
        return result

    return wrapped


# ---- content cost --------------------------------------------------------------------------------


def _content_reference(constant: str):
    def ref(a_C: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
        n_C, n_H, n_W = a_G.shape[-3:]
        raw = costs.content_cost(a_C, a_G, "none")
        return raw * CONSTANTS["content"][constant](n_H, n_W, n_C)
    return ref


@_layout_hint
def check_content_cost(fn: Callable, layout: str = "engine", constant: str = "notes", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_C, a_G) -> J_content``, the content cost ``c * ||a(C) - a(G)||^2``.

    ``a_C``, ``a_G``: ``(1, n_C, n_H, n_W)`` (``layout='engine'``) or ``(1, n_H, n_W, n_C)``
    (``'assignment'``).  ``constant``: the expected ``c`` -- ``'notes'`` (1/2, teachkit's),
    ``'assignment'`` (1/(4 n_H n_W n_C)), ``'none'``, ``'mean'`` or ``'any'`` (any of those).
    """
    _check_layout(layout, ("engine", "assignment"))
    want = _expected("content", constant)

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        a_C, a_G = _activation(SHAPES[0], gen), _activation(SHAPES[0], gen)
        L = lambda a: to_layout(a, layout)  # noqa: E731
        kind, out = _first_call(run, fn, [L(a_C), L(a_G)], layout)
        arr = _as_array(run, fn, out, M("exercises.item.scalar"))
        value = _scalar(run, fn, arr)
        _finite(run, fn, arr)
        ev = lambda x, y: float(_evaluate(run, fn, kind, [L(x), L(y)], M("exercises.item.zero")).sum())  # noqa: E731
        zero = ev(a_G, a_G)
        run.require(abs(zero) <= 1e-9 * max(1.0, abs(value)), M("exercises.item.zero"),
                    M("exercises.not_zero", got=zero))
        swapped = ev(a_G, a_C)
        run.require(_close(swapped, value), M("exercises.item.symmetric_cost"),
                    M("exercises.not_symmetric_cost", a=value, b=swapped))
        _scaling(run, fn, "content_cost", 4.0, ev(2 * a_C, 2 * a_G) / value if value else float("nan"), 2.0)
        values, raws, refs = [], [], []
        for shape in SHAPES:
            x, y = _activation(shape, gen), _activation(shape, gen)
            values.append(float(_evaluate(run, fn, kind, [L(x), L(y)], M("exercises.item.values", n=len(SHAPES))).sum()))
            raws.append(float(costs.content_cost(x, y, "none")))
            refs.append(float(_content_reference("notes" if want == "any" else want)(x, y)))
        got = _recognise("content", values, raws, [(s[0], s[1], s[2]) for s in SHAPES])
        used = _constant_item(run, "content", want, got, values, refs, SHAPES)

        def make_args():
            x = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 1))
            y = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 2)).requires_grad_(True)
            return [L(x), L(y)], [y]

        _gradient(run, fn, kind, make_args, lambda x, y: _content_reference(used)(from_layout(x, layout),
                                                                                  from_layout(y, layout)))

    return _checked("content_cost", body, layout)


# ---- Gram matrix ---------------------------------------------------------------------------------


def _gram_input(a: torch.Tensor, layout: str) -> torch.Tensor:
    return to_layout(a, layout)


@_layout_hint
def check_gram_matrix(fn: Callable, layout: str = "engine", constant: str = "none", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a) -> G``, the Gram (style) matrix ``G_kk' = sum_ij a_ijk a_ijk'`` (n_C x n_C).

    ``a``: ``(1, n_C, n_H, n_W)`` (``'engine'``), ``(1, n_H, n_W, n_C)`` (``'assignment'``) or the
    unrolled ``(n_C, n_H n_W)`` (``'unrolled'``, the assignment's ``gram_matrix(A)``).  The result may
    be ``(n_C, n_C)`` or ``(1, n_C, n_C)``.  ``constant``: ``'none'`` (a plain sum, teachkit's),
    ``'positions'`` (divided by n_H n_W), ``'mean'`` or ``'any'``.
    """
    _check_layout(layout, LAYOUTS)
    want = _expected("gram", constant)

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        shape = SHAPES[0]
        n_C, n_H, n_W = shape
        a = _activation(shape, gen)
        G_in = lambda x: _gram_input(x, layout)  # noqa: E731
        kind, out = _first_call(run, fn, [G_in(a)], layout)
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

        def ev(x):
            r = _evaluate(run, fn, kind, [G_in(x)], M("exercises.item.values", n=len(SHAPES)))
            return r.reshape(r.shape[-2:]) if r.ndim >= 2 else r

        shuffled = ev(_shuffle_positions(a, gen))
        run.require(shuffled.shape == g_sq.shape and np.allclose(shuffled, g_sq, rtol=RTOL, atol=1e-9),
                    M("exercises.item.shuffle"), M("exercises.not_shuffle_invariant", what=M("exercises.name.gram_matrix")))
        doubled = ev(2 * a)
        ratio = float(np.abs(doubled).sum() / np.abs(g_sq).sum()) if np.abs(g_sq).sum() else float("nan")
        _scaling(run, fn, "gram_matrix", 4.0, ratio, 2.0)
        values, raws, refs = [], [], []
        for shp in SHAPES:
            x = _activation(shp, gen)
            mine = ev(x)
            ref = costs.gram_matrix(x[0]).numpy()
            if mine.shape != ref.shape:
                run.fail(M("exercises.item.values", n=len(SHAPES)),
                         M("exercises.gram_shape", shape=str(tuple(mine.shape)), want=str(tuple(ref.shape))))
            # one number per shape: the projection of the student's matrix on the reference's
            c, h, w = shp
            if not np.allclose(mine / max(np.abs(mine).max(), 1e-300), ref / np.abs(ref).max(), rtol=1e-3, atol=1e-6):
                # not a multiple of the reference: no constant can explain it; show the worst entry
                scale = CONSTANTS["gram"]["none" if want == "any" else want](h, w, c)
                k, k2 = np.unravel_index(np.argmax(np.abs(mine - scale * ref)), ref.shape)
                run.fail(M("exercises.item.values", n=len(SHAPES)),
                         M("exercises.gram_differs", shape=f"(n_C, n_H, n_W) = ({c}, {h}, {w})", k=int(k),
                           k2=int(k2), got=float(mine[k, k2]), want=float(scale * ref[k, k2])))
            # one number per shape: the projection of the student's matrix on the reference's
            values.append(float((mine * ref).sum()))
            raws.append(float((ref * ref).sum()))
            refs.append(raws[-1] * CONSTANTS["gram"]["none" if want == "any" else want](h, w, c))
        got = _recognise("gram", values, raws, SHAPES)
        used = _constant_item(run, "gram", want, got, values, refs, SHAPES)

        def make_args():
            x = _activation(SHAPES[1], torch.Generator().manual_seed(seed + 1)).requires_grad_(True)
            return [G_in(x)], [x]

        def reference(x_in):
            x = from_layout(x_in, layout, SHAPES[1])
            n_C2, h, w = SHAPES[1]
            g_ref = costs.gram_matrix(x[0]) * CONSTANTS["gram"][used](h, w, n_C2)
            return g_ref

        _gradient(run, fn, kind, make_args, reference)

    return _checked("gram_matrix", body, layout)


# ---- layer style cost ----------------------------------------------------------------------------


def _style_reference(constant: str):
    def ref(a_S: torch.Tensor, a_G: torch.Tensor) -> torch.Tensor:
        n_C, n_H, n_W = a_G.shape[-3:]
        raw = costs.style_layer_cost(costs.gram_matrix(a_S), a_G, "none")
        return raw * CONSTANTS["style"][constant](n_H, n_W, n_C)
    return ref


@_layout_hint
def check_layer_style_cost(fn: Callable, layout: str = "engine", constant: str = "notes",
                           seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_S, a_G) -> J_style[l]``, the style cost of one layer ``c * ||G(S) - G(G)||_F^2``.

    ``a_S``, ``a_G``: ``(1, n_C, n_H, n_W)`` (``'engine'``) or ``(1, n_H, n_W, n_C)``
    (``'assignment'``).  ``constant``: ``'notes'`` (1/(2 n_H n_W n_C), teachkit's), ``'slides'`` =
    ``'assignment'`` ((1/(2 n_H n_W n_C))^2 = 1/(4 n_C^2 (n_H n_W)^2)), ``'none'``, ``'mean'`` or ``'any'``.
    """
    _check_layout(layout, ("engine", "assignment"))
    want = _expected("style", constant)

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        a_S, a_G = _activation(SHAPES[0], gen), _activation(SHAPES[0], gen)
        L = lambda a: to_layout(a, layout)  # noqa: E731
        kind, out = _first_call(run, fn, [L(a_S), L(a_G)], layout)
        arr = _as_array(run, fn, out, M("exercises.item.scalar"))
        value = _scalar(run, fn, arr)
        _finite(run, fn, arr)
        ev = lambda x, y: float(_evaluate(run, fn, kind, [L(x), L(y)], M("exercises.item.values", n=len(SHAPES))).sum())  # noqa: E731
        zero = ev(a_G, a_G)
        run.require(abs(zero) <= 1e-9 * max(1.0, abs(value)), M("exercises.item.zero"), M("exercises.not_zero", got=zero))
        swapped = ev(a_G, a_S)
        run.require(_close(swapped, value), M("exercises.item.symmetric_cost"),
                    M("exercises.not_symmetric_cost", a=value, b=swapped))
        shuffled = ev(a_S, _shuffle_positions(a_G, gen))
        run.require(_close(shuffled, value), M("exercises.item.shuffle"),
                    M("exercises.not_shuffle_invariant", what=M("exercises.name.layer_style_cost")))
        _scaling(run, fn, "layer_style_cost", 16.0, ev(2 * a_S, 2 * a_G) / value if value else float("nan"), 4.0)
        values, raws, refs = [], [], []
        for shape in SHAPES:
            x, y = _activation(shape, gen), _activation(shape, gen)
            values.append(ev(x, y))
            raws.append(float(_style_reference("none")(x, y)))
            refs.append(float(_style_reference("notes" if want == "any" else want)(x, y)))
        got = _recognise("style", values, raws, SHAPES)
        used = _constant_item(run, "style", want, got, values, refs, SHAPES)

        def make_args():
            x = _activation(SHAPES[2], torch.Generator().manual_seed(seed + 1))
            y = _activation(SHAPES[2], torch.Generator().manual_seed(seed + 2)).requires_grad_(True)
            return [L(x), L(y)], [y]

        _gradient(run, fn, kind, make_args,
                  lambda x, y: _style_reference(used)(from_layout(x, layout), from_layout(y, layout)))

    return _checked("layer_style_cost", body, layout)


# ---- style cost over layers ------------------------------------------------------------------------


@_layout_hint
def check_style_cost(fn: Callable, layer_style_cost: Callable | None = None, layout: str = "engine",
                     constant: str = "notes", seed: int = 0) -> CheckResult:
    r"""Check ``fn(a_S, a_G, lambdas) -> J_style = sum_l lambda[l] J_style[l]``.

    ``a_S`` and ``a_G`` are lists of activations, one per layer (in ``layout``), ``lambdas`` a list of
    weights.  Each ``J_style[l]`` is the student's own ``layer_style_cost`` when given (so this check
    looks at the weighting only), else teachkit's with ``constant``.
    """
    _check_layout(layout, ("engine", "assignment"))
    want = _expected("style", constant)

    def body(run: _Run) -> None:
        gen = torch.Generator().manual_seed(seed)
        shapes = SHAPES
        S = [_activation(s, gen) for s in shapes]
        G = [_activation(s, gen) for s in shapes]
        L = lambda xs: [to_layout(x, layout) for x in xs]  # noqa: E731
        lam = [0.5, 0.2, 0.3]
        kind, out = _first_call(run, fn, [L(S), L(G), list(lam)], layout)
        arr = _as_array(run, fn, out, M("exercises.item.scalar"))
        value = _scalar(run, fn, arr)
        _finite(run, fn, arr)

        ref_layer = _style_reference("notes" if want == "any" else want)
        terms = []
        for s, g in zip(S, G):
            if layer_style_cost is not None:
                t = _call(run, layer_style_cost, [to_layout(s, layout), to_layout(g, layout)],
                          M("exercises.item.values", n=len(shapes)))
                terms.append(float(_as_array(run, layer_style_cost, t, M("exercises.item.scalar")).sum()))
            else:
                terms.append(float(ref_layer(s, g)))

        def ev(weights):
            return float(_evaluate(run, fn, kind, [L(S), L(G), list(weights)],
                                   M("exercises.item.lambda_onehot")).sum())

        zero = ev([0.0] * len(shapes))
        run.require(abs(zero) <= 1e-9 * max(1.0, abs(value)), M("exercises.item.lambda_zero"),
                    M("exercises.lambda_ignored", got=zero))
        what = M("exercises.item.lambda_onehot")
        for i in range(len(shapes)):
            one = [0.0] * len(shapes)
            one[i] = 1.0
            got_i = ev(one)
            if not _close(got_i, terms[i]):
                if i < len(shapes) - 1 and abs(got_i) <= 1e-12 and _close(value, lam[-1] * terms[-1]):
                    run.fail(what, M("exercises.lambda_last_only"))
                run.fail(what, M("exercises.lambda_wrong_layer", i=i, want=terms[i], got=got_i))
        run.ok(what)
        expected = sum(w * t for w, t in zip(lam, terms))
        if not _close(value, expected):
            run.fail(M("exercises.item.values_sum"), M("exercises.values_differ", shape=f"λ = {lam}", got=value,
                                                         want=expected))
        run.ok(M("exercises.item.values_sum"))

        def make_args():
            g2 = torch.Generator().manual_seed(seed + 3)
            s_ = [_activation(s, g2) for s in shapes]
            g_ = [_activation(s, g2).requires_grad_(True) for s in shapes]
            return [L(s_), L(g_), list(lam)], g_

        def reference(s_in, g_in, weights):
            layer = layer_style_cost if layer_style_cost is not None else \
                (lambda x, y: ref_layer(from_layout(x, layout), from_layout(y, layout)))
            return sum(w * layer(x, y) for w, x, y in zip(weights, s_in, g_in))

        _gradient(run, fn, kind, make_args, reference)

    return _checked("style_cost", body, layout)


# ---- total cost ---------------------------------------------------------------------------------


def check_total_cost(fn: Callable, seed: int = 0) -> CheckResult:
    r"""Check ``fn(J_content, J_style, alpha, beta) -> J = alpha J_content + beta J_style``."""

    def body(run: _Run) -> None:
        t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
        kind, out = _first_call(run, fn, [t(3.0), t(5.0), 10.0, 40.0], None)
        arr = _as_array(run, fn, out, M("exercises.item.scalar"))
        _scalar(run, fn, arr)
        _finite(run, fn, arr)
        what = M("exercises.item.weights")
        rng = np.random.default_rng(seed)
        for _ in range(3):
            jc, js, a, b = (float(v) for v in rng.uniform(0.5, 5.0, 4))
            got = float(_evaluate(run, fn, kind, [t(jc), t(js), a, b], what).sum())
            if _close(got, a * jc + b * js):
                continue
            if _close(got, b * jc + a * js):
                run.fail(what, M("exercises.total_swapped"))
            if _close(got, jc + js):
                run.fail(what, M("exercises.total_unweighted"))
            run.fail(what, M("exercises.values_differ", shape=f"J_content={jc:.3g}, J_style={js:.3g}, "
                                                              f"alpha={a:.3g}, beta={b:.3g}", got=got, want=a * jc + b * js))
        run.ok(what)

        def make_args():
            jc = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
            js = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
            return [jc, js, 3.0, 0.5], [jc, js]

        _gradient(run, fn, kind, make_args, lambda jc, js, a, b: costs.total_cost(jc, js, a, b))

    return _checked("total_cost", body, None)


# ---- receptive field ----------------------------------------------------------------------------

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
    r"""Check ``fn(layers) -> sizes``: the receptive-field size of a unit after each layer.

    ``layers`` is a list of ``(kernel, stride)`` pairs (padding does not change the size); the result a
    list with one size (in input pixels) per layer: ``size = 1 + sum_l (k_l - 1) * jump_l``, where
    ``jump_l`` is the product of the strides of the layers *before* layer ``l``.  Reference:
    :func:`teachkit.receptive_field.receptive_fields`.
    """

    def body(run: _Run) -> None:
        rng = np.random.default_rng(seed)
        stacks = [VGG19_TO_POOL3]
        for _ in range(3):
            n = int(rng.integers(3, 7))
            stacks.append([(int(rng.integers(2, 6)), int(rng.integers(1, 3))) for _ in range(n)])
        kind, out = _first_call(run, fn, [list(stacks[0])], None, note=False)
        what_len = M("exercises.item.rf_length")
        what = M("exercises.item.rf_values", n=len(stacks))
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
            run.fail(what, M("exercises.rf_values", layers=str(list(layers)), want=str(want),
                             got=str([int(v) if float(v).is_integer() else float(v) for v in got])))
        run.ok(what_len)
        run.ok(what)

    return _checked("receptive_field", body, None)


#: exercise name -> (check, the function's name in a notebook / a student's file)
CHECKS: dict[str, Callable[..., CheckResult]] = {
    "receptive_field": check_receptive_field,
    "total_cost": check_total_cost,
    "content_cost": check_content_cost,
    "gram_matrix": check_gram_matrix,
    "layer_style_cost": check_layer_style_cost,
    "style_cost": check_style_cost,
}
