"""`teachkit transfer` end to end, at tiny sizes: files written, and bad input reported in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from teachkit.cli import main
from teachkit.samples import sample_content, sample_style

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny images: one thread is fastest (conftest)

FAST = ["--size", "48", "--steps", "3", "--style-layers", "relu1_1,relu2_1", "--layer-weights", "1,0.01",
        "--content-layer", "relu2_1", "--quiet"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    c, s = d / "content.png", d / "style.jpg"
    sample_content("coffee", size=80).save(c)
    sample_style("waves", size=64).save(s)
    return c, s


def run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_transfer_writes_image_log_plot_and_intermediates(images, tmp_path, capsys):
    c, s = images
    out, log, plot, frames = tmp_path / "out.png", tmp_path / "log.json", tmp_path / "cost.png", tmp_path / "frames"
    rc, stdout, _ = run(["transfer", str(c), str(s), "-o", str(out), *FAST, "--size", "64",
                         "--scales", "32,64", "--steps", "4", "--log", str(log), "--plot", str(plot),
                         "--save-every", str(frames), "--preview-every", "2"], capsys)
    assert rc == 0
    assert str(out) in stdout
    img = Image.open(out)
    w, h = Image.open(c).size
    assert img.size == (64, round(h * 64 / w))
    data = json.loads(log.read_text())
    assert data["steps"] == 4 and len(data["history"]) == 4
    for rec in data["history"]:
        for key in ("step", "scale", "size", "elapsed", "content", "style", "style/relu1_1", "style/relu2_1",
                    "tv", "total"):
            assert key in rec and rec[key] is not None, key
    assert data["config"]["scales"] == [32, 64] and data["config"]["content_layer"] == "relu2_1"
    assert Image.open(plot).size[0] > 100
    assert sorted(p.name for p in frames.iterdir()) == ["step_0002.png", "step_0004.png"]


def test_defaults_use_the_bundled_samples(tmp_path, capsys):
    out = tmp_path / "d.png"
    rc, stdout, _ = run(["transfer", "-o", str(out), *FAST], capsys)
    assert rc == 0 and out.is_file()
    assert Image.open(out).size == sample_content(size=48).size  # chelsea, long side 48


def test_several_styles_and_options(images, tmp_path, capsys):
    c, s = images
    out = tmp_path / "m.png"
    rc, _, _ = run(["transfer", str(c), str(s), "rings", "--style-weights", "2,1", "--preserve-color",
                    "--init", "blend", "--optimizer", "adam", "--lr", "0.05", "--tv", "10", "--dtype",
                    "bfloat16", "--pyramid", "2", "-o", str(out), *FAST], capsys)
    assert rc == 0 and out.is_file()


def test_ctrl_c_keeps_the_latest_image(images, tmp_path, capsys, monkeypatch):
    from teachkit import progress

    def interrupt(self, p):
        if p.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.TqdmReporter, "__call__", interrupt)
    c, s = images
    out = tmp_path / "i.png"
    argv = ["transfer", str(c), str(s), "-o", str(out), *[a for a in FAST if a != "--quiet"], "--steps", "50"]
    rc, stdout, _ = run(argv, capsys)
    assert rc == 130
    assert "interrupted after 2 steps" in stdout and out.is_file()


# ---- bad input: one line on stderr, exit 2, before any long work -------------------------------


@pytest.fixture()
def no_transfer(monkeypatch):
    """Fail the test if the long computation starts."""
    import teachkit.transfer

    def boom(*a, **k):
        raise AssertionError("the transfer started before the input was checked")

    monkeypatch.setattr(teachkit.transfer, "transfer", boom)
    monkeypatch.setattr(teachkit.transfer.Engine, "run", boom)  # the CLI runs the engine's plan


def test_missing_file(images, tmp_path, capsys, no_transfer):
    _, s = images
    rc, _, err = run(["transfer", str(tmp_path / "nope.jpg"), str(s), "-o", str(tmp_path / "o.png"), *FAST], capsys)
    assert rc == 2
    line = one_line_error(err)
    assert "nope.jpg" in line and "no such file" in line


def test_corrupt_file(images, tmp_path, capsys, no_transfer):
    c, _ = images
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    rc, _, err = run(["transfer", str(c), str(bad), "-o", str(tmp_path / "o.png"), *FAST], capsys)
    assert rc == 2
    assert "broken.png" in one_line_error(err)


@pytest.mark.parametrize("target", ["a_file/out.png", "out.xyz", "a_dir"])
def test_unwritable_output(images, tmp_path, capsys, no_transfer, target):
    c, s = images
    (tmp_path / "a_file").write_text("I am a file")
    (tmp_path / "a_dir").mkdir()
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / target), *FAST], capsys)
    assert rc == 2
    assert "cannot write" in one_line_error(err)


def test_unwritable_log_and_plot(images, tmp_path, capsys, no_transfer):
    c, s = images
    (tmp_path / "a_file").write_text("x")
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), "--log",
                      str(tmp_path / "a_file" / "log.json"), *FAST], capsys)
    assert rc == 2 and "log.json" in one_line_error(err)
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), "--plot",
                      str(tmp_path / "plot.txt"), *FAST], capsys)
    assert rc == 2 and "plot.txt" in one_line_error(err)


def test_unknown_layer(images, tmp_path, capsys, no_transfer):
    c, s = images
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), *FAST,
                      "--style-layers", "relu1_1,relu7_1", "--layer-weights", "1,1"], capsys)
    assert rc == 2
    assert "relu7_1" in one_line_error(err)


def test_bad_option_values(images, tmp_path, capsys, no_transfer):
    c, s = images
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), *FAST,
                      "--layer-weights", "1,2,3"], capsys)
    assert rc == 2 and "layer weights" in one_line_error(err)
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), *FAST,
                      "--style-weights", "1,2"], capsys)
    assert rc == 2 and "style weights" in one_line_error(err)


# ---- as a real command -------------------------------------------------------------------------


def test_subprocess_end_to_end(images, tmp_path):
    c, s = images
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = tmp_path / "sub.png"
    ok = subprocess.run([sys.executable, "-m", "teachkit.cli", "transfer", str(c), str(s), "-o", str(out), *FAST],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and "wrote" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "teachkit.cli", "transfer", str(tmp_path / "missing.png"),
                          "-o", str(out), *FAST], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert "missing.png" in one_line_error(bad.stderr)


def test_preset_quick_and_the_weights_used(images, tmp_path, capsys):
    c, s = images
    out, log = tmp_path / "q.png", tmp_path / "q.json"
    rc, stdout, _ = run(["transfer", str(c), str(s), "-o", str(out), "--preset", "quick", "--size", "64",
                         "--quiet", "--log", str(log)], capsys)
    assert rc == 0
    data = json.loads(log.read_text())
    # the preset's recipe (at the size asked for)
    assert data["config"]["init"] == "blend" and data["config"]["scales"] == [64] and data["steps"] == 60
    # the lambda[l] actually used (auto normalisation) are printed and logged
    line = [l for l in stdout.splitlines() if l.startswith("weights used:")][0]
    for layer, lam in data["weights"]["layer_weights"].items():
        assert f"{layer} {lam:.3g}" in line


def test_slow_bfloat16_is_one_warning_line_and_falls_back(images, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # a CPU without bfloat16
    c, s = images
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "b.png"), *FAST, "--dtype", "bfloat16"],
                     capsys)
    assert rc == 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("teachkit: warning:") and "slower" in lines[0]


# ---- output collisions and system errors (issue 17): one line, exit 2, nothing destroyed --------


def test_save_every_never_overwrites_an_input_or_an_output(images, tmp_path, capsys, no_transfer):
    c, s = images
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = frames / "step_0002.png"  # the name the image of step 2 would get
    photo.write_bytes(c.read_bytes())
    before = photo.read_bytes()
    for argv in (
        [str(photo), str(s), "-o", str(tmp_path / "o.png")],  # the content photo
        [str(c), str(tmp_path / "x" / ".." / "frames" / "step_0002.png"), "-o", str(tmp_path / "o.png")],  # a style
        [str(c), str(s), "-o", str(frames / "step_0003.png")],  # the result itself (3 steps: 0..3)
        [str(c), str(s), "-o", str(tmp_path / "o.png"), "--plot", str(frames / "step_0000.png")],
    ):
        (tmp_path / "x").mkdir(exist_ok=True)
        rc, _, err = run(["transfer", *argv, "--save-every", str(frames), "--preview-every", "2", *FAST], capsys)
        assert rc == 2, argv
        line = one_line_error(err)
        assert "--save-every" in line and "step_000" in line, line
    assert photo.read_bytes() == before
    # a step the run never reaches (3 steps) and another name in the folder are no collision: the work starts
    for name in ("step_0009.png", "photo.png"):
        (frames / name).write_bytes(before)
        with pytest.raises(AssertionError, match="transfer started"):
            main(["transfer", str(frames / name), str(s), "-o", str(tmp_path / "o.png"), "--save-every", str(frames),
                  "--preview-every", "1", *FAST])


def test_plot_or_log_on_the_result_or_an_input_is_refused(images, tmp_path, capsys, no_transfer):
    c, s = images
    out = tmp_path / "out.png"
    (tmp_path / "sub").mkdir()
    for plot in (out, tmp_path / "sub" / ".." / "out.png"):
        rc, _, err = run(["transfer", str(c), str(s), "-o", str(out), "--plot", str(plot), *FAST], capsys)
        assert rc == 2
        line = one_line_error(err)
        assert "-o" in line and "--plot" in line and "out.png" in line
    out.write_bytes(b"an earlier result")  # an existing file: the same through a link
    (tmp_path / "link.png").symlink_to(out)
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(out), "--plot", str(tmp_path / "link.png"), *FAST],
                     capsys)
    assert rc == 2 and "--plot" in one_line_error(err)
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o2.png"), "--plot", str(c), *FAST], capsys)
    assert rc == 2 and "input" in one_line_error(err)
    assert out.read_bytes() == b"an earlier result"


@pytest.fixture()
def full_disk(monkeypatch):
    """Files of the given suffix are written to /dev/full (the kernel answers ENOSPC, as a full disk does)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    import tempfile

    import teachkit.fileio

    real = tempfile.mkstemp
    suffixes = []

    def mkstemp(*a, **k):
        if any(k.get("suffix", "").startswith(sfx) for sfx in suffixes):
            fd = os.open("/dev/full", os.O_WRONLY)
            return fd, os.path.join(k["dir"], ".tmp-never-created" + k["suffix"])
        return real(*a, **k)

    monkeypatch.setattr(teachkit.fileio.tempfile, "mkstemp", mkstemp)
    return suffixes


def test_a_full_save_every_folder_is_one_warning_and_the_run_goes_on(images, tmp_path, capsys, full_disk):
    """The --save-every folder fills up (ENOSPC) at the first intermediate image: one warning, and the
    result is still written with -o on a disk with space (here: a JPEG, while PNGs hit the full disk)."""
    c, s = images
    full_disk.append(".png")
    out, frames = tmp_path / "out.jpg", tmp_path / "frames"
    rc, stdout, err = run(["transfer", str(c), str(s), "-o", str(out), *FAST, "--steps", "4",
                           "--save-every", str(frames), "--preview-every", "1"], capsys)
    assert rc == 0 and str(out) in stdout and Image.open(out).size[0] == 48, err
    line = one_line_error(err)
    assert "warning" in line and "the disk is full" in line and str(frames / "step_0001.png") in line
    assert list(frames.iterdir()) == []


@pytest.mark.parametrize("lang,words", [("en", "the disk is full"), ("zh", "磁盘已满")])
def test_disk_full_while_writing_the_log_is_one_line(images, tmp_path, capsys, full_disk, lang, words):
    c, s = images
    full_disk.append(".json")
    out, log = tmp_path / "out.png", tmp_path / "log.json"
    rc, _, err = run(["--lang", lang, "transfer", str(c), str(s), "-o", str(out), "--log", str(log), *FAST], capsys)
    assert rc == 2
    line = one_line_error(err)
    assert str(log) in line and words in line
    assert out.is_file() and not log.exists()  # the image was written before; no half log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # and no temporary file


def test_no_permission_when_the_plot_is_renamed_into_place(images, tmp_path, capsys, monkeypatch):
    import errno

    import teachkit.fileio

    c, s = images
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".svg"):
            raise PermissionError(errno.EACCES, "Permission denied", src, dst)
        return real(src, dst)

    monkeypatch.setattr(teachkit.fileio.os, "replace", replace)
    plot = tmp_path / "cost.svg"
    rc, _, err = run(["transfer", str(c), str(s), "-o", str(tmp_path / "o.png"), "--plot", str(plot), *FAST], capsys)
    assert rc == 2
    line = one_line_error(err)
    assert str(plot) in line and "permission denied" in line and ".tmp" not in line


def test_cache_setting_that_names_a_file_is_one_line(tmp_path, capsys, monkeypatch, vgg19):
    import teachkit.prepare

    not_a_folder = tmp_path / "cache.txt"
    not_a_folder.write_text("a file, not a folder")
    monkeypatch.setenv("TEACHKIT_CACHE", str(not_a_folder))
    monkeypatch.setattr(teachkit.prepare, "_net", lambda *a, **k: vgg19, raising=False)  # (saves a load)
    rc, _, err = run(["prepare", "--only", "content", "--fast"], capsys)
    assert rc == 2
    line = one_line_error(err.replace("content: chelsea", "").split("\n", 1)[-1])
    assert str(not_a_folder) in line and "TEACHKIT_CACHE" in line and "not a folder" in line
    assert not_a_folder.read_text() == "a file, not a folder"


def test_disk_full_during_prepare_is_one_line(tmp_path, capsys, monkeypatch, full_disk, vgg19):
    import teachkit.prepare

    monkeypatch.setattr(teachkit.prepare, "_net", lambda *a, **k: vgg19, raising=False)  # (saves a load)
    full_disk.append(".png")
    rc, _, err = run(["prepare", "--only", "content", "--fast", "--cache", str(tmp_path / "cache")], capsys)
    assert rc == 2
    lines = [l for l in err.splitlines() if "error" in l]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(tmp_path / "cache") in lines[0] and "the disk is full" in lines[0]
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no half-written file


def test_what_transfer_prints_speaks_the_chosen_language(images, tmp_path, capsys):
    """The result lines used to be English f-strings whatever --lang said."""
    from teachkit.messages import catalogue

    c, s = images
    out, log, plot = tmp_path / "zh.png", tmp_path / "zh.json", tmp_path / "zh_plot.png"
    rc, stdout, _ = run(["--lang", "zh", "transfer", str(c), str(s), "-o", str(out), "--log", str(log),
                         "--plot", str(plot), *FAST], capsys)
    assert rc == 0
    zh = catalogue("zh")
    data = json.loads(log.read_text())
    w = data["weights"]
    lams = ", ".join(f"{l} {v:.3g}" for l, v in w["layer_weights"].items())
    lines = stdout.splitlines()
    assert zh["engine.weights_used"].format(alpha=w["alpha"], beta=w["beta"], lams=lams, tv=w["tv_weight"]) in lines
    assert zh["cli.transfer.wrote_log"].format(path=log) in lines
    assert zh["cli.transfer.wrote_plot"].format(path=plot) in lines
    head = zh["cli.transfer.wrote"].split("（")[0].format(path=out)
    assert lines[0].startswith(head + "（48×") and "weights used" not in stdout
