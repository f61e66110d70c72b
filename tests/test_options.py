"""One declaration of the transfer options (teachkit/options.py): the CLI and lesson 6's form are made
from it, and both agree with TransferConfig itself.

Oracles: ``TransferConfig()`` and ``TransferConfig.preset('quick')`` (the defaults), the module
constants the engine validates against (INITS, OPTIMIZERS, ...), ``TransferConfig.validate`` (the
bounds), the message catalogues read directly (the words), and a hand-written table of the CLI's
flags as users type them.
"""

from __future__ import annotations

import argparse
import dataclasses
import unicodedata

import pytest

from teachkit import options
from teachkit.cli import _transfer_config, build_parser
from teachkit.messages import Message, catalogue, text
from teachkit.transfer import NORMALIZATION_DEFAULTS, TransferConfig

CONFIG_FIELDS = [f.name for f in dataclasses.fields(TransferConfig)]

#: the command line as users type it (the flags of teachkit 0.1, kept), with a value and what it sets
CLI = [
    (["--size", "200"], "size", 200),
    (["--steps", "7"], "steps", 7),
    (["--alpha", "2"], "alpha", 2.0),
    (["--beta", "0.5"], "beta", 0.5),
    (["--content-layer", "relu3_2"], "content_layer", "relu3_2"),
    (["--style-layers", "relu1_1, relu2_1"], "style_layers", ("relu1_1", "relu2_1")),
    (["--layer-weights", "1,0.5;2"], "layer_weights", (1.0, 0.5, 2.0)),
    (["--style-weights", "2,1"], "style_weights", (2.0, 1.0)),
    (["--style-scale", "0.5"], "style_scale", 0.5),
    (["--normalization", "gatys"], "normalization", "gatys"),
    (["--init", "noise"], "init", "noise"),
    (["--init-noise", "0.5"], "init_noise", 0.5),
    (["--optimizer", "adam"], "optimizer", "adam"),
    (["--lr", "0.05"], "lr", 0.05),
    (["--history-size", "20"], "history_size", 20),
    (["--tv", "10"], "tv_weight", 10.0),
    (["--preserve-color"], "preserve_color", True),
    (["--scales", "64,128"], "scales", (64, 128)),
    (["--scale-steps", "3,4"], "scale_steps", (3, 4)),
    (["--pyramid", "2"], "pyramid", 2),
    (["--seed", "5"], "seed", 5),
    (["--device", "cpu"], "device", "cpu"),
    (["--dtype", "float32"], "dtype", "float32"),
    (["--force-dtype"], "force_dtype", True),
    (["--backbone", "vgg16"], "backbone", "vgg16"),
    (["--pooling", "avg"], "pooling", "avg"),
    (["--preview-every", "3"], "preview_every", 3),
]

def transfer_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["transfer"]


def config_of(*argv: str, preset: str | None = None) -> TransferConfig:
    extra = ["--preset", preset] if preset else []
    return _transfer_config(build_parser().parse_args(["transfer", *extra, *argv]))


# ---- the declaration covers TransferConfig exactly ------------------------------------------------


def test_every_config_field_is_declared_exactly_once():
    declared = [o.name for o in options.OPTIONS]
    assert len(declared) == len(set(declared)), "an option is declared twice"
    missing = set(CONFIG_FIELDS) - set(declared)
    assert not missing, f"TransferConfig fields without a declaration in teachkit/options.py: {sorted(missing)}"
    assert not set(declared) - set(CONFIG_FIELDS), "a declaration names no TransferConfig field"


def test_declared_defaults_and_types_are_the_config_fields():
    cfg = TransferConfig()
    for o in options.OPTIONS:
        assert o.default == getattr(cfg, o.name)
        value = getattr(cfg, o.name)
        if value is not None:
            sample = value[0] if isinstance(value, tuple) else value
            assert type(sample) is o.type, o.name
            assert isinstance(value, tuple) == o.is_list, o.name


#: what the engine must accept and refuse, field by field (the oracle: the lecture's recipe and what
#: torch can run), independent of the declaration that implements it
ACCEPTED = [("size", 16), ("size", None), ("steps", 0), ("init_noise", 0.0), ("init_noise", 1), ("lr", 1e-6),
            ("pyramid", 1), ("pyramid", 8), ("history_size", 1), ("alpha", 0), ("tv_weight", 1e9),
            ("style_scale", 0.01), ("preview_every", 0), ("seed", options.SEED_MAX), ("init", "noise"),
            ("optimizer", "adam"), ("dtype", "bfloat16"), ("normalization", "none"), ("pooling", "avg"),
            ("layer_weights", (0.0, 1, 2.5, 0, 0)), ("scales", (16, 200)), ("scale_steps", (0, 5)),
            ("style_weights", (0.0, 1.0))]
REFUSED = [("size", 15), ("size", 16.5), ("size", True), ("steps", -1), ("steps", "7"), ("init_noise", 1.01),
           ("lr", 0.0), ("pyramid", 0), ("pyramid", 9), ("history_size", 0), ("alpha", -1e-9),
           ("beta", float("inf")), ("tv_weight", float("nan")), ("style_scale", 0), ("preview_every", -1),
           ("init", "zeros"), ("optimizer", "sgd"), ("dtype", "float16"), ("normalization", "bogus"),
           ("pooling", "min"), ("layer_weights", (1.0, -1.0, 1.0, 1.0, 1.0)), ("scales", (8, 64)),
           ("scales", (64, 32)), ("scales", ()), ("scale_steps", (1, -2)), ("style_weights", (0.0, 0.0)),
           ("style_layers", "relu1_1"), ("style_layers", ("relu1_1", "relu1_1")), ("layer_weights", (1.0,))]


@pytest.mark.parametrize("name,value", ACCEPTED, ids=[f"{n}={v!r}" for n, v in ACCEPTED])
def test_the_engine_accepts_each_value_it_can_run(name, value):
    TransferConfig(**{name: value}).validate()


@pytest.mark.parametrize("name,value", REFUSED, ids=[f"{n}={v!r}" for n, v in REFUSED])
def test_a_value_the_engine_cannot_run_is_one_error_naming_the_field_in_both_languages(name, value):
    with pytest.raises(ValueError) as info:
        TransferConfig(**{name: value}).validate()
    en, zh = str(info.value), info.value.text("zh")
    words = {"style_weights": "style weights", "layer_weights": "layer weights", "style_layers": "style_layers"}
    assert words.get(name, name) in en or name in en, en
    assert zh != en and any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh


# ---- the command line -------------------------------------------------------------------------------


def test_cli_options_are_exactly_the_declared_ones():
    actions = {a.dest: a for a in transfer_parser()._actions}
    from_config = {d for d in actions if d in CONFIG_FIELDS}
    assert from_config == {o.name for o in options.OPTIONS if o.cli_flag}
    assert {flag for argv, _, _ in CLI for flag in argv[:1]} == {o.cli_flag for o in options.OPTIONS if o.cli_flag}
    for o in options.OPTIONS:
        a = actions[o.name]
        assert a.option_strings == [o.cli_flag]
        assert (tuple(a.choices) if a.choices else None) == (tuple(o.choices) if o.choices else None)
        assert o.help("en").replace("%", "%%") in a.help


def test_no_option_given_is_exactly_the_config_and_preset_defaults():
    assert config_of() == TransferConfig()
    assert config_of(preset="quick") == TransferConfig.preset("quick")
    assert config_of("--size", "100", preset="quick") == TransferConfig.preset("quick", size=100)


@pytest.mark.parametrize("argv,name,value", CLI, ids=[c[0][0] for c in CLI])
def test_each_flag_sets_its_field_and_nothing_else(argv, name, value):
    got = config_of(*argv)
    assert getattr(got, name) == value
    assert type(getattr(got, name)) is type(value)
    assert dataclasses.replace(got, **{name: getattr(TransferConfig(), name)}) == TransferConfig()


def test_an_empty_list_on_the_command_line_stays_empty_and_a_bad_one_is_one_line(capsys):
    assert config_of("--style-layers", "", "--beta", "0").style_layers == ()
    with pytest.raises(SystemExit) as exit_:
        config_of("--scales", "64,big")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "64,big" in err and "Traceback" not in err


def test_help_shows_the_defaults_of_the_config_and_of_the_quick_preset():
    text = " ".join(transfer_parser().format_help().split())  # (argparse wraps lines)
    assert "(default: 384; --preset quick: 256)" in text
    assert f"(default: {TransferConfig().content_layer})" in text
    assert f"(default with --normalization auto: {NORMALIZATION_DEFAULTS['auto']['beta']})" in text


# ---- the words ------------------------------------------------------------------------------------------


def test_every_option_has_a_label_and_help_in_both_languages():
    for lang in ("en", "zh"):
        words = catalogue(lang)
        for o in options.OPTIONS:
            for msg_id in (f"option.{o.name}", f"option.{o.name}.help",
                           *(f"option.{o.name}.{c}" for c in o.choices or ())):
                assert words.get(msg_id, "").strip(), f"{msg_id} has no {lang} text"
    zh = catalogue("zh")
    for o in options.OPTIONS:  # the Chinese labels are Chinese, not the English ones copied
        if o.name not in ("alpha", "beta"):  # (α, β start both; their words differ)
            assert zh[f"option.{o.name}"] != catalogue("en")[f"option.{o.name}"], o.name


def display_width(s: str) -> int:
    """Columns a string takes in a proportional UI font, roughly: wide (CJK) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def test_choice_labels_are_short_enough_for_a_dropdown():
    # a quarter of the main area at 1280 px holds about 26 Latin characters (CJK count twice)
    for o in options.lesson_options():
        for c in o.choices or ():
            for lang in ("en", "zh"):
                label = o.choice_label(c, lang)
                assert display_width(label) <= 22, (o.name, c, lang, label)


# ---- lesson 6's form ----------------------------------------------------------------------------------


def test_form_fields_start_at_the_classroom_preset_within_the_declared_bounds_and_caps():
    quick = TransferConfig.preset("quick")
    caps = options.served_caps()
    for o in options.lesson_options():
        f = options.form_field(o.name, "en", layers=("relu1_1", "relu4_2"))
        expected = o.lesson_default if o.lesson_default is not None else getattr(quick, o.name)
        if expected is None and not o.is_list and o.name in NORMALIZATION_DEFAULTS["auto"]:
            expected = NORMALIZATION_DEFAULTS["auto"][o.name]
            assert f.key == f"p6_{o.name}_auto"
        if f.widget == "text":
            expected = "" if expected is None else ", ".join(map(str, expected))
        if o.low_open and getattr(quick, o.name) is None:  # the step length: 0 means automatic
            expected = 0
            assert options.form_value(o.name, f.value) is None
        assert f.value == expected, o.name
        if f.low is not None:
            assert f.low >= o.low and (f.low > o.low or not o.low_open or f.none_value is not None), o.name
            assert f.value >= f.low
        cap = caps.get(o.cap) if o.cap else None
        highs = [h for h in (o.high, cap, options.WIDGET_INT_MAX if o.type is int and f.widget != "text" else None)
                 if h is not None]
        assert f.high == (min(highs) if highs else None), o.name
        if f.options and o.choices:
            assert f.options == tuple(o.choices) and set(f.option_labels) == set(o.choices)
        assert f.label == o.label("en") and f.help == o.help("en")


def test_form_follows_a_smaller_served_cap_and_the_chosen_normalisation():
    f = options.form_field("size", "zh", caps={"max_size": 64})
    assert f.high == 64 and f.value == 64 and f.label == catalogue("zh")["option.size"]
    beta = options.form_field("beta", "en", chosen={"normalization": "lecture"})
    assert beta.value == NORMALIZATION_DEFAULTS["lecture"]["beta"] and beta.key == "p6_beta_lecture"


def test_form_values_make_the_config():
    start = TransferConfig.preset("quick")
    values = {o.name: options.form_field(o.name, "en", layers=start.style_layers + (start.content_layer,)).value
              for o in options.lesson_options()}
    got = options.config_from_form(values, backbone="vgg19")
    auto = NORMALIZATION_DEFAULTS["auto"]
    expected = dataclasses.replace(start, preview_every=5, alpha=auto["alpha"], beta=auto["beta"],
                                   tv_weight=auto["tv_weight"])
    assert got == expected
    with pytest.raises(ValueError) as err:
        options.config_from_form({**values, "scales": "128, x"})
    assert "128, x" in err.value.text("zh") and "整数" in err.value.text("zh")
    assert options.config_from_form({**values, "lr": 0.5}).lr == 0.5


def test_the_page_draws_exactly_the_declared_form(monkeypatch):
    """Lesson 6 itself (AppTest on the page's script): one widget per declared option, with the
    declared label, start value and bounds, in both languages."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from teachkit.lessons.pages import page

    monkeypatch.setenv("TEACHKIT_FAST", "1")
    monkeypatch.setenv("TEACHKIT_DEMO_SIZE", "32")
    monkeypatch.setenv("TEACHKIT_OFFLINE", "1")
    for lang in ("en", "zh"):
        at = AppTest.from_file(str(page(6).path), default_timeout=120)
        at.session_state["ui_lang"] = lang
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        widgets = {}
        for kind in ("slider", "number_input", "selectbox", "radio", "toggle", "text_input", "multiselect"):
            for w in getattr(at, kind):
                widgets[w.key.split("__")[0]] = w
        shown = {k for k in widgets if k.startswith("p6_") and k.split("__")[0] not in
                 ("p6_content_sample", "p6_style_samples")}
        expected = {}
        for o in options.lesson_options():
            f = options.form_field(o.name, lang, caps=options.served_caps())
            expected[f.key] = f
        assert shown == set(expected)
        for key, f in expected.items():
            w = widgets[key]
            assert w.label == f.label, key
            if f.widget in ("slider", "number"):
                assert w.min == f.low and w.max == f.high, key
                assert w.value == (32 if f.name == "size" else 3 if f.name == "steps" else f.value), key


def test_lesson6_start_resolves_its_config_once(monkeypatch):
    """One press of Start: the page resolves the form's config once (teachkit.transfer.schedule), and the
    classroom checks, the job and the engine all read that schedule."""
    pytest.importorskip("streamlit")
    import time

    from streamlit.testing.v1 import AppTest

    from teachkit import transfer
    from teachkit.lessons.pages import page

    for name, value in (("TEACHKIT_FAST", "1"), ("TEACHKIT_DEMO_SIZE", "32"), ("TEACHKIT_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    made = []
    resolve = transfer._resolve
    monkeypatch.setattr(transfer, "_resolve", lambda cfg: made.append(cfg) or resolve(cfg))  # every resolving
    at = AppTest.from_file(str(page(6).path), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    made.clear()
    at.button(key="p6_start").click().run()
    job = at.session_state["p6_job"]
    t0 = time.time()
    while job.alive and time.time() - t0 < 90:
        time.sleep(0.1)
    assert job.state == "done", (job.state, job.error)
    assert len(made) == 1, made
    assert job.result.plan.schedule is job.schedule  # the engine ran the page's schedule


def test_served_caps_are_the_classroom_limits_and_enforced_whatever_the_browser_sends():
    pytest.importorskip("streamlit")
    from teachkit.lessons.jobs import JobLimits, check_transfer

    limits = JobLimits()
    capped = [o for o in options.OPTIONS if o.served_max is not None]
    assert {o.name for o in capped} >= {"size", "steps"}
    for o in capped:
        assert getattr(limits, o.cap) == o.served_max, o.name
        at_cap = TransferConfig(**{o.name: o.type(o.served_max)})
        assert check_transfer(at_cap, 1, limits) == [], o.name
        beyond = TransferConfig(**{o.name: o.type(o.served_max + (o.step or 1))})
        assert len(check_transfer(beyond, 1, limits)) == 1, o.name


# ---- the seed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64, 1.5, "7", True])
def test_a_seed_outside_torchs_range_is_refused_before_the_run(seed):
    """2**64 used to pass validate() and fail mid-run inside torch.Generator.manual_seed, in English."""
    with pytest.raises(ValueError) as info:
        TransferConfig(seed=seed).validate()
    assert info.value.params["name"] == "seed" and repr(seed) in info.value.text("zh")


def test_every_seed_validate_accepts_is_one_torch_accepts():
    import torch

    for seed in (0, 1, options.SEED_MAX):
        TransferConfig(seed=seed).validate()
        torch.Generator().manual_seed(seed)  # the oracle: torch itself
    with pytest.raises((ValueError, RuntimeError, OverflowError)):
        torch.Generator().manual_seed(2**64)  # what used to fail mid-run, in torch's English


def test_the_cli_refuses_a_huge_seed_in_one_line(capsys, tmp_path):
    from teachkit.cli import main

    assert main(["--lang", "zh", "transfer", "--seed", str(2**64), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    rule = Message("config.rule.whole_range", low=0, high=options.SEED_MAX)
    detail = text("config.number", "zh", name="seed", rule=rule, value=repr(2**64))
    assert err == catalogue("zh")["cli.error"].format(detail=detail) and str(options.SEED_MAX) in err


def test_every_number_widget_of_the_form_is_one_streamlit_accepts():
    """Streamlit refuses integer bounds beyond a browser's safe integers (2**53 - 1): the seed's
    declared 2**63 - 1 must not reach the widget."""
    from streamlit.elements.lib.js_number import JSNumber

    for o in options.lesson_options():
        f = options.form_field(o.name, "en", layers=("relu1_1",))
        if f.widget in ("number", "slider") and o.type is int:
            for bound in (f.low, f.high, f.value):
                if bound is not None:
                    JSNumber.validate_int_bounds(int(bound), o.name)
