"""Messages as data: every id in the catalogues (all domains), both languages, and the ids the code uses.

The oracle is the catalogue itself, read independently of :func:`teachkit.messages.text`: the
parameter names come from each English template, each is filled with a marked value, and the
marks must come out in both renderings.  The ids the code uses are found in its source (literal
strings, read with :mod:`ast`), so an id raised nowhere or raised but never written down fails here.
"""

from __future__ import annotations

import ast
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest

from teachkit import messages
from teachkit.messages import Message, TeachkitError, catalogue, catalogue_files, domain_catalogue, text

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "teachkit", ROOT / "lessons", ROOT / "app.py"]
ID_SHAPE = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_]+)+$")  # matches ids, never sentences
#: an interface key as the app passes it to ``tr()`` (message ``ui.<key>``, lessons/i18n.py)
KEY_SHAPE = re.compile(r"^[a-z][A-Za-z0-9_]*$")
#: a dotted name that is a file, not a message id (``image.png``, ``atlas.npz``)
FILE_ENDINGS = {"py", "po", "mo", "md", "txt", "json", "npz", "npy", "png", "jpg", "jpeg", "webp", "bmp", "tif",
                "tiff", "gif", "pdf", "svg", "csv", "toml", "yaml", "yml", "bin", "pt", "pth", "zip", "gz", "html",
                "ipynb", "log", "lock", "tmp", "part"}
CJK = re.compile(r"[\u3400-\u9fff]")
LETTERS = re.compile(r"[A-Za-z]")
#: a parameter a translation may leave out: another library's own (English) words about a failure
OPTIONAL = {"detail"}
#: figure texts that are formulas with spaces, written the same in both languages
FORMULAS = {"gram.cmp_cos", "gram.cmp_title", "viz.activation"}


def fields(template: str) -> dict[str, str]:
    """The parameters of a template and their format specs (``{mb:.1f}`` -> {'mb': '.1f'})."""
    return {name.split(".")[0].split("[")[0]: spec or ""
            for _, name, spec, _ in string.Formatter().parse(template) if name}


def marked(specs: dict[str, str]) -> dict:
    """A recognisable value per parameter: a marked string, or a distinct number where the
    template formats a number (``{mb:.1f}``)."""
    return {n: (7000 + 37 * i + 0.25 if spec else f"<<{n}>>") for i, (n, spec) in enumerate(sorted(specs.items()))}


def shown(value, spec: str) -> str:
    return format(value, spec) if spec else str(value)


def strip_fields(template: str) -> str:
    return "".join(lit for lit, _, _, _ in string.Formatter().parse(template))


EN, ZH = catalogue("en"), catalogue("zh")
IDS = sorted(EN)


# ---- the catalogues ----------------------------------------------------------------------------


def test_every_domain_exists_in_both_languages_with_the_same_ids():
    en = {p.name: p for p in catalogue_files("en")}
    zh = {p.name: p for p in catalogue_files("zh")}
    assert en and set(en) == set(zh), (sorted(en), sorted(zh))
    owner: dict[str, str] = {}
    for name in en:
        en_ids, zh_ids = set(domain_catalogue(en[name])), set(domain_catalogue(zh[name]))
        assert en_ids == zh_ids, (name, sorted(en_ids ^ zh_ids))  # no id lacks a translation
        for msg_id in en_ids:
            assert msg_id not in owner, f"{msg_id} is defined in {owner.get(msg_id)} and {name}"
            owner[msg_id] = name
            assert ID_SHAPE.match(msg_id), f"{name}: {msg_id!r} is not a dotted id"
    assert set(owner) == set(EN) == set(ZH)


@pytest.mark.parametrize("msg_id", IDS)
def test_each_id_renders_in_both_languages_with_its_parameters(msg_id):
    names, zh_names = fields(EN[msg_id]), fields(ZH[msg_id])
    assert set(zh_names) <= set(names), f"{msg_id}: the Chinese text uses parameters the English lacks"
    assert set(names) - set(zh_names) <= OPTIONAL, f"{msg_id}: the Chinese text leaves out {set(names) - set(zh_names)}"
    params = marked(names)
    en, zh = text(msg_id, "en", **params), text(msg_id, "zh", **params)
    for name, value in params.items():
        assert shown(value, names[name]) in en, (msg_id, name, en)
        if name in zh_names:
            assert shown(value, zh_names[name]) in zh, (msg_id, name, zh)
    # The Chinese text is Chinese: not the English one, with Chinese words -- unless the text is one
    # name or formula without a space ("Adam", "1/(n_H·n_W·n_C)"), the same in every language.
    literal = strip_fields(EN[msg_id]).strip()
    if LETTERS.search(literal) and any(c.isspace() for c in literal) and msg_id not in FORMULAS:
        assert zh != en and CJK.search(strip_fields(ZH[msg_id])), (msg_id, zh)


def test_message_params_that_are_messages_render_in_the_same_language():
    inner = Message("image.not_found")
    outer = Message("image.cannot_read", source="a.png", problem=inner)
    assert outer.text("zh") == ZH["image.cannot_read"].format(source="a.png", problem=ZH["image.not_found"])
    assert str(outer) == EN["image.cannot_read"].format(source="a.png", problem=EN["image.not_found"])


# ---- the code and the catalogue ------------------------------------------------------------------


def _python_files():
    for src in SOURCES:
        yield from ([src] if src.is_file() else sorted(src.rglob("*.py")))


#: calls whose literal string arguments are message ids: ``text("x.y")``, ``Message("x.y", ...)``,
#: ``ImageError.about(name, "x.y")`` and every ``...Error("x.y", ...)``
ID_CALLS = {"text", "Message", "about", "_fail"}


def _looks_like_id(s: str) -> bool:
    return bool(ID_SHAPE.match(s)) and s.rsplit(".", 1)[1].lower() not in FILE_ENDINGS


def _ui_id(key: str) -> str:
    from teachkit.lessons.i18n import msg_id

    return msg_id(key)


def _scan(trees: dict) -> tuple[dict[str, str], list[str]]:
    """The ids in parsed source files (name -> tree): every literal string of an area the catalogue
    has (``"image.not_found"`` in a table, too), every id-shaped literal argument of a call that
    takes an id (whatever its area), and the literal beginnings of f-strings that end in a dot
    (``f"option.items.{kind}"`` -> 'option.items.').  The app's ``tr("key")`` is message ``ui.key``:
    its literal keys count as ids, and so do bare literals that are keys (``"p1_scan_cancelled"``
    kept for a later ``tr``) and f-string heads (``tr(f"how_{h}")`` -> 'ui.how_').
    Returns (id -> where, prefixes)."""
    areas = {i.split(".")[0] for i in EN}
    found: dict[str, str] = {}
    prefixes: list[str] = []
    for name, tree in trees.items():
        heads = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if id(node) in heads:  # the literal part of an f-string: a prefix at most
                continue
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = str(node.values[0].value)
                if "." in head and ID_SHAPE.match(head + "x"):
                    prefixes.append(head)
                elif KEY_SHAPE.match(head.rstrip("_") or "-") and head.endswith("_"):
                    prefixes.append("ui." + head)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _looks_like_id(node.value) and node.value.split(".")[0] in areas:
                    found.setdefault(node.value, where)
                elif KEY_SHAPE.match(node.value) and _ui_id(node.value) in EN:
                    found.setdefault(_ui_id(node.value), where)
            elif isinstance(node, ast.Call):
                callee = getattr(node.func, "attr", getattr(node.func, "id", ""))
                key = node.args[0] if node.args else None
                if callee == "tr" and isinstance(key, ast.Constant) and isinstance(key.value, str) \
                        and KEY_SHAPE.match(key.value):
                    found[_ui_id(key.value)] = where  # an interface key: its id must exist
                if callee in ID_CALLS or callee.endswith("Error"):
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _looks_like_id(arg.value):
                            found.setdefault(arg.value, where)
    return found, prefixes


def _source_strings() -> tuple[dict[str, str], list[str]]:
    return _scan({str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"))
                  for path in _python_files()})


def test_every_id_the_code_uses_is_in_the_catalogue():
    found, _ = _source_strings()
    missing = {i: where for i, where in found.items() if i not in EN}
    assert not missing, f"ids used in the code but in no catalogue: {missing}"


def test_every_catalogue_id_is_used_somewhere():
    found, prefixes = _source_strings()
    unused = [i for i in IDS if i not in found and not any(i.startswith(p) for p in prefixes)]
    assert not unused, f"catalogue ids that no code uses: {unused}"


def test_the_scan_finds_ids_and_only_ids():
    """The source scan itself: it sees the ids the code raises and skips file names."""
    found, _ = _source_strings()
    assert {"config.choice", "image.not_found", "progress.scale", "layer.unknown"} <= set(found)
    assert not any(i.endswith((".png", ".py", ".npz")) for i in found)
    snippet = ast.parse("raise InputError('nowhere.at_all', x=1)\n"
                        "save('image.png'); Message(f'config.{name}')\n"
                        "ImageError.about(path, 'image.not_here'); print('see teachkit.images')\n"
                        "st.info(tr('p1_no_such_key')); tr('p3_alpha'); tr(f'how_{h}'); figtext.tr('viz.x', 'en')\n")
    found, prefixes = _scan({"snippet": snippet})
    assert set(found) == {"nowhere.at_all", "image.not_here", "ui.p1_no_such_key", "option.alpha", "viz.x"}
    assert prefixes == ["config.", "ui.how_"]


#: the domains of the app, the CLI and the library's core (other domains have their own owners)
APP_DOMAINS = {"ui", "lessons", "teachkit", "patches", "serve", "serving"}


def test_no_english_text_is_written_twice():
    """One text, one id: a text of the app or the core is not defined again under another id (the app's
    ``tr`` maps a page's key to the existing id instead, lessons/i18n.py: SAME_AS)."""
    ids_of: dict[str, list[str]] = {}
    for path in catalogue_files("en"):
        for msg_id, template in domain_catalogue(path).items():
            ids_of.setdefault(template, []).append(f"{path.stem}:{msg_id}")
    twice = {t: ids for t, ids in ids_of.items() if len(ids) > 1 and any(i.split(":")[0] in APP_DOMAINS for i in ids)}
    assert not twice, twice


# ---- real errors, rendered --------------------------------------------------------------------


def _zh_and_en(err: TeachkitError) -> tuple[str, str]:
    zh, en = err.text("zh"), str(err)
    assert zh != en and CJK.search(zh), zh
    assert en == err.text("en")
    return zh, en


def test_a_missing_file_names_the_file_in_chinese(tmp_path):
    from teachkit.images import ImageError, load_image

    path = tmp_path / "不在这里-missing.jpg"
    with pytest.raises(ImageError) as info:
        load_image(path)
    zh, en = _zh_and_en(info.value)
    assert str(path) in zh and str(path) in en
    assert zh == ZH["image.cannot_read"].format(source=path, problem=ZH["image.not_found"])
    assert isinstance(info.value, ValueError) and info.value.source == str(path)
    assert info.value.problem == Message("image.not_found")


def test_a_truncated_png_names_the_file_in_chinese(tmp_path):
    from PIL import Image

    from teachkit.images import ImageError, load_image

    path = tmp_path / "half.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    path.write_bytes(path.read_bytes()[:60])  # cut inside the pixel data
    with pytest.raises(ImageError) as info:
        load_image(path)
    zh, _ = _zh_and_en(info.value)
    assert "half.png" in zh and ZH["image.truncated"] in zh
    assert info.value.problem.id == "image.truncated"


def test_an_unknown_layer_names_the_layer_in_chinese(net):
    from teachkit.features import DEFAULT_STYLE_LAYERS

    with pytest.raises(ValueError) as info:
        net.check_layers(["relu9_9", *DEFAULT_STYLE_LAYERS])
    zh, en = _zh_and_en(info.value)
    assert "relu9_9" in zh and "relu9_9" in en and "relu1_1" in zh  # the valid names are listed too


@pytest.mark.parametrize("field, value, shown", [("size", 7, "7"), ("init_noise", 1.5, "1.5"),
                                                 ("optimizer", "sgd", "sgd"), ("lr", -1.0, "-1.0")])
def test_a_bad_config_value_is_named_in_chinese(field, value, shown):
    from teachkit.transfer import ConfigError, TransferConfig

    with pytest.raises(ConfigError) as info:
        TransferConfig(**{field: value}).validate()
    zh, en = _zh_and_en(info.value)
    assert shown in zh and shown in en
    assert isinstance(info.value, ValueError)  # what callers catch today


def test_progress_carries_its_message_as_data():
    from teachkit.progress import Progress

    p = Progress("transfer", 1, 10, message=Message("progress.scale", k=1, n=2, side=128))
    assert p.message == Message("progress.scale", {"k": 1, "n": 2, "side": 128})
    assert str(p.message) == EN["progress.scale"].format(k=1, n=2, side=128)  # the English text, for logs
    assert p.message.text("zh") == ZH["progress.scale"].format(k=1, n=2, side=128)


def test_the_cli_progress_bar_shows_the_note_in_the_process_language():
    import io

    from teachkit.progress import Progress, TqdmReporter

    bar = TqdmReporter(file=io.StringIO())
    with messages.using_language("zh"):
        bar(Progress("reconstruct", 1, 4, {"total": 1.0}, message=Message("progress.content", layer="relu3_1")))
    assert bar.bar.desc.rstrip(": ") == "reconstruct " + ZH["progress.content"].format(layer="relu3_1")
    bar.close()


def test_the_app_words_progress_and_errors_in_the_session_language(monkeypatch, caplog):
    from teachkit.images import ImageError
    from teachkit.lessons import i18n

    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    note = Message("progress.texture_n", layer="relu3_1", i=3, n=5)
    assert i18n.progress_message(note) == ZH["progress.texture_n"].format(layer="relu3_1", i=3, n=5)
    assert i18n.progress_message("已经是中文") == "已经是中文" and i18n.progress_message(None) == ""
    err = ImageError.about("猫.png", "image.bomb")
    assert i18n.error_text(err) == ZH["image.cannot_read"].format(source="猫.png", problem=ZH["image.bomb"])
    assert i18n.error_text("一个课堂限制") == "一个课堂限制"  # worded by the app already
    with caplog.at_level("WARNING"):
        shown = i18n.error_text(RuntimeError("/srv/secret: shape mismatch"))
    assert shown == ZH["ui.error_internal"] and "/srv" not in shown
    assert "/srv/secret: shape mismatch" in caplog.text  # the details go to the server log


def test_errors_survive_pickling_as_ids():
    """A worker process (a dataset scan) sends its errors back pickled: still an id + parameters."""
    import pickle

    from teachkit.images import ImageError

    err = pickle.loads(pickle.dumps(ImageError.about("a.png", "image.empty")))
    assert isinstance(err, ImageError) and err.source == "a.png" and err.problem.id == "image.empty"
    assert err.text("zh") == ZH["image.cannot_read"].format(source="a.png", problem=ZH["image.empty"])


def test_language_follows_the_locale_and_the_choice(monkeypatch):
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    assert messages.language() == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert messages.language() == "zh"
    monkeypatch.setenv("LC_ALL", "C")  # LC_ALL wins over LANG
    assert messages.language() == "en"
    with messages.using_language("zh"):
        assert messages.language() == "zh"
    assert messages.language() == "en"


# ---- the CLI ----------------------------------------------------------------------------------


def _zh_missing(name: str) -> str:
    from teachkit.samples import CONTENT_SAMPLES, STYLE_SAMPLES

    problem = ZH["image.not_file_nor_sample"].format(content=", ".join(CONTENT_SAMPLES),
                                                     style=", ".join(STYLE_SAMPLES))
    return ZH["cli.error"].format(detail=ZH["image.cannot_read"].format(source=name, problem=problem))


@pytest.mark.parametrize("how", ["locale", "option"])
def test_cli_speaks_chinese_for_a_missing_file(how, tmp_path, monkeypatch, capsys):
    from teachkit.cli import main

    for var in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8" if how == "locale" else "en_US.UTF-8")
    head = [] if how == "locale" else ["--lang", "zh"]
    name = str(tmp_path / "missing.jpg")
    code = main([*head, "transfer", name, "rings", "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == _zh_missing(name), err
    assert messages.language() == ("zh" if how == "locale" else "en")  # --lang held for that run only


def test_cli_in_a_chinese_locale_prints_one_line_and_no_traceback(tmp_path):
    name = str(tmp_path / "missing.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env.update(LANG="zh_CN.UTF-8", PYTHONIOENCODING="utf-8")
    out = subprocess.run([sys.executable, "-m", "teachkit.cli", "transfer", name, "rings", "-o",
                          str(tmp_path / "out.png")], capture_output=True, text=True, encoding="utf-8", env=env,
                         timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == _zh_missing(name), out.stderr
    assert "Traceback" not in out.stderr


# ---- out of memory in the app --------------------------------------------------------------------


@pytest.mark.parametrize("err, device", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "cuda"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 9663676416 bytes."), "cpu"),
    (MemoryError(), "cpu"),
])
def test_the_app_says_what_to_lower_when_memory_runs_out(err, device, monkeypatch):
    """It used to show the general "something went wrong" sentence: nothing to act on."""
    from teachkit.lessons import i18n
    from teachkit.memory import OutOfMemory

    for lang in ("zh", "en"):
        monkeypatch.setattr(i18n, "lang", lambda lang=lang: lang)
        want = catalogue(lang)["memory.out_of_memory_app"].format(device=device)
        assert i18n.error_text(err) == want
        assert i18n.error_text(OutOfMemory(device)) == want  # the CLI's flavour becomes the app's
        try:  # raised from inside teachkit: the cause is found
            raise ValueError("while running the demo") from err
        except ValueError as outer:
            assert i18n.error_text(outer) == want


def test_a_demo_that_runs_out_of_memory_shows_one_line_and_stops(monkeypatch):
    from teachkit.lessons import i18n

    shown = []

    class Stopped(Exception):
        pass

    class FakeSt:
        def error(self, s):
            shown.append(s)

        def stop(self):
            raise Stopped

    monkeypatch.setattr(i18n, "st", FakeSt())
    monkeypatch.setattr(i18n, "lang", lambda: "zh")
    with pytest.raises(Stopped):
        with i18n.out_of_memory_on_page():
            raise RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)")
    assert shown == [ZH["memory.out_of_memory_app"].format(device="mps")]
    with pytest.raises(RuntimeError, match="shape mismatch"):  # any other error passes unchanged
        with i18n.out_of_memory_on_page():
            raise RuntimeError("shape mismatch")
    assert len(shown) == 1


# ---- figure texts: the domain figures.po ----------------------------------------------------------


def _read_po(path: Path) -> dict[str, str]:
    """A .po file read with Babel directly (not through teachkit.messages)."""
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


def test_figures_show_the_words_of_figures_po():
    from teachkit import figtext

    for lang in ("en", "zh"):
        words = _read_po(messages.LOCALE_DIR / lang / "LC_MESSAGES" / "figures.po")
        assert len(words) >= 40, lang
        for msg_id, template in words.items():
            params = marked(fields(template))
            assert figtext.tr(msg_id, lang, **params) == template.format(**params), (lang, msg_id)


def test_a_missing_chinese_font_is_one_message_in_both_languages(monkeypatch):
    import importlib.util

    from teachkit import figtext

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(figtext.FontError) as info:
        figtext.cjk_font_path()
    assert info.value.msg_id == "figure_font.no_mplfonts" and isinstance(info.value, RuntimeError)
    assert info.value.text("zh") == ZH["figure_font.no_mplfonts"] and str(info.value) == EN["figure_font.no_mplfonts"]
