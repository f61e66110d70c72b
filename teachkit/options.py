"""The options of a style transfer, declared once in :data:`OPTIONS`: their checks, the ``teachkit
transfer`` flags and lesson 6's form are made from it.

Name, type and default are TransferConfig's fields; an :class:`Option` adds bounds, choices, the flag,
lesson 6's place and the served cap.  The words are catalogue messages ``option.<name>[.help|.<value>]``.
(tyro or jsonargparse would make neither the form nor the bilingual words.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .costs import NORMALIZATIONS
from .features import POOLINGS  # TransferConfig.pooling's choices (re-exported)
from .messages import InputError, Message, text
from .transfer import DTYPES, INITS, NORMALIZATION_DEFAULTS, OPTIMIZERS, PRESETS, ConfigError, TransferConfig

__all__ = ["Option", "OPTIONS", "option", "lesson_options", "served_caps", "over_caps", "check_config",
           "add_cli_arguments", "config_from_args", "FormField", "form_field", "form_value", "config_from_form",
           "ListError", "parse_list", "value_type", "POOLINGS", "SEED_MAX", "WIDGET_INT_MAX"]

#: the largest seed: a signed 64-bit number, as torch.Generator.manual_seed, numpy and the JSON log hold it
SEED_MAX = 2**63 - 1
#: the largest whole number a form widget holds (Streamlit refuses integer bounds beyond 2**53 - 1)
WIDGET_INT_MAX = 2**53 - 1


@dataclass(frozen=True)
class Option:
    """What the surfaces need to know about one TransferConfig field besides its type and default: bounds
    (of each item of a tuple), ``flag`` ('': ``--name``; None: none), lesson 6's section ('main', 'more'),
    ``served_max``, the cap a server enforces, held by ``JobLimits.<cap>`` (an operator may lower it)."""

    name: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    kind: str | None = None
    flag: str | None = ""
    metavar: str | None = None
    lesson: str | None = None
    widget: str | None = None
    step: float | None = None
    lesson_default: Any = None
    served_max: float | None = None
    cap: str | None = None

    @property
    def default(self) -> Any:
        """TransferConfig()'s value of this field."""
        return getattr(TransferConfig(), self.name)

    @property
    def type(self) -> type:
        """int, float, str or bool (of an item, for a tuple field)."""
        return value_type(self.name)[0]

    @property
    def is_list(self) -> bool:
        return value_type(self.name)[1]

    @property
    def nullable(self) -> bool:
        """Whether None is a value of the field (its "default" or "automatic")."""
        return value_type(self.name)[2]

    @property
    def cli_flag(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    def label(self, lang: str | None = None) -> str:
        return text(f"option.{self.name}", lang)

    def help(self, lang: str | None = None) -> str:
        return text(f"option.{self.name}.help", lang)

    def choice_label(self, value: Any, lang: str | None = None) -> str:
        return text(f"option.{self.name}.{value}", lang)

    def parse(self, raw: str) -> Any:
        """A command-line / text-box string -> the field's value (None: an empty list box)."""
        if self.is_list:
            return parse_list(raw, self.type)
        return self.type(raw)

    def accepts(self, v: Any) -> bool:
        """Whether ``v`` (one item, for a tuple field) is a value this option allows."""
        if self.choices is not None:
            return v in self.choices
        if self.type not in (int, float):
            return True  # names and switches: the network checks layer names
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return False
        if not isinstance(v, numbers.Integral) and (not math.isfinite(v) or (self.type is int and v != int(v))):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or v <= self.high

    def refusal(self, value: Any) -> "ConfigError":
        """The error naming the field, the rule and the value."""
        if self.choices is not None:
            return ConfigError("config.choice", name=self.name, choices=", ".join(self.choices), value=repr(value))
        whole = self.type is int
        if self.high is not None:
            rule = Message("config.rule.whole_range" if whole else "config.rule.range", low=self.low, high=self.high)
        elif self.low_open:
            rule = Message("config.rule.above", low=self.low)
        else:
            rule = Message("config.rule.whole" if whole else "config.rule.at_least", low=self.low)
        return ConfigError("config.items" if self.is_list else "config.number", name=self.name, rule=rule,
                           value=repr(value))


@functools.cache
def value_type(name: str) -> tuple[type, bool, bool]:
    """(item type, is a tuple, may be None) of TransferConfig field ``name``, from its annotation."""
    inner, optional = typing.get_type_hints(TransferConfig)[name], False
    if typing.get_origin(inner) in (typing.Union, types.UnionType):  # 'X | None' -> X
        optional = type(None) in typing.get_args(inner)
        inner = next(a for a in typing.get_args(inner) if a is not type(None))
    if typing.get_origin(inner) is tuple:
        return typing.get_args(inner)[0], True, optional
    return inner, False, optional


class ListError(InputError):
    """A text that is not a comma list of ``kind`` (catalogue message ``option.bad_list``)."""

    def __init__(self, raw: str, kind: type):
        super().__init__("option.bad_list", text=raw, what=Message(f"option.items.{kind.__name__}"))


def parse_list(raw: str, kind: type = float) -> tuple | None:
    """``'1, 2,3'`` -> ``(1.0, 2.0, 3.0)`` (``;`` also separates); empty -> None; else :class:`ListError`."""
    parts = [t.strip() for t in str(raw).replace(";", ",").split(",") if t.strip()]
    if not parts:
        return None
    try:
        return tuple(kind(t) for t in parts)
    except ValueError:
        raise ListError(raw, kind) from None


OPTIONS: tuple[Option, ...] = (
    Option("size", low=16, step=16, lesson="main", widget="slider", served_max=512, cap="max_size"),
    Option("steps", low=0, lesson="main", widget="slider", served_max=500, cap="max_steps"),
    Option("init", choices=INITS, lesson="main", widget="radio"),
    Option("normalization", choices=NORMALIZATIONS, lesson="main"),
    Option("alpha", low=0, lesson="main"),
    Option("beta", low=0, lesson="main"),
    Option("tv_weight", low=0, flag="--tv", lesson="main"),
    Option("preserve_color", lesson="main"),
    Option("content_layer", kind="layer", lesson="more"),
    Option("style_layers", kind="layers", lesson="more"),
    Option("layer_weights", low=0, lesson="more"),
    Option("optimizer", choices=OPTIMIZERS, lesson="more"),
    Option("lr", low=0, low_open=True, lesson="more"),
    Option("history_size", low=1, lesson="more", served_max=50, cap="max_history"),
    Option("init_noise", low=0, high=1, lesson="more", widget="slider"),
    Option("style_weights", low=0, lesson="more"),
    Option("style_scale", low=0, low_open=True, step=0.05, lesson="more", served_max=2.0, cap="max_style_scale"),
    Option("scales", low=16, lesson="more"),
    Option("seed", low=0, high=SEED_MAX, lesson="more"),
    Option("dtype", choices=DTYPES, lesson="more"),
    Option("preview_every", low=0, metavar="N", lesson="more", lesson_default=5),
    Option("scale_steps", low=0),
    Option("pyramid", low=1, high=8, metavar="LEVELS"),
    Option("device"),
    Option("force_dtype"),
    Option("backbone"),
    Option("pooling", choices=POOLINGS),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    return _BY_NAME[name]


def lesson_options() -> tuple[Option, ...]:
    """The options lesson 6's form shows, in its order."""
    return tuple(o for o in OPTIONS if o.lesson)


def served_caps() -> dict[str, float]:
    """The declared served caps by the served limits' attribute name: ``{'max_size': 512, ...}``."""
    return {o.cap: o.served_max for o in OPTIONS if o.cap}


def over_caps(sched, caps: Mapping[str, float]) -> list[Message]:
    """One message per value of ``sched`` beyond the served ``caps`` in force (by attribute name); steps
    count over all scales, no size (the content's own) is beyond the cap, L-BFGS's memory only with L-BFGS."""
    cfg, out = sched.config, []
    for o in OPTIONS:
        if not o.cap or (o.name == "history_size" and cfg.optimizer != "lbfgs"):
            continue
        value = sched.steps if o.name == "steps" else getattr(cfg, o.name)
        if value is None or value > caps[o.cap]:
            out.append(Message("option.over_cap", label=Message(f"option.{o.name}"), limit=caps[o.cap],
                               value=Message("option.automatic") if value is None else value))
    return out


def check_config(config: TransferConfig) -> None:
    """Raise a ConfigError for the first value outside its declaration, then for what must hold between fields."""
    for o in OPTIONS:
        value = getattr(config, o.name)
        if value is None and o.nullable:
            continue
        if o.is_list and not isinstance(value, (tuple, list)):
            raise ConfigError("config.not_a_list", name=o.name, value=repr(value))
        if not all(o.accepts(v) for v in (value if o.is_list else (value,))):
            raise o.refusal(value)
    layers = tuple(config.style_layers)
    if not layers and config.beta != 0:
        raise ConfigError("config.no_style_layers")
    if len(set(layers)) != len(layers):
        raise ConfigError("config.repeated_layers", layers=", ".join(layers))
    if config.layer_weights is not None and len(config.layer_weights) != len(layers):
        raise ConfigError("config.layer_weights_count", n=len(config.layer_weights), m=len(layers),
                          layers=", ".join(layers))
    if config.style_weights is not None and not sum(config.style_weights) > 0:
        raise ConfigError("config.style_weights", value=repr(tuple(config.style_weights)))
    if config.scales is not None and (not config.scales or list(config.scales) != sorted(set(config.scales))):
        raise ConfigError("config.scales", value=repr(tuple(config.scales)))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _default_note(o: Option, lang: str | None) -> str:
    """'(default: 384; --preset quick: 256)', '(default with --normalization auto: 4.5)', ..."""
    value = o.default
    if value is None and o.name in NORMALIZATION_DEFAULTS["auto"] and not o.is_list:
        return text("option.default_norm", lang, value=_show(NORMALIZATION_DEFAULTS["auto"][o.name]))
    shown = text("option.automatic", lang) if value is None else _show(value)
    if o.type is bool:
        return ""
    quick = PRESETS["quick"]
    if o.name in quick:
        return text("option.default_quick", lang, value=shown, quick=_show(quick[o.name]))
    return text("option.default", lang, value=shown)


def _cli_type(o: Option) -> Callable[[str], Any]:
    import argparse

    def convert(raw: str) -> Any:
        try:
            value = o.parse(raw)
            return () if value is None and o.is_list else value  # an explicit empty list stays empty
        except ListError as err:
            raise argparse.ArgumentTypeError(err.text()) from None

    convert.__name__ = ("list of " if o.is_list else "") + o.type.__name__  # argparse's "invalid int value"
    return convert


_LIST_METAVARS = {str: "NAME,...", float: "X,...", int: "N,..."}


def add_cli_arguments(parser, lang: str | None = None) -> None:
    """One argparse option per declared flag, defaulting to None so that the preset supplies the value."""
    for o in OPTIONS:
        if o.cli_flag is None:
            continue
        note = _default_note(o, lang)
        if o.choices and any(o.choice_label(c, lang) != c for c in o.choices):  # what each value means
            legend = text("option.choices", lang, items=text("option.list_sep", lang).join(
                text("option.choice_legend", lang, value=c, label=o.choice_label(c, lang)) for c in o.choices))
            note = text("option.with_default", lang, help=legend, default=note) if note else legend
        help_text = (text("option.with_default", lang, help=o.help(lang), default=note) if note
                     else o.help(lang)).replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": o.name, "default": None, "help": help_text}
        if o.type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _cli_type(o) if (o.is_list or o.type is not str) else str
            if o.choices:
                kwargs["choices"] = o.choices
            if o.metavar or o.is_list:
                kwargs["metavar"] = o.metavar or _LIST_METAVARS[o.type]
        parser.add_argument(o.cli_flag, **kwargs)


def config_from_args(args, preset: str = "default") -> TransferConfig:
    """The TransferConfig of parsed arguments: the preset, then every option given explicitly."""
    given = {o.name: getattr(args, o.name) for o in OPTIONS
             if o.cli_flag is not None and getattr(args, o.name, None) is not None}
    return TransferConfig.preset(preset, **given)


@dataclass(frozen=True)
class FormField:
    """One widget of lesson 6's form, without Streamlit; ``key`` ends in the normalisation for the weights
    (which start at its defaults); ``none_value`` is the widget value that means None."""

    name: str
    widget: str
    key: str
    label: str
    help: str
    section: str
    value: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple = ()
    option_labels: Mapping[Any, str] = dataclasses.field(default_factory=dict)
    none_value: Any = None


def form_field(name: str, lang: str, *, caps: Mapping[str, float] | None = None, layers: tuple = (),
               chosen: Mapping[str, Any] | None = None, start: TransferConfig | None = None) -> FormField:
    """The widget of option ``name`` in lesson 6's form: ``caps`` the served caps in force, ``layers`` the
    backbone's, ``chosen`` the earlier widgets' values, ``start`` the classroom preset by default."""
    o = option(name)
    if not o.lesson:
        raise ValueError(f"{name} is not in lesson 6's form")
    caps = served_caps() if caps is None else caps
    chosen = chosen or {}
    start = start or TransferConfig.preset("quick")
    value = getattr(start, name) if o.lesson_default is None else o.lesson_default
    key = f"p6_{name}"
    none_value = None
    if value is None and name in NORMALIZATION_DEFAULTS["auto"] and not o.is_list:
        norm = chosen.get("normalization", start.normalization)
        value = NORMALIZATION_DEFAULTS[norm][name]
        key = f"{key}_{norm}"
    common = dict(name=name, key=key, label=o.label(lang), help=o.help(lang), section=o.lesson)

    if o.type is bool:
        return FormField(widget="toggle", value=bool(value), **common)
    if o.kind in ("layer", "layers"):
        widget = "select" if o.kind == "layer" else "multiselect"
        return FormField(widget=widget, value=value if o.kind == "layer" else tuple(value), options=tuple(layers),
                         **common)
    if o.choices:
        return FormField(widget=o.widget or "select", value=value, options=tuple(o.choices),
                         option_labels={c: o.choice_label(c, lang) for c in o.choices}, **common)
    if o.is_list or o.type is str:
        none_value = ""
        shown = "" if value is None else (", ".join(map(str, value)) if o.is_list else str(value))
        return FormField(widget="text", value=shown, none_value=none_value, **common)
    # a number
    cap = caps.get(o.cap) if o.cap else None
    high = o.high if cap is None else (cap if o.high is None else min(o.high, cap))
    step = o.step if o.step is not None else (1 if o.type is int else None)
    low = o.low
    if value is None:  # an automatic number (the step length): 0 stands for "automatic"
        value = none_value = o.type(0)
    elif low is not None and o.low_open:  # 'low' itself is refused: start one step above it
        low = low + (step or 0.01)
    if o.type is int:
        high = WIDGET_INT_MAX if high is None else min(high, WIDGET_INT_MAX)
    if high is not None:
        value = min(value, high)
    if low is not None:
        value = max(value, low)
    widget = "slider" if o.widget == "slider" and low is not None and high is not None else "number"
    cast = o.type
    return FormField(widget=widget, value=cast(value), low=None if low is None else cast(low),
                     high=None if high is None else cast(high), step=None if step is None else cast(step),
                     none_value=none_value, **common)


def form_value(name: str, raw: Any) -> Any:
    """The field value of option ``name`` from its widget's: a text box parsed (empty: None), 0 where 0 is
    refused (the step length) None, a multiselect's list a tuple."""
    o = option(name)
    if isinstance(raw, str) and (o.is_list or o.type is not str):
        return o.parse(raw) if raw.strip() else None
    if o.is_list and raw is not None:
        return tuple(raw)
    if o.type in (int, float) and raw is not None and not isinstance(raw, bool):
        value = o.type(raw)
        return None if value == 0 and o.low_open else value
    return raw


def config_from_form(values: Mapping[str, Any], **fixed: Any) -> TransferConfig:
    """The TransferConfig of the form's values and the ``fixed`` fields the page sets itself."""
    return TransferConfig(**{**{n: form_value(n, v) for n, v in values.items()}, **fixed})
