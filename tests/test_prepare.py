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


# ---- teachkit prepare --photos: lesson 1's atlas of the class's own photos ----


def make_photos(folder, n: int, broken=("broken.jpg",)):
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(folder.name))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    for name in broken:
        (folder / name).write_text("not a photo")
    return folder


def test_prepare_photos_stops_on_ctrl_c_and_goes_on_to_the_atlas_of_one_run(tmp_path, vgg19, one_thread, capsys,
                                                                              monkeypatch):
    """From a folder outside the checkout: the first Ctrl-C stops the scan after a batch of 16 and keeps
    it; the same command goes on from there, and the atlas equals one uninterrupted scan, array by array."""
    import signal

    import numpy as np

    from teachkit.cli import main
    from teachkit.features import DEFAULT_STYLE_LAYERS
    from teachkit.patches import get_atlas, scan
    from teachkit.progress import TqdmReporter

    folder = make_photos(tmp_path / "class photos", 20)
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    command = ["prepare", "--only", "atlas", "--fast", "--photos", str(folder), "--cache", str(cache)]
    draw = TqdmReporter.__call__

    def ctrl_c_after_a_batch(self, p):
        draw(self, p)
        if p.step >= 16:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TqdmReporter, "__call__", ctrl_c_after_a_batch)
    assert main(command) == 130
    assert "stopped after 17 of 21 photos" in capsys.readouterr().err  # broken.jpg + 16 photos
    assert prepare.prepared_photos(cache_dir=cache) is None and list((cache / "atlases").glob("partial_*.npz"))
    monkeypatch.setattr(TqdmReporter, "__call__", draw)
    assert main(command) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "unreadable" in line] == ["skipped 1 unreadable image(s): broken.jpg"]
    assert "20 photos of" in out and prepare.prepared_photos(cache_dir=cache) == str(folder.resolve())
    assert not list((cache / "atlases").glob("partial_*.npz"))
    size = prepare.FAST.atlas_size
    resumed = get_atlas(str(folder), vgg19, DEFAULT_STYLE_LAYERS, k=9, image_size=size, cache_dir=cache / "atlases")
    assert resumed.path.parent == cache / "atlases"  # the one the command made, not a new scan
    whole = scan(vgg19, str(folder), DEFAULT_STYLE_LAYERS, k=9, image_size=size)
    assert resumed.complete and resumed.n_images == whole.n_images == 20 and resumed.meta["skipped"] == ["broken.jpg"]
    for layer in whole.layers:
        for field in ("values", "images", "ys", "xs", "sources"):
            np.testing.assert_array_equal(getattr(resumed, field)[layer], getattr(whole, field)[layer])


def test_prepare_photos_refuses_a_bad_folder_in_one_line_and_keeps_what_was_prepared(tmp_path, one_thread, capsys,
                                                                                     monkeypatch):
    import os

    from teachkit.cli import main

    good = make_photos(tmp_path / "good", 3, broken=())
    cache = tmp_path / "cache"
    command = ["prepare", "--only", "atlas", "--fast", "--cache", str(cache), "--photos"]
    assert main(command + [str(good)]) == 0
    kept = sorted((cache / "atlases").glob("*.npz"))
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    locked = make_photos(tmp_path / "locked", 2, broken=())
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": (_ for _ in ()).throw(PermissionError(
        13, "Permission denied", os.fspath(path))) if os.fspath(path) == str(locked) else real(path))
    for folder, extra, words in ((tmp_path / "empty", [], "no images in the folder"),
                                 (tmp_path / "missing", [], "does not exist"),
                                 (locked, [], "cannot read the folder"),
                                 (make_photos(tmp_path / "huge", 4, broken=()), ["--max-photos", "3"], "more than 3 photos"),
                                 (make_photos(tmp_path / "junk", 0, ("a.jpg", "b.png")), [], "none of the 2 image files")):
        assert main(command + [str(folder), *extra]) == 2, folder
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1 and words in errors[0] and folder.name in errors[0], errors
        assert prepare.prepared_photos(cache_dir=cache) == str(good.resolve())  # lesson 1 still shows 'good'
        assert all(path.exists() for path in kept)


def test_lesson1_shows_the_prepared_photos_by_default_and_names_their_folder(tmp_path, one_thread, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from teachkit.cli import main
    from teachkit.lessons import jobs
    from teachkit.lessons.settings import atlas_default_dataset

    folder = make_photos(tmp_path / "our trip", 4, broken=())
    for key, value in {"TEACHKIT_CACHE": str(tmp_path / "cache"), "TEACHKIT_FAST": "1", "TEACHKIT_DEMO_SIZE": "32",
                       "TEACHKIT_ATLAS_SIZE": str(prepare.FAST.atlas_size), "TEACHKIT_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TEACHKIT_ATLAS_DATASET", raising=False)
    assert atlas_default_dataset() == "sample"
    assert main(["prepare", "--only", "atlas", "--fast", "--photos", str(folder)]) == 0
    assert atlas_default_dataset() == str(folder.resolve())
    monkeypatch.setattr(jobs, "_BUILDERS", type(jobs._BUILDERS)())
    at = AppTest.from_file(str(jobs.Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    shown = " ".join(c.value for c in at.caption)
    assert "Your own photos: 4 photos of the folder “our trip”" in shown and "at most 1 from any one photo" in shown
