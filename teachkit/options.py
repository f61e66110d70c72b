"""The options of a style transfer, declared once: the ``teachkit transfer`` flags and lesson 6's form
are both made from :data:`OPTIONS`.

What is declared where
----------------------
* name, type and default: the field of :class:`teachkit.transfer.TransferConfig` itself (read with
  :func:`dataclasses.fields` / :func:`typing.get_type_hints`; never repeated here);
* everything else a user-facing surface needs, here, one :class:`Option` per field: the bounds that
  ``TransferConfig.validate`` enforces, the choices, the command-line spelling, whether and where
  lesson 6 shows it, and the cap the classroom server enforces for visitors (``served_max``);
* the words: catalogue messages (``teachkit/locale/{en,zh}/LC_MESSAGES/options.po``) with ids made
  from the field's name -- ``option.<name>`` (label), ``option.<name>.help``, and
  ``option.<name>.<value>`` for each choice (short: a dropdown at 1280 px must not cut them).

Every field of TransferConfig has exactly one Option (``tests/test_options.py`` fails otherwise), so a
new field is either declared or the suite says so.

Two projections are made from it:

* :func:`add_cli_arguments` / :func:`config_from_args` -- argparse options for ``teachkit transfer``
  (every option defaults to "not given", so a ``--preset``'s fields apply unless an option overrides
  them; comma lists for the tuple fields);
* :func:`form_field` / :func:`config_from_form` -- a plain description of each widget of lesson 6's
  form (kind, label, help, bounds after the served caps, choices with their labels, start value);
  the page only draws them (teachkit never imports Streamlit).

Why dataclass fields plus this table, not tyro or jsonargparse: both build a command line from a
dataclass, but neither makes a Streamlit form, carries labels in two languages or served caps, and
tyro would change the CLI's style (``--size INT``, ``--style-layers A B``, booleans as
``--flag/--no-flag``) that users and tests rely on; neither is installed, and nothing may be
downloaded.  The metadata sits in this module rather than in ``field(metadata=...)`` calls inside
TransferConfig so that the engine's file keeps reading as the lecture's recipe; the fields
themselves stay the one home of types and defaults.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .costs import NORMALIZATIONS
from .features import POOLINGS  # TransferConfig.pooling's choices (re-exported)
from .messages import InputError, Message, text
from .transfer import DTYPES, INITS, NORMALIZATION_DEFAULTS, OPTIMIZERS, PRESETS, TransferConfig

__all__ = ["Option", "OPTIONS", "option", "lesson_options", "served_caps", "add_cli_arguments",
           "config_from_args", "FormField", "form_field", "form_value", "config_from_form", "ListError",
           "parse_list", "value_type", "display_width", "POOLINGS", "SEED_MAX", "WIDGET_INT_MAX"]

#: the largest seed: a signed 64-bit number, held exactly by torch.Generator.manual_seed, numpy and
#: the JSON log (2**64 used to fail mid-run inside torch)
SEED_MAX = 2**63 - 1
#: the largest whole number a form widget can hold: the browser's numbers are doubles, and Streamlit
#: refuses an integer bound beyond 2**53 - 1 (a seed's declared 2**63 - 1 would break lesson 6's form)
WIDGET_INT_MAX = 2**53 - 1


@dataclass(frozen=True)
class Option:
    """What a user-facing surface needs to know about one TransferConfig field (besides its type and
    default, which the field itself declares).

    ``low``/``high``: the bounds ``TransferConfig.validate`` enforces (of each item, for a tuple field);
    ``low_open``: ``low`` itself is refused (``> low``).  ``choices``: the allowed values; ``layer`` /
    ``layers``: a layer name / names of the backbone (the form offers the backbone's layers).
    ``flag``: the command-line spelling (default ``--`` + the name with dashes; ``None``: not on the
    command line).  ``lesson``: ``'main'`` (always visible), ``'more'`` (the "More options" expander)
    or ``None`` (not in lesson 6's form).  ``widget``: the form's widget when the type alone does not
    decide (``'slider'``, ``'radio'``).  ``step``: the form's step.  ``lesson_default``: where the form
    starts when it is not the classroom preset's value.  ``served_max``: the cap the classroom server
    enforces for visitors (the default of the served limits' attribute ``cap``,
    ``teachkit.lessons.jobs.JobLimits``, whose docstring gives the memory budget these values fit;
    an operator may lower them by environment variable; the form's maximum follows).
    """

    name: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    kind: str | None = None  # 'layer' | 'layers' (names of the backbone's layers); None: from the type
    flag: str | None = ""  # "" -> '--' + name with dashes; None -> not on the command line
    metavar: str | None = None
    lesson: str | None = None  # 'main' | 'more' | None
    widget: str | None = None  # 'slider' | 'radio' | None (from the type)
    step: float | None = None
    lesson_default: Any = None
    served_max: float | None = None
    cap: str | None = None  # the served limits' attribute that holds the cap (JobLimits.max_size, ...)

    # -- derived from TransferConfig --------------------------------------------------------------
    @property
    def default(self) -> Any:
        """TransferConfig()'s value of this field (the one declaration of the default)."""
        return getattr(TransferConfig(), self.name)

    @property
    def type(self) -> type:
        """The field's value type: int, float, str or bool; for a tuple field, the type of an item."""
        return value_type(self.name)[0]

    @property
    def is_list(self) -> bool:
        return value_type(self.name)[1]

    @property
    def cli_flag(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    # -- words -------------------------------------------------------------------------------------
    def label(self, lang: str | None = None) -> str:
        return text(f"option.{self.name}", lang)

    def help(self, lang: str | None = None) -> str:
        return text(f"option.{self.name}.help", lang)

    def choice_label(self, value: Any, lang: str | None = None) -> str:
        return text(f"option.{self.name}.{value}", lang)

    # -- values ----------------------------------------------------------------------------------
    def parse(self, raw: str) -> Any:
        """A command-line / text-box string -> the field's value (a tuple for a list field; ``None``
        for an empty list box).  ValueError (a catalogue message) on a bad string."""
        if self.is_list:
            return parse_list(raw, self.type)
        return self.type(raw)


def value_type(name: str) -> tuple[type, bool]:
    """(the item type, whether the field is a tuple) of TransferConfig field ``name``, from its annotation."""
    inner = _hints()[name]
    if typing.get_origin(inner) in (typing.Union, types.UnionType):  # 'X | None' -> X
        inner = next(a for a in typing.get_args(inner) if a is not type(None))
    if typing.get_origin(inner) is tuple:
        return typing.get_args(inner)[0], True
    return inner, False


_HINTS: dict[str, Any] = {}


def _hints() -> dict[str, Any]:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(TransferConfig))
    return _HINTS


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


# ---- the declaration -------------------------------------------------------------------------------
# In the order the form shows them (main row, then "More options"), the CLI-only ones last.

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


# ---- the command line --------------------------------------------------------------------------------


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
    """Add one argparse option per declared option that has a command-line flag.

    Every option's default is ``None`` ("not given"): :func:`config_from_args` then lets the preset
    and TransferConfig supply the value, so the declared defaults are TransferConfig's.
    """
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


# ---- lesson 6's form ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One widget of lesson 6's form, described without Streamlit.

    ``widget``: 'slider' | 'number' | 'radio' | 'select' | 'multiselect' | 'toggle' | 'text'.
    ``low``/``high``: the widget's bounds (the declared ones, the served cap as the maximum; an open
    bound moves in by ``step``).  ``value``: where it starts.  ``options`` and ``option_labels``: the
    choices and their words.  ``key``: the widget key (``p6_<name>``; the normalisation-dependent
    weights add ``_<normalization>`` so a new normalisation starts them at its own defaults).
    ``none_value``: the widget value that means ``None`` (the text box left empty, a step length 0).
    """

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
    """The widget of option ``name`` in lesson 6's form, in ``lang``.

    ``caps``: the served caps in force, by attribute name (``{'max_size': 512, ...}``; default the
    declared ones); ``layers``: the backbone's layer names (for the layer fields); ``chosen``: the
    values the form's earlier widgets hold (the weights start at the chosen normalisation's
    defaults); ``start``: the config the form starts at (default the classroom preset).
    """
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
    """The field value of option ``name`` from its widget's value: a text box is parsed (an empty
    one is None; :class:`ListError` if it is not a list), a number 0 where 0 is refused (the step
    length) means None ("automatic"), a multiselect's list becomes a tuple."""
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
    """The TransferConfig of the form's widget values (``{name: value}``, see :func:`form_value`;
    raises :class:`ListError` on a bad text box); ``fixed``: fields the page sets itself (the
    backbone in use).  Fields the form does not show keep TransferConfig's defaults."""
    return TransferConfig(**{**{n: form_value(n, v) for n, v in values.items()}, **fixed})


def display_width(s: str) -> int:
    """Columns a string takes in a proportional UI font, roughly: wide (CJK) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)
