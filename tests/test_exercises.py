"""teachkit.exercises: every check passes the reference solution and fails each planted mistake with the
matching hint, in English and Chinese; transfer_with runs the one engine with the student's functions."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from teachkit import exercises as ex
from teachkit.messages import LOCALE_DIR, TeachkitError, catalogue, domain_catalogue, fields

# ---- the reference solutions (written here from the formulas, independently of teachkit.costs) ----


def content_ref(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2)


def content_assignment(a_C, a_G):
    _, n_H, n_W, n_C = a_G.shape
    return torch.sum((a_C - a_G) ** 2) / (4 * n_H * n_W * n_C)


def gram_engine(a):
    f = a.reshape(a.shape[1], -1)
    return f @ f.T


def gram_assignment(a):
    _, n_H, n_W, n_C = a.shape
    f = a.reshape(n_H * n_W, n_C).T
    return f @ f.T


def gram_unrolled(A):
    return A @ A.T


def layer_ref(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_engine(a_S) - gram_engine(a_G)) ** 2) / (2 * n_H * n_W * n_C)


def layer_assignment(a_S, a_G):
    _, n_H, n_W, n_C = a_G.shape
    return torch.sum((gram_assignment(a_S) - gram_assignment(a_G)) ** 2) / (4 * n_C**2 * (n_H * n_W) ** 2)


def style_ref(a_S, a_G, lambdas):
    return sum(lam * layer_ref(s, g) for lam, s, g in zip(lambdas, a_S, a_G))


def total_ref(J_content, J_style, alpha, beta):
    return alpha * J_content + beta * J_style


def rf_ref(layers):
    sizes, size, jump = [], 1, 1
    for k, s in layers:
        size += (k - 1) * jump
        jump *= s
        sizes.append(size)
    return sizes


# ---- the planted mistakes ----------------------------------------------------------------------------


def c_no_constant(a_C, a_G):
    return torch.sum((a_C - a_G) ** 2)


def c_no_square(a_C, a_G):
    return 0.5 * torch.sum(torch.abs(a_C - a_G))


def c_wrong_axis(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2, dim=1)


def c_numpy(a_C, a_G):
    return 0.5 * np.sum(np.square(np.asarray(a_C) - np.asarray(a_G)))


def c_wrong_shape(a_C, a_G):
    return 0.5 * (a_C - a_G) ** 2


def c_raises(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2) / undefined_name  # noqa: F821


def c_not_written(a_C, a_G):
    # your code here
    raise NotImplementedError


def c_none(a_C, a_G):
    0.5 * torch.sum((a_C - a_G) ** 2)


def c_nan(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2) * torch.log(-torch.ones(()))


def c_item(a_C, a_G):
    return torch.tensor(0.5 * torch.sum((a_C - a_G) ** 2).item())


def c_float(a_C, a_G):
    return float(0.5 * torch.sum((a_C - a_G) ** 2))


def c_negative(a_C, a_G):
    return -0.5 * torch.sum((a_C - a_G) ** 2)


def c_quarter(a_C, a_G):
    return 0.25 * torch.sum((a_C - a_G) ** 2)


def c_in_place(a_C, a_G):
    a_C -= a_G
    return 0.5 * torch.sum(a_C ** 2)


def g_reshape_no_transpose(a):
    _, n_H, n_W, n_C = a.shape
    f = a.reshape(n_C, n_H * n_W)
    return f @ f.T


def g_wrong_axis(a):
    f = a.reshape(a.shape[1], -1)
    return f.T @ f


def g_not_symmetric(a):
    f = a.reshape(a.shape[1], -1)
    return f @ f.roll(1, dims=1).T


def g_numpy(a):
    f = np.asarray(a).reshape(a.shape[1], -1)
    return f @ f.T


def g_wrong_shape(a):
    return gram_engine(a).flatten()


def g_raises(a):
    return a.reshape(7, 7, 7)


def g_positions(a):
    f = a.reshape(a.shape[1], -1)
    return f @ f.T / f.shape[1]


def l_no_constant(a_S, a_G):
    return torch.sum((gram_engine(a_S) - gram_engine(a_G)) ** 2)


def l_no_square(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.linalg.norm(gram_engine(a_S) - gram_engine(a_G)) / (2 * n_H * n_W * n_C)


def l_reshape_no_transpose(a_S, a_G):
    _, n_H, n_W, n_C = a_G.shape
    gs, gg = g_reshape_no_transpose(a_S), g_reshape_no_transpose(a_G)
    return torch.sum((gs - gg) ** 2) / (2 * n_H * n_W * n_C)


def l_slides(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_engine(a_S) - gram_engine(a_G)) ** 2) * (1 / (2 * n_H * n_W * n_C)) ** 2


def l_wrong_axis(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_engine(a_S) - gram_engine(a_G)) ** 2, dim=0) / (2 * n_H * n_W * n_C)


def l_numpy(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    gs, gg = g_numpy(a_S), g_numpy(a_G)
    return np.sum((gs - gg) ** 2) / (2 * n_H * n_W * n_C)


def l_raises(a_S, a_G):
    raise ValueError("shapes do not match")


def l_twice(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_engine(a_S) - gram_engine(a_G)) ** 2) / (n_H * n_W * n_C)


def g_unwritten(a):
    # your code here
    raise NotImplementedError


def l_uses_unwritten_gram(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((g_unwritten(a_S) - g_unwritten(a_G)) ** 2) / (2 * n_H * n_W * n_C)


def s_no_lambda(a_S, a_G, lambdas):
    return sum(layer_ref(s, g) for s, g in zip(a_S, a_G))


def s_last_only(a_S, a_G, lambdas):
    J = 0
    for lam, s, g in zip(lambdas, a_S, a_G):
        J = lam * layer_ref(s, g)
    return J


def s_reversed(a_S, a_G, lambdas):
    return sum(lam * layer_ref(s, g) for lam, s, g in zip(lambdas[::-1], a_S, a_G))


def s_first_only(a_S, a_G, lambdas):
    J = 0
    for lam, s, g in zip(lambdas, a_S, a_G):
        J = J + lam * layer_ref(s, g)
        return J


def s_mean(a_S, a_G, lambdas):
    return sum(lam * layer_ref(s, g) for lam, s, g in zip(lambdas, a_S, a_G)) / len(a_S)


def s_normalised(a_S, a_G, lambdas):
    return sum(lam / sum(lambdas) * layer_ref(s, g) for lam, s, g in zip(lambdas, a_S, a_G))


def s_numpy(a_S, a_G, lambdas):
    return float(sum(lam * float(l_numpy(s, g)) for lam, s, g in zip(lambdas, a_S, a_G)))


def t_swapped(J_content, J_style, alpha, beta):
    return beta * J_content + alpha * J_style


def t_unweighted(J_content, J_style, alpha, beta):
    return J_content + J_style


def t_float(J_content, J_style, alpha, beta):
    return alpha * float(J_content) + beta * float(J_style)


def t_numpy(J_content, J_style, alpha, beta):
    return alpha * np.asarray(J_content) + beta * np.asarray(J_style)


def t_fixed_weights(J_content, J_style, alpha=10, beta=40):
    return 10 * J_content + 40 * J_style


def t_doubled(J_content, J_style, alpha, beta):
    return 2 * (alpha * J_content + beta * J_style)


def t_raises(J_content, J_style, alpha, beta):
    return alpha * J_content + beta * J_styl  # noqa: F821


def rf_no_jump(layers):
    sizes, size = [], 1
    for k, _ in layers:
        size += k - 1
        sizes.append(size)
    return sizes


def rf_own_stride(layers):
    sizes, size, jump = [], 1, 1
    for k, s in layers:
        jump *= s
        size += (k - 1) * jump
        sizes.append(size)
    return sizes


def rf_off_by_one(layers):
    return [s - 1 for s in rf_ref(layers)]


def rf_short(layers):
    return rf_ref(layers)[:-1]


def rf_doubled(layers):
    return [2 * s for s in rf_ref(layers)]


PASSING = [
    ("content", ex.check_content_cost, content_ref, {}),
    ("content assignment", ex.check_content_cost, content_assignment, {"layout": "assignment", "constant": "assignment"}),
    ("content any", ex.check_content_cost, content_assignment, {"layout": "assignment", "constant": "any"}),
    ("gram", ex.check_gram_matrix, gram_engine, {}),
    ("gram assignment", ex.check_gram_matrix, gram_assignment, {"layout": "assignment"}),
    ("gram unrolled", ex.check_gram_matrix, gram_unrolled, {"layout": "unrolled"}),
    ("gram numpy unrolled", ex.check_gram_matrix, lambda A: A @ A.T, {"layout": "unrolled"}),
    ("layer", ex.check_layer_style_cost, layer_ref, {}),
    ("layer assignment", ex.check_layer_style_cost, layer_assignment, {"layout": "assignment", "constant": "assignment"}),
    ("layer slides", ex.check_layer_style_cost, l_slides, {"constant": "slides"}),
    ("style", ex.check_style_cost, style_ref, {}),
    ("total", ex.check_total_cost, total_ref, {}),
    ("rf", ex.check_receptive_field, rf_ref, {}),
]


@pytest.mark.parametrize("label,check,fn,kw", PASSING, ids=[p[0] for p in PASSING])
def test_reference_solutions_pass(label, check, fn, kw):
    result = check(fn, **kw)
    assert result.passed, result.text("en")
    assert result.reason is None
    assert len(result.items) >= 3


PLANTED = [
    # (label, check, function, kwargs, the expected hint's id)
    ("content: missing constant", ex.check_content_cost, c_no_constant, {}, "exercises.constant_missing"),
    ("content: missing square", ex.check_content_cost, c_no_square, {}, "exercises.scaling_square"),
    ("content: sum over one axis", ex.check_content_cost, c_wrong_axis, {}, "exercises.not_scalar"),
    ("content: NumPy instead of torch", ex.check_content_cost, c_numpy, {}, "exercises.grad_numpy"),
    ("content: wrong shape", ex.check_content_cost, c_wrong_shape, {}, "exercises.not_scalar"),
    ("content: exception inside", ex.check_content_cost, c_raises, {}, "exercises.raised"),
    ("content: not written", ex.check_content_cost, c_not_written, {}, "exercises.not_written"),
    ("content: no return", ex.check_content_cost, c_none, {}, "exercises.returned_none"),
    ("content: NaN", ex.check_content_cost, c_nan, {}, "exercises.not_finite"),
    ("content: cut off the graph", ex.check_content_cost, c_item, {}, "exercises.grad_detached"),
    ("content: a Python float", ex.check_content_cost, c_float, {}, "exercises.grad_float"),
    ("content: negative", ex.check_content_cost, c_negative, {}, "exercises.negative_cost"),
    ("content: half the constant", ex.check_content_cost, c_quarter, {}, "exercises.factor"),
    ("content: changes its input", ex.check_content_cost, c_in_place, {}, "exercises.changes_input"),
    ("content: assignment's constant", ex.check_content_cost, content_assignment, {"layout": "assignment"},
     "exercises.constant_other"),
    ("gram: reshape without transpose", ex.check_gram_matrix, g_reshape_no_transpose, {"layout": "assignment"},
     "exercises.not_shuffle_invariant"),
    ("gram: sum over the wrong axis", ex.check_gram_matrix, g_wrong_axis, {}, "exercises.gram_positions"),
    ("gram: not symmetric", ex.check_gram_matrix, g_not_symmetric, {}, "exercises.not_symmetric_gram"),
    ("gram: NumPy instead of torch", ex.check_gram_matrix, g_numpy, {}, "exercises.grad_numpy"),
    ("gram: wrong shape", ex.check_gram_matrix, g_wrong_shape, {}, "exercises.gram_shape"),
    ("gram: exception inside", ex.check_gram_matrix, g_raises, {}, "exercises.raised"),
    ("gram: divided by the positions", ex.check_gram_matrix, g_positions, {}, "exercises.constant_other"),
    ("layer: missing constant", ex.check_layer_style_cost, l_no_constant, {}, "exercises.constant_missing"),
    ("layer: missing square", ex.check_layer_style_cost, l_no_square, {}, "exercises.scaling_square"),
    ("layer: reshape without transpose", ex.check_layer_style_cost, l_reshape_no_transpose, {"layout": "assignment"},
     "exercises.not_shuffle_invariant"),
    ("layer: the slides' constant", ex.check_layer_style_cost, l_slides, {}, "exercises.constant_other"),
    ("layer: sum over the wrong axis", ex.check_layer_style_cost, l_wrong_axis, {}, "exercises.not_scalar"),
    ("layer: NumPy instead of torch", ex.check_layer_style_cost, l_numpy, {}, "exercises.grad_numpy"),
    ("layer: exception inside", ex.check_layer_style_cost, l_raises, {}, "exercises.raised"),
    ("layer: twice the constant", ex.check_layer_style_cost, l_twice, {}, "exercises.factor"),
    ("layer: its gram_matrix not written", ex.check_layer_style_cost, l_uses_unwritten_gram, {},
     "exercises.not_written"),
    ("style: lambda missing", ex.check_style_cost, s_no_lambda, {}, "exercises.lambda_ignored"),
    ("style: overwrite instead of add", ex.check_style_cost, s_last_only, {}, "exercises.lambda_last_only"),
    ("style: lambdas of other layers", ex.check_style_cost, s_reversed, {}, "exercises.lambda_wrong_layer"),
    ("style: return inside the loop", ex.check_style_cost, s_first_only, {}, "exercises.lambda_first_only"),
    ("style: divided by the number of layers", ex.check_style_cost, s_mean, {}, "exercises.lambda_mean"),
    ("style: lambda / sum(lambda)", ex.check_style_cost, s_normalised, {}, "exercises.lambda_normalised"),
    ("style: NumPy instead of torch", ex.check_style_cost, s_numpy, {}, "exercises.grad_numpy"),
    ("total: alpha and beta swapped", ex.check_total_cost, t_swapped, {}, "exercises.total_swapped"),
    ("total: weights missing", ex.check_total_cost, t_unweighted, {}, "exercises.total_unweighted"),
    ("total: NumPy instead of torch", ex.check_total_cost, t_numpy, {}, "exercises.grad_numpy"),
    ("total: float() of the terms", ex.check_total_cost, t_float, {}, "exercises.grad_float"),
    ("total: fixed weights", ex.check_total_cost, t_fixed_weights, {}, "exercises.total_ignores_weights"),
    ("total: twice J", ex.check_total_cost, t_doubled, {}, "exercises.factor"),
    ("total: exception inside", ex.check_total_cost, t_raises, {}, "exercises.raised"),
    ("rf: strides ignored", ex.check_receptive_field, rf_no_jump, {}, "exercises.rf_no_jump"),
    ("rf: own stride in the jump", ex.check_receptive_field, rf_own_stride, {}, "exercises.rf_own_stride"),
    ("rf: off by one", ex.check_receptive_field, rf_off_by_one, {}, "exercises.rf_off_by_one"),
    ("rf: one size missing", ex.check_receptive_field, rf_short, {}, "exercises.rf_length"),
    ("rf: other sizes", ex.check_receptive_field, rf_doubled, {}, "exercises.rf_values"),
    ("not a function", ex.check_content_cost, 42, {}, "exercises.not_callable"),
    ("layer: written for the other layout", ex.check_layer_style_cost, layer_assignment, {"constant": "assignment"},
     "exercises.other_layout"),
    ("gram: written for the other layout", ex.check_gram_matrix, gram_engine, {"layout": "assignment"},
     "exercises.other_layout"),
]

_CJK = re.compile("[\u4e00-\u9fff]")


@pytest.mark.parametrize("label,check,fn,kw,hint", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_mistakes_get_their_hint_in_both_languages(label, check, fn, kw, hint):
    result = check(fn, **kw)
    assert not result.passed
    assert result.reason is not None and result.reason.id == hint, result.text("en")
    en, zh = result.reason.text("en"), result.reason.text("zh")
    assert en and zh and en != zh
    assert _CJK.search(zh) and not _CJK.search(en)
    # the whole result renders in both languages, in a notebook too, without a traceback
    assert result.text("zh") != result.text("en")
    assert hint in [i.reason.id for i in result.items if i.reason is not None]
    assert result._repr_html_().startswith("<div>❌")


def test_constants_are_named():
    """The student's constant is recognised and named (the note on the passed 'values' item)."""
    result = ex.check_content_cost(content_assignment, layout="assignment", constant="any")
    notes = [i.reason for i in result.items if i.passed and i.reason is not None]
    assert any(n.id == "exercises.note.constant" and n.params["constant"].id == "exercises.const.content.assignment"
               for n in notes)
    wrong = ex.check_layer_style_cost(l_slides)
    assert wrong.reason.params["got"].id == "exercises.const.style.slides"
    assert wrong.reason.params["want"].id == "exercises.const.style.notes"
    assert "(1/(2·n_H·n_W·n_C))²" in wrong.reason.text("en")


def test_scaling_hint_reports_the_growth():
    """Doubling the activations: the layer style cost must grow x16; a missing square gives x4."""
    r = ex.check_layer_style_cost(l_no_square)
    assert r.reason.params["want"] == "16"
    assert abs(r.reason.params["got"] - 4.0) < 1e-6


def test_hints_name_the_right_function_and_number():
    """The unwritten helper is blamed, not its caller; an exact factor, the number of layers and the first
    wrong receptive field are said as numbers; a float from .item() is not called NumPy."""
    assert ex.check_layer_style_cost(l_uses_unwritten_gram).reason.params["name"] == "g_unwritten"
    assert ex.check_content_cost(c_quarter).reason.params["factor"] == "1/2"
    assert ex.check_layer_style_cost(l_twice).reason.params["factor"] == "2"
    assert ex.check_style_cost(s_mean).reason.params["n"] == 3
    notes = [i.reason for i in ex.check_total_cost(t_float).items if i.reason is not None]
    assert notes[0].params["kind"] == "Python float"
    r = ex.check_receptive_field(rf_doubled).reason  # the first layer whose size is wrong, not the whole list
    assert r.params["i"] == 1 and r.params["want"] == 3 and r.params["got"] == 6
    failed = ex.check_style_cost(s_normalised).first_failure  # under the item that set every λ to 0
    assert failed.what.id == "exercises.item.lambda_zero"


def test_an_endless_loop_is_stopped_with_a_hint(monkeypatch):
    monkeypatch.setattr(ex.checks, "CALL_LIMIT_S", 0.5)

    def endless(a_C, a_G):
        while True:
            try:
                while True: pass  # noqa: E701 -- one line: no line events for a tracer to catch
            except BaseException:  # a loop that even catches what stops it
                pass

    result = ex.check_content_cost(endless)
    assert result.reason.id == "exercises.too_slow" and result.reason.params["seconds"] == "0.5"
    assert "0.5" in result.reason.text("zh") and _CJK.search(result.reason.text("zh"))
    assert ex.check_content_cost(content_ref).passed  # the limit is gone after the call


def test_numpy_written_function_passes_the_values_and_fails_only_the_gradient():
    r = ex.check_layer_style_cost(l_numpy)
    failed = [i for i in r.items if not i.passed]
    assert len(failed) == 1 and failed[0].reason.id == "exercises.grad_numpy"
    kinds = [i.reason.params.get("kind") for i in r.items if i.reason is not None and i.reason.id == "exercises.note.kind"]
    assert kinds == ["NumPy"]


def test_bad_arguments_of_the_checks_are_one_readable_error():
    with pytest.raises(ValueError, match="unknown layout 'nhwc'"):
        ex.check_content_cost(content_ref, layout="nhwc")
    with pytest.raises(ValueError, match="unknown constant 'half'"):
        ex.check_layer_style_cost(layer_ref, constant="half")
    with pytest.raises(TeachkitError):
        ex.check_content_cost(content_ref, layout="nhwc")


def test_exercise_catalogue_same_ids_and_fields_in_both_languages():
    en = domain_catalogue(LOCALE_DIR / "en" / "LC_MESSAGES" / "exercises.po")
    zh = domain_catalogue(LOCALE_DIR / "zh" / "LC_MESSAGES" / "exercises.po")
    assert set(en) == set(zh)
    assert all(k.startswith("exercises.") for k in en)
    for k in en:
        assert fields(en[k]) == fields(zh[k]), k


def test_every_hint_the_checks_can_give_is_in_the_catalogue():
    import inspect

    from teachkit.exercises import checks, engine

    src = inspect.getsource(checks) + inspect.getsource(engine)
    used = set(re.findall(r'"(exercises\.[a-z_.]+)"', src))
    assert used, "no ids found"
    known = set(catalogue("en"))
    dynamic_prefixes = ("exercises.name.", "exercises.layout.", "exercises.const.")
    missing = {u for u in used if u not in known and not u.endswith(".") and not u.startswith(dynamic_prefixes)}
    assert not missing
    for name in ex.CHECKS:
        assert f"exercises.name.{name}" in known


# ---- transfer_with: the one engine with the student's functions -------------------------------------


def _tiny(**kw):
    from teachkit.transfer import TransferConfig

    return TransferConfig(size=48, steps=4, dtype="float32", preview_every=0, pyramid=1, **kw)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, 48, 48), generator=g), torch.rand((1, 3, 48, 48), generator=g)


def test_transfer_with_reference_functions_reproduces_transfer(vgg19, images, one_thread):
    from teachkit.costs import CostFunctions
    from teachkit.transfer import transfer

    ref = CostFunctions.reference()
    content, style = images
    run = ex.transfer_with(content, style, _tiny(), content_cost=ref.content_cost, gram_matrix=ref.gram_matrix,
                           total_cost=ref.total_cost, backbone=vgg19, compare=False)
    assert run.ok, run.text("en")
    plain = transfer(content, style, _tiny(), backbone=vgg19)
    assert len(run.result.history) == len(plain.history) == 4
    assert torch.allclose(run.result.tensor, plain.tensor, atol=1e-5)
    for a, b in zip(run.result.history, plain.history):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)


def test_transfer_with_assignment_layout_reproduces_transfer(vgg19, images, one_thread):
    from teachkit.transfer import transfer

    content, style = images
    run = ex.transfer_with(content, style, _tiny(), layer_style_cost=lambda s, g: layer_assignment(s, g) *
                           (2 * g.shape[1] * g.shape[2] * g.shape[3]), layout="assignment", backbone=vgg19,
                           compare=False)
    plain = transfer(content, style, _tiny(), backbone=vgg19)
    assert run.ok, run.text("en")
    assert torch.allclose(run.result.tensor, plain.tensor, atol=1e-4)


def test_transfer_with_a_function_that_breaks_mid_run_stops_and_keeps_the_image(vgg19, images, one_thread):
    content, style = images
    calls = {"engine": 0}

    def flaky(a_C, a_G):
        if a_G.dtype == torch.float32:  # the engine's calls (the checks use float64): the third one breaks
            calls["engine"] += 1
            if calls["engine"] == 3:
                raise RuntimeError("boom")
        return 0.5 * torch.sum((a_C - a_G) ** 2)

    run = ex.transfer_with(content, style, _tiny(), content_cost=flaky, backbone=vgg19)
    assert run.failure is not None and run.failure.id == "exercises.run.failed"
    assert run.failure.params["reason"].id == "exercises.raised"
    assert run.result is not None and run.result.stopped
    assert 1 <= len(run.result.history) < 4
    assert run.result.image.size == (48, 48)
    assert "boom" in run.text("en") and _CJK.search(run.text("zh"))
    assert run.reference is not None and len(run.reference.history) == 4
    fig = run.figure("zh")  # the two images and both cost curves, the stop written on the student's image
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 3 and "停止" in titles[0] and "teachkit" in titles[1]
    assert [len(line.get_xdata()) for line in fig.axes[2].get_lines()] == [len(run.result.history), 4]


def test_transfer_with_a_function_that_cannot_run_starts_nothing(vgg19, images):
    content, style = images
    run = ex.transfer_with(content, style, _tiny(), gram_matrix=g_numpy, backbone=vgg19)
    assert run.result is None and run.reference is None
    assert run.failure.id == "exercises.run.not_ready"
    assert run.failure.params["reason"].id == "exercises.grad_numpy"
    assert _CJK.search(run.text("zh"))


def test_transfer_with_own_style_cost_matches_teachkits_run(vgg19, images, one_thread):
    """style_cost is accepted and drives the run; with correct functions the text says the runs agree."""
    content, style = images
    run = ex.transfer_with(content, style, _tiny(), style_cost=style_ref, backbone=vgg19)
    assert run.ok, run.text("en")
    assert run.result.history[-1]["total"] == pytest.approx(run.reference.history[-1]["total"], rel=1e-4)
    assert "the same as teachkit's run" in run.text("en") and "relative difference" in run.text("en")
    wrong = ex.transfer_with(content, style, _tiny(), style_cost=s_mean, backbone=vgg19, reference=run.reference)
    assert wrong.ok and "apart" in wrong.text("en")  # merely wrong: it runs, and the difference is said


def test_transfer_with_survives_inputs_changed_in_place_and_errors_in_backward(vgg19, images, one_thread):
    content, style = images
    run = ex.transfer_with(content, style, _tiny(), content_cost=c_in_place, backbone=vgg19)
    assert run.checks["content_cost"].reason.id == "exercises.changes_input"
    assert run.ok and len(run.result.history) == 4, run.text("en")  # it ran on copies: the engine is unharmed

    def breaks_in_backward(hook):
        def content_cost(a_C, a_G):
            d = a_C - a_G
            if a_G.dtype == torch.float32:  # the engine's calls (the checks use float64)
                d.register_hook(hook)
            return 0.5 * torch.sum(d ** 2)
        return content_cost

    def raises(g):
        raise RuntimeError("boom in backward")

    for hook, reason in ((lambda g: g / 0, "exercises.run.nan_gradient"), (raises, "exercises.raised")):
        run = ex.transfer_with(content, style, _tiny(), content_cost=breaks_in_backward(hook), backbone=vgg19,
                               compare=False)
        assert run.failure is not None and run.failure.params["reason"].id == reason, run.text("en")
        assert run.result is not None and run.result.stopped and run.result.image.size == (48, 48)
