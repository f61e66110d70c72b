"""Messages as data: every error and progress line teachkit emits is an id plus parameters.

The words live in gettext catalogues, one per language, read with Babel:

    teachkit/locale/en/LC_MESSAGES/<domain>.po
    teachkit/locale/zh/LC_MESSAGES/<domain>.po

one gettext domain per area of the library (``teachkit.po`` for the core, ``exercises.po``, ...), so
that each area's words sit beside each other; an id is defined in exactly one domain.
Each entry's ``msgid`` is a stable, dotted id (``image.not_found``, ``config.size``,
``progress.scale``) and its ``msgstr`` the text in that language, with ``str.format`` fields for the
parameters (``{source}``, ``{mb:.1f}``).  Ids rather than English sentences as msgids ("symbolic
msgids") keep a reworded English text from orphaning its translation.  Nothing anywhere turns an
English sentence back into an id: code raises or reports the id and its parameters, and whoever
shows it (the CLI, the app, a notebook) renders it in its own language.

* ``text(msg_id, lang=None, **params)`` -- the text of one message;
* ``Message(msg_id, params)`` -- a message kept as data (progress reports carry one);
* ``TeachkitError`` -- the base of the errors a user can fix; ``err.text(lang)`` renders it, and
  ``str(err)`` is its English text (logs, tracebacks, ``pytest.raises(match=...)``);
  ``InputError`` is the one for a bad value (a ValueError); ``ImageError``, ``BackboneError``,
  ``ConfigError``, ``TransferError`` live beside the code that raises them;
* ``language()`` / ``set_language()`` / ``using_language()`` -- the process's language: ``--lang`` of
  the CLI, else the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``, ``LANGUAGE``): ``zh*`` -> Chinese,
  anything else English.

Ids are written as literal strings where they are raised or reported (``InputError("layer.unknown",
...)``, ``Message("progress.scale", k=1, n=2, side=128)``), never built from pieces, so that
``tests/test_messages.py`` finds every id in the source and checks it against the catalogues.  A
parameter named ``detail`` carries another library's own English words about a failure; a
translation may leave it out.
"""

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
    """``with using_language('zh'):`` -- the process speaks ``lang`` inside the block (None: the
    locale), and what was chosen before afterwards (the CLI's ``--lang`` for one run of ``main``)."""
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
    """The text of message ``msg_id`` in ``lang`` (default: :func:`language`), filled with ``params``.

    A message missing from the chosen language falls back to English; an id missing from both is a
    programming error and raises KeyError (the catalogue test catches it first).
    """
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
    """An error a user can fix: a message id with parameters.

    ``str(err)`` is the English text; ``err.text('zh')`` the Chinese one.  Subclasses also derive
    from the built-in type that callers already catch (``ImageError`` is a ``ValueError``).
    """

    def __init__(self, msg_id: str, /, **params: Any):
        self.msg_id = msg_id
        self.params = params
        self.message = Message(msg_id, params)
        super().__init__(self.message.text("en"))

    def text(self, lang: str | None = None) -> str:
        return self.message.text(lang)

    def __reduce__(self):
        # Exceptions pickle as cls(*args), and args holds the English text, not the id: keep the
        # whole state instead, so an error crossing a process boundary (a worker, torchrun) is
        # still an id with parameters on the other side.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls, args, state):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class InputError(TeachkitError, ValueError):
    """A value a user gave (an option, a layer name, a setting) that teachkit cannot use."""
