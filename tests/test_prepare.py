"""teachkit.prepare: what `teachkit prepare` builds before class, and how the app reads it back."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from teachkit import prepare


def test_frame_steps_are_denser_at_the_start():
    steps = prepare.frame_steps(60, 10)
    assert steps[0] == 1 and steps[-1] == 60
    assert steps == sorted(set(steps)) and len(steps) <= 10
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[0] <= gaps[-1]  # the first frames are closer together than the last ones
    assert prepare.frame_steps(1) == [1]
    assert prepare.frame_steps(0) == []


def test_lesson2_start_is_the_engines_own_start_at_its_first_scale(net):
    """What lesson 2 shows as "G at the start" (lessons/resources.py: real_start, which calls the engine's
    teachkit.transfer.initial_image): init='blend', G0 = (1 - w) C + w * white noise at the engine's
    FIRST scale (the 'quick' preset at 256 px starts at 128 px) -- checked against that formula and
    against the image the engine itself returns when stopped before its first step."""
    import threading

    pytest.importorskip("streamlit")
    from teachkit.images import resize_long_side, to_pil, to_tensor
    from teachkit.lessons.resources import picture, real_start
    from teachkit.transfer import TransferConfig, transfer, white_noise

    config = TransferConfig.preset("quick", init="blend", init_noise=0.25, seed=3, dtype="float32")
    content = picture("rocket", 256)
    got = to_tensor(real_start("rocket", 256, config))
    c = to_tensor(resize_long_side(content, 128))
    assert got.shape == c.shape  # 128 px, not the 256 px of the finished image
    expected = to_tensor(to_pil(0.75 * c + 0.25 * white_noise(c.shape, 3)))
    assert torch.allclose(got, expected, atol=1.5 / 255)
    stop = threading.Event()
    stop.set()  # stopped before its first step: the engine returns its own G0
    engine_start = transfer(content, [picture("waves", 64)], config, stop=stop, backbone=net).tensor
    assert torch.allclose(got, engine_start, atol=1.5 / 255)
    noise = to_tensor(real_start("rocket", 256, dataclasses.replace(config, init="noise")))
    assert torch.allclose(noise, to_tensor(to_pil(white_noise(c.shape, 3))), atol=1.5 / 255)


def test_a_prepared_transfer_is_read_back_with_its_frames(net, tmp_path, one_thread):
    item = prepare.prepare_transfer(net, "rocket", "waves", prepare.FAST, tmp_path)
    again = prepare.load("gallery", "rocket", "waves", cache_dir=tmp_path)
    assert again is not None and again.labels == item.labels
    assert again.labels[0] == 0 and again.labels[-1] == again.meta["steps"] == prepare.FAST.transfer_steps
    assert again.labels == sorted(again.labels)
    assert len(again.images) == len(again.meta["images"]) >= 3
    assert again.final.size[0] == prepare.FAST.transfer_size or again.final.size[1] == prepare.FAST.transfer_size
    # a second call finds it and does not run again
    folder = tmp_path / "prepared" / net.name / "gallery-rocket-waves"
    before = (folder / "meta.json").stat().st_mtime_ns
    prepare.prepare_transfer(net, "rocket", "waves", prepare.FAST, tmp_path)
    assert (folder / "meta.json").stat().st_mtime_ns == before


def test_unfinished_or_damaged_items_count_as_not_prepared(tmp_path):
    folder = tmp_path / "prepared" / "vgg19" / "texture-waves"
    folder.mkdir(parents=True)
    assert prepare.load("texture", "waves", cache_dir=tmp_path) is None  # no meta.json: unfinished
    (folder / "meta.json").write_text("{not json")
    assert prepare.load("texture", "waves", cache_dir=tmp_path) is None
    (folder / "meta.json").write_text(json.dumps({"images": [{"file": "missing.png", "label": "relu1_1"}]}))
    assert prepare.load("texture", "waves", cache_dir=tmp_path) is None
    assert prepare.load("content", "nothing", cache_dir=tmp_path) is None


def test_cli_prepares_the_reconstructions(tmp_path, one_thread, capsys):
    from teachkit.cli import main

    assert main(["prepare", "--fast", "--only", "content", "--cache", str(tmp_path)]) == 0
    item = prepare.load("content", "chelsea", cache_dir=tmp_path)
    assert item is not None and item.labels == list(prepare.CONTENT_LAYERS)
    assert all(0 <= d["distance"] for d in item.meta["images"])
    assert "prepared in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["prepare", "--only", "pictures"])
