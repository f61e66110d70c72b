"""The `teachkit` command as a whole: sub-command registration, `patches merge`, and safe file handling
(an output that is an input, pipes as input, interrupted writes, file modes)."""

from __future__ import annotations

import json
import os
import stat
import threading

import numpy as np
import pytest
from PIL import Image

from teachkit import cli
from teachkit.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny images: one thread is fastest (conftest)

FAST = ["--size", "32", "--steps", "2", "--style-layers", "relu1_1", "--content-layer", "relu1_1", "--quiet"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(11)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    return root


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_every_sub_command_is_registered_once():
    names = list(cli.build_parser()._subparsers._group_actions[0].choices)
    assert names == ["layers", "transfer", "patches", "gram", "reconstruct", *names[5:]]
    assert len(names) == len(set(names)) == len(cli.COMMANDS)


def test_gram_shorthand_means_show():
    assert cli._gram_shorthand(["gram", "chelsea", "-o", "x.png"]) == ["gram", "show", "chelsea", "-o", "x.png"]
    for argv in (["gram", "pair", "chelsea"], ["gram", "--help"], ["transfer", "chelsea"], ["gram"]):
        assert cli._gram_shorthand(argv) == argv


# ---- patches merge -------------------------------------------------------------------------------


def test_patches_merge_of_two_shards_equals_the_whole_scan(photos, tmp_path, monkeypatch, capsys):
    from teachkit.patches import Atlas

    monkeypatch.setenv("TEACHKIT_CACHE", str(tmp_path / "cache"))
    scan = ["patches", "scan", "--data", str(photos), "--layers", "relu1_1,relu2_1", "--k", "3",
            "--image-size", "32", "--batch-size", "2"]
    assert main([*scan, "--out", str(tmp_path / "whole.npz")]) == 0
    assert main([*scan, "--shard", "0/2", "--out", str(tmp_path / "a.npz")]) == 0
    assert main([*scan, "--shard", "1/2", "--out", str(tmp_path / "b.npz")]) == 0
    capsys.readouterr()
    assert main(["patches", "merge", str(tmp_path / "b.npz"), str(tmp_path / "a.npz"),
                 "-o", str(tmp_path / "merged.npz")]) == 0
    assert "merged.npz" in capsys.readouterr().out
    whole, merged = Atlas.load(tmp_path / "whole.npz"), Atlas.load(tmp_path / "merged.npz")
    part = Atlas.load(tmp_path / "a.npz")
    assert merged.layers == whole.layers
    for n in whole.layers:
        for field in ("values", "images", "ys", "xs"):
            assert np.array_equal(getattr(merged, field)[n], getattr(whole, field)[n]), (n, field)
        assert not np.array_equal(part.images[n], whole.images[n])  # a shard alone is not the whole
    assert (merged.meta["start"], merged.meta["end"]) == (0, 4)

    # The same shard twice would count its images twice; an output that is an input is refused.
    assert main(["patches", "merge", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"),
                 "-o", str(tmp_path / "twice.npz")]) == 2
    assert "overlap" in one_line_error(capsys.readouterr().err)
    assert main(["patches", "merge", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                 "-o", str(tmp_path / "a.npz")]) == 2
    assert "input" in one_line_error(capsys.readouterr().err)
    assert main(["patches", "merge", str(tmp_path / "a.npz"), "-o", str(tmp_path / "one.npz")]) == 2
    assert "two atlas files" in one_line_error(capsys.readouterr().err)
    assert main(["patches", "merge", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                 "-o", str(tmp_path / "m.txt")]) == 2
    assert "m.txt" in one_line_error(capsys.readouterr().err)


# ---- the output is never an input; a pipe is not an image --------------------------------------


def test_output_equal_to_an_input_is_refused(photos, tmp_path, capsys):
    content = tmp_path / "photo.png"
    content.write_bytes((photos / "p0.png").read_bytes())
    before = content.read_bytes()
    (tmp_path / "same.png").symlink_to(content)
    for out in (content, tmp_path / "same.png", tmp_path / "x" / ".." / "photo.png"):
        (tmp_path / "x").mkdir(exist_ok=True)
        assert main(["transfer", str(content), "waves", "-o", str(out), *FAST]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "photo.png" in line and "input" in line
        assert main(["transfer", "chelsea", str(content), "--log", str(tmp_path / "l.json"),
                     "-o", str(out), *FAST]) == 2  # a style image is an input too
        assert "input" in one_line_error(capsys.readouterr().err)
    assert content.read_bytes() == before


@pytest.mark.parametrize("command", [["gram", "show"], ["gram", "pair"], ["gram", "shuffle"],
                                     ["reconstruct", "content"]])
def test_figure_over_its_input_image_is_refused(photos, tmp_path, capsys, command):
    photo = tmp_path / "p.png"
    photo.write_bytes((photos / "p0.png").read_bytes())
    before = photo.read_bytes()
    assert main([*command, str(photo), "-o", str(photo)]) == 2
    assert "input" in one_line_error(capsys.readouterr().err)
    assert photo.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_as_input_is_an_error_not_a_hang(tmp_path, capsys):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    rc = {}
    t = threading.Thread(target=lambda: rc.setdefault("rc", main(["transfer", str(fifo), "waves", "-o",
                                                                 str(tmp_path / "o.png"), *FAST])), daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        with open(fifo, "wb"):  # let the blocked reader go, then fail
            pass
        pytest.fail("teachkit transfer blocked on a FIFO")
    assert rc["rc"] == 2
    line = one_line_error(capsys.readouterr().err)
    assert "photo.png" in line and "not a regular file" in line


# ---- interrupted writes leave the old file and no temporary file; modes follow the umask ---------


def run_transfer(photos, tmp_path, *extra):
    return main(["transfer", str(photos / "p0.png"), str(photos / "p1.png"), "-o", str(tmp_path / "out.png"),
                 *FAST, *extra])


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp"))


def test_ctrl_c_while_saving_the_result(photos, tmp_path, monkeypatch, capsys):
    (tmp_path / "out.png").write_bytes(b"old result")

    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"half a picture")
        raise KeyboardInterrupt  # the second Ctrl-C, during the save

    monkeypatch.setattr(Image.Image, "save", interrupted)
    assert run_transfer(photos, tmp_path) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "out.png").read_bytes() == b"old result" and leftovers(tmp_path) == []


def test_log_written_atomically_and_modes_follow_the_umask(photos, tmp_path, monkeypatch, capsys):
    log = tmp_path / "log.json"
    log.write_text('{"old": true}')
    real_dump = json.dump

    def interrupted(obj, fp, **kwargs):
        fp.write('{"half": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted)
    old_mask = os.umask(0o027)
    try:
        assert run_transfer(photos, tmp_path, "--log", str(log)) == 130
    finally:
        os.umask(old_mask)
    assert json.loads(log.read_text()) == {"old": True} and leftovers(tmp_path) == []
    # The image was written before the log, as a new file: 0o666 less the umask, not 0o600.
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o640
    monkeypatch.setattr(json, "dump", real_dump)
    capsys.readouterr()


def test_plot_written_atomically(photos, tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    plot = tmp_path / "plot.png"
    plot.write_bytes(b"old plot")

    def interrupted(self, fname, *args, **kwargs):
        if hasattr(fname, "write"):
            fname.write(b"half a plot")
        else:
            with open(fname, "wb") as f:
                f.write(b"half a plot")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    assert run_transfer(photos, tmp_path, "--plot", str(plot)) == 130
    assert plot.read_bytes() == b"old plot" and leftovers(tmp_path) == []


# ---- two outputs of one command never name the same file (teachkit.fileio) -----------------------


def test_same_path_sees_through_dots_links_and_files_not_written_yet(tmp_path):
    from teachkit.fileio import check_distinct_outputs, same_path
    from teachkit.messages import InputError

    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "d")
    a = tmp_path / "d" / "out.png"  # does not exist yet
    assert same_path(a, tmp_path / "link" / "out.png")
    assert same_path(a, tmp_path / "d" / ".." / "d" / "out.png")
    assert not same_path(a, tmp_path / "d" / "out2.png")
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.png")  # an existing file: the same file under another name
    assert same_path(a, tmp_path / "hard.png")
    (tmp_path / "copy.png").write_bytes(b"x")
    assert not same_path(a, tmp_path / "copy.png")  # equal bytes, another file
    check_distinct_outputs({"-o": a, "--plot": None, "--log": tmp_path / "log.json"})
    with pytest.raises(InputError) as err:
        check_distinct_outputs({"-o": a, "--plot": tmp_path / "hard.png"})
    assert err.value.msg_id == "output.clash" and err.value.params["first"] == "-o"
    assert "--plot" in err.value.text("zh") and "同一个文件" in err.value.text("zh")


# ---- the language of the option help --------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "option=", "locale"])
def test_transfer_help_speaks_the_chosen_language(how, monkeypatch, capsys):
    """The help is worded when the parser is built, so --lang must count before that (it used to be
    applied only after parsing: `--lang zh transfer --help` printed English)."""
    from teachkit.messages import catalogue

    zh, en = catalogue("zh"), catalogue("en")
    for var in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8" if how == "locale" else "en_US.UTF-8")
    head = {"option": ["--lang", "zh"], "option=": ["--lang=zh"], "locale": []}[how]
    with pytest.raises(SystemExit) as info:
        main([*head, "transfer", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare without the breaks
    for msg_id in ("option.seed.help", "cli.transfer.quiet"):
        assert " ".join(zh[msg_id].split()) in out and " ".join(en[msg_id].split()) not in out, msg_id


def test_an_english_lang_option_wins_over_a_chinese_locale(monkeypatch, capsys):
    from teachkit.messages import catalogue

    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    with pytest.raises(SystemExit):
        main(["--lang", "en", "transfer", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert " ".join(catalogue("en")["cli.transfer.quiet"].split()) in out


def test_lang_is_read_before_and_after_the_sub_command():
    assert cli._lang_option(["--lang", "zh", "transfer"]) == "zh"
    assert cli._lang_option(["--lang=en", "gram", "x"]) == "en"
    assert cli._lang_option(["transfer", "--lang", "zh"]) == "zh"
    assert cli._lang_option(["--lang", "en", "patches", "scan", "--lang=zh"]) == "zh"  # the last one wins
    assert cli._lang_option(["transfer", "--", "--lang", "zh"]) is None  # after --, a file name
    assert cli._lang_option(["--lang"]) is None


def test_every_global_option_works_after_every_sub_command():
    """`teachkit transfer --lang zh ...` used to answer "unrecognized arguments: --lang"."""
    parser = cli.build_parser()
    top = {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}
    assert {"--lang", "--version"} <= top
    paths = list(_parsers(parser))
    assert len(paths) > 15 and ("patches", "scan") in dict(paths) and ("gram", "pair") in dict(paths)
    for path, p in paths:
        for option in top:
            assert option in p._option_string_actions, (path, option)
        assert p._option_string_actions["--lang"].dest == "lang", path
    # given after, it is the same option; not given, the top's stays
    assert parser.parse_args(["--lang", "zh", "gram", "pair", "chelsea", "-o", "x.png"]).lang == "zh"
    assert parser.parse_args(["gram", "pair", "chelsea", "-o", "x.png", "--lang", "zh"]).lang == "zh"
    assert parser.parse_args(["patches", "scan", "--lang=zh"]).lang == "zh"
    assert parser.parse_args(["patches", "--lang", "en", "scan"]).lang == "en"
    assert parser.parse_args(["gram", "pair", "chelsea", "-o", "x.png"]).lang is None


@pytest.mark.parametrize("argv", [
    ["transfer", "{missing}", "rings", "-o", "{out}", "--lang", "zh"],
    ["reconstruct", "--lang=zh", "content", "{missing}", "-o", "{out}"],
    ["gram", "{missing}", "--lang", "zh", "-o", "{out}"],  # the shorthand of `gram show`
])
def test_lang_after_the_sub_command_speaks_chinese(argv, tmp_path, monkeypatch, capsys):
    from teachkit.messages import catalogue

    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    missing = str(tmp_path / "missing.jpg")
    argv = [a.format(missing=missing, out=str(tmp_path / "out.png")) for a in argv]
    assert main(argv) == 2
    err = one_line_error(capsys.readouterr().err)
    assert err.startswith(catalogue("zh")["cli.error"].split("{")[0]) and missing in err, err


def test_help_after_the_sub_command_speaks_chinese(capsys):
    from teachkit.messages import catalogue

    with pytest.raises(SystemExit):
        main(["prepare", "--help", "--lang", "zh"])
    out = " ".join(capsys.readouterr().out.split())
    assert catalogue("zh")["prepare.help.force"] in out and catalogue("en")["prepare.help.force"] not in out


# ---- every command-line mistake is a message id, worded in the chosen language ------------------------


@pytest.mark.parametrize("argv, msg_id, params", [
    (["patches", "scan", "--shard", "one/two", "--out", "x.npz"], "patches.shard_option", {"shard": "'one/two'"}),
    (["patches", "scan", "--shard", "0/2"], "patches.shard_needs_out", {}),
    (["patches", "merge", "only.npz", "-o", "out.npz"], "patches.merge_two", {}),
    (["gram", "show", "a.png", "b.png", "c.png", "-o", "g.png"], "cli.gram_images", {"n": 3}),
    (["reconstruct", "content", "chelsea", "--layers", ",", "-o", "r.png"], "cli.layers_empty", {}),
])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_command_line_mistakes_are_one_line_in_the_chosen_language(argv, msg_id, params, lang, tmp_path,
                                                                   monkeypatch, capsys):
    from teachkit.messages import catalogue

    monkeypatch.chdir(tmp_path)
    assert main(["--lang", lang, *argv]) == 2
    words = catalogue(lang)
    assert one_line_error(capsys.readouterr().err) == words["cli.error"].format(detail=words[msg_id].format(**params))


def test_a_failed_merge_names_the_file_and_the_reason_in_chinese(tmp_path, capsys):
    from teachkit.messages import catalogue
    from teachkit.patches import scan

    from tests.test_patches import random_images, random_net

    net = random_net(seed=5)
    a = scan(net, random_images(4, 20), layers=["relu1_1"], k=2, image_size=20).save(tmp_path / "a.npz")
    b = scan(net, random_images(4, 20), layers=["relu1_1"], k=3, image_size=20).save(tmp_path / "b.npz")
    assert main(["--lang", "zh", "patches", "merge", str(a), str(b), "-o", str(tmp_path / "ab.npz")]) == 2
    line = one_line_error(capsys.readouterr().err)
    zh = catalogue("zh")
    head = zh["patches.merge_failed"].split("{problem}")[0].format(path=b)
    assert line.startswith(zh["cli.error"].split("{detail}")[0] + head), line
    assert "k" in line and "cannot merge" not in line


def _parsers(parser, path=()):
    """(command path, parser) of a parser and every sub-command under it."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_of_clis_own_commands_is_explained_in_chinese():
    """Every help text of the commands (all but `notebooks` and `exercises`, teachkit/notebooks and
    teachkit/exercises) is Chinese under --lang zh -- argparse's own '-h' and '--version' lines aside."""
    import argparse
    import re

    from teachkit.messages import using_language

    cjk = re.compile(r"[\u3400-\u9fff]")
    with using_language("zh"):
        parser = cli.build_parser()
    english = []
    for path, p in _parsers(parser):
        if path[:1] in (("notebooks",), ("exercises",)):
            continue
        if p.description and not cjk.search(p.description):
            english.append((path, "description"))
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.help in (None, argparse.SUPPRESS):
                continue
            if not cjk.search(action.help):
                english.append((path, action.dest, action.help))
    assert not english, english
    assert sum(1 for _ in _parsers(parser)) > 10


# ---- one rule for output folders: handout and notebooks (issue 26) -----------------------------------


def test_handout_and_notebooks_share_one_rule_for_edited_files_and_a_file_given_as_folder(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.setattr("teachkit.handout.figures", lambda lesson, lang, net=None, cache_dir=None: [])
    out = tmp_path / "handouts"
    assert main(["handout", "--lesson", "2", "-o", str(out)]) == 0
    edited = out / "lesson2_en.html"
    edited.write_text("the teacher's notes", encoding="utf-8")
    capsys.readouterr()
    for argv in (["handout", "--lesson", "2", "-o", str(out)], ["notebooks", str(out)]):
        if argv[0] == "notebooks":
            (out / "lesson3_cost.ipynb").write_text("a student's work", encoding="utf-8")
            edited = out / "lesson3_cost.ipynb"
        assert main(argv) == 2
        line = one_line_error(capsys.readouterr().err)
        assert str(edited) in line and "--force" in line and "Traceback" not in line
    assert (out / "lesson2_en.html").read_text(encoding="utf-8") == "the teacher's notes"
    assert main(["handout", "--lesson", "2", "-o", str(out), "--force"]) == 0
    assert "teacher's notes" not in (out / "lesson2_en.html").read_text(encoding="utf-8")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for argv in (["notebooks", str(a_file)], ["notebooks", str(a_file), "--force"], ["handout", "-o", str(a_file)]):
        capsys.readouterr()
        assert main(argv) == 2
        line = one_line_error(capsys.readouterr().err)
        assert str(a_file) in line and "not a folder" in line and "--force" not in line  # --force cannot help
