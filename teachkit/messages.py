"""Messages as data: every text teachkit and its app show is an id plus parameters.

The words live in gettext catalogues ``teachkit/locale/<lang>/LC_MESSAGES/<domain>.po`` read with Babel (each
id in one domain, its ``msgstr`` with ``str.format`` fields).  Code names the id as a literal string
(tests/test_messages.py checks them) and whoever shows it renders it in its own language; a parameter
``detail`` carries another library's English words.  :func:`language`: ``--lang``, else the locale."""

from __future__ import annotations

import contextlib
import functools
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["LANGS", "Message", "TeachkitError", "InputError", "text", "language", "set_language", "catalogue",
           "normalize_lang", "catalogue_files", "domain_catalogue", "using_language"]

#: the languages teachkit speaks: code -> its own name
LANGS = {"en": "English", "zh": "中文"}
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "teachkit"

_chosen: str | None = None


def normalize_lang(value: str | None) -> str | None:
    """'zh_CN.UTF-8', 'zh-Hans', 'ZH' -> 'zh'; 'en_GB' -> 'en'; anything unknown or empty -> None."""
    if not value:
        return None
    head = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return head if head in LANGS else None


def set_language(lang: str | None) -> None:
    """Fix the process's language ('en' or 'zh'); None goes back to following the locale."""
    global _chosen
    _chosen = normalize_lang(lang) if lang else None


@contextlib.contextmanager
def using_language(lang: str | None):
    """``with using_language('zh'):`` -- the process speaks ``lang`` inside the block (None: the locale)."""
    global _chosen
    before = _chosen
    set_language(lang)
    try:
        yield
    finally:
        _chosen = before


def language() -> str:
    """The language of this process: set_language()'s, else the locale's, else English."""
    if _chosen:
        return _chosen
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:  # the first one set decides (POSIX order); 'C' or 'POSIX' means English
            return normalize_lang(value) or "en"
    for value in os.environ.get("LANGUAGE", "").split(":"):
        if normalize_lang(value):
            return normalize_lang(value)
    return "en"


def catalogue_files(lang: str) -> list[Path]:
    """The .po files (one per domain) of one language."""
    return sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po"))


@functools.lru_cache(maxsize=None)
def domain_catalogue(path: Path) -> dict[str, str]:
    """One .po file, read with Babel: id -> text (entries without a text are left out)."""
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        cat = read_po(f, domain=path.stem)
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str) and m.string}


@functools.lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """All messages of one language, every domain together: id -> text."""
    merged: dict[str, str] = {}
    for path in catalogue_files(lang):
        merged.update(domain_catalogue(path))
    return merged


def fields(template: str) -> set[str]:
    """The parameter names a catalogue text uses (``{mb:.1f}`` -> 'mb')."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


class _Lenient(dict):
    def __missing__(self, key):  # a parameter the caller forgot shows as {key}, never a KeyError
        return "{" + key + "}"


def text(msg_id: str, lang: str | None = None, /, **params: Any) -> str:
    """The text of message ``msg_id`` in ``lang`` (default :func:`language`), filled with ``params``;
    missing in that language, the English one; missing in both, KeyError."""
    lang = normalize_lang(lang) or language()
    template = catalogue(lang).get(msg_id) or catalogue("en")[msg_id]
    values = {k: _localise(v, lang) for k, v in params.items()}
    try:
        return string.Formatter().vformat(template, (), _Lenient(values))
    except (ValueError, TypeError):  # e.g. {mb:.1f} given a string: show every value plainly
        plain = "".join(literal.replace("{", "{{").replace("}", "}}") + ("" if name is None else "{" + name + "}")
                        for literal, name, _, _ in string.Formatter().parse(template))
        return string.Formatter().vformat(plain, (), _Lenient(values))


def help_text(msg_id: str, /, **params: Any) -> str:
    """An option's help in the process's language, ``%`` escaped for argparse."""
    return text(msg_id, **params).replace("%", "%%")


def _localise(value: Any, lang: str) -> Any:
    """A parameter that is itself a message (or an error carrying one) is rendered in the same language."""
    if isinstance(value, Message):
        return value.text(lang)
    if isinstance(value, TeachkitError):
        return value.text(lang)
    return value


@dataclass(frozen=True)
class Message:
    """One message kept as data: its id and its parameters; rendered when shown."""

    id: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, id: str, params: Mapping[str, Any] | None = None, /, **kwargs: Any):
        """``Message('progress.scale', k=1, n=2, side=128)`` or ``Message('progress.scale', {'k': 1, ...})``."""
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "params", {**(params or {}), **kwargs})

    def text(self, lang: str | None = None) -> str:
        return text(self.id, lang, **dict(self.params))

    def __str__(self) -> str:
        return self.text("en")


class TeachkitError(Exception):
    """An error a user can fix: a message id with parameters.  ``str(err)`` is the English text,
    ``err.text('zh')`` the Chinese; subclasses also derive from the built-in type callers catch."""

    def __init__(self, msg_id: str, /, **params: Any):
        self.msg_id = msg_id
        self.params = params
        self.message = Message(msg_id, params)
        super().__init__(self.message.text("en"))

    def text(self, lang: str | None = None) -> str:
        return self.message.text(lang)

    def __reduce__(self):
        # pickled as cls(*args) it would lose its id: keep the whole state (workers, torchrun)
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls, args, state):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class InputError(TeachkitError, ValueError):
    """A value a user gave (an option, a layer name, a setting) that teachkit cannot use."""
