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
