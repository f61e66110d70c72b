"""Tests for teachkit.datasets: the embedded sample, folders of images, torchvision on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from teachkit.datasets import (
    ConcatDataset,
    FolderDataset,
    SampleDataset,
    TensorDataset,
    fit_square,
    get_dataset,
)


def save_noise(path, size=(30, 20), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_sample_has_over_1000_equal_crops_and_is_deterministic():
    ds = get_dataset("sample")
    assert isinstance(ds, SampleDataset) and len(ds) >= 1000
    assert ds.name == ds.spec == "sample"
    again = SampleDataset()
    assert again.fingerprint == ds.fingerprint and again.crops == ds.crops
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        index, img, desc = ds[i]
        assert index == i and img.mode == "RGB" and img.size == (128, 128) and desc
        assert ds.square(i, 48).size == (48, 48)
    # The same crop twice gives the same pixels; colour and grey photos are both there.
    assert np.array_equal(np.asarray(ds.square(7, 32)), np.asarray(again.square(7, 32)))
    files = {s[0] for s in ds.sources}
    assert {"skimage:astronaut.png", "skimage:chelsea.png", "matplotlib:grace_hopper.jpg"} <= files
    assert any("whole" in ds.describe(i) for i in range(5)) and "crop 1/5" in ds.describe(len(ds) - 1)


def test_folder_is_recursive_case_insensitive_sorted(tmp_path):
    save_noise(tmp_path / "b.PNG")
    save_noise(tmp_path / "a" / "x.jpeg")
    save_noise(tmp_path / "a" / "deep" / "y.TIFF")
    save_noise(tmp_path / "c.bmp")
    (tmp_path / "readme.md").write_text("not an image")
    ds = get_dataset(str(tmp_path))
    assert isinstance(ds, FolderDataset)
    assert ds.files == ["a/deep/y.TIFF", "a/x.jpeg", "b.PNG", "c.bmp"]
    assert ds.name == tmp_path.name and ds.spec == str(tmp_path.resolve())
    index, img, desc = ds[1]
    assert (index, desc, img.size, img.mode) == (1, "a/x.jpeg", (30, 20), "RGB")
    assert ds.square(1, 16).size == (16, 16)
    assert [i for i, _, _ in ds] == [0, 1, 2, 3]


def test_folder_fingerprint_follows_the_files(tmp_path):
    save_noise(tmp_path / "a.png")
    first = FolderDataset(tmp_path).fingerprint
    assert FolderDataset(tmp_path).fingerprint == first
    save_noise(tmp_path / "b.png")
    second = FolderDataset(tmp_path).fingerprint
    assert second != first
    st = os.stat(tmp_path / "a.png")
    os.utime(tmp_path / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert FolderDataset(tmp_path).fingerprint != second


def test_folder_skips_unreadable_files_with_their_names(tmp_path):
    save_noise(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "words.jpg").write_text("hello")
    (tmp_path / "zero.webp").write_bytes(b"")
    ds = FolderDataset(tmp_path)
    assert ds.verify() == 1
    assert sorted(ds.skipped) == ["cut.png", "words.jpg", "zero.webp"]
    assert ds.verify() == 1 and len(ds.skipped) == 3  # named once


def test_get_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        get_dataset(str(tmp_path / "missing"))
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        get_dataset(str(tmp_path / "file.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        get_dataset(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        get_dataset(f"cifar10:{tmp_path / 'nothing'}")
    with pytest.raises(ValueError):
        get_dataset("")


def test_tensor_and_concat_datasets():
    a = TensorDataset(torch.rand(3, 3, 8, 8), "a")
    b = TensorDataset(torch.rand(2, 3, 8, 8), "b")
    assert a.fingerprint != b.fingerprint and a.spec is None
    both = ConcatDataset([a, b])
    assert len(both) == 5 and both.name == "a+b"
    assert torch.equal(both.load(4), b.load(1))
    assert np.array_equal(np.asarray(both.square(3, 8)), np.asarray(b.square(0, 8)))
    assert both.describe(3) == "b: b #0"
    with pytest.raises(IndexError):
        both[5]


def test_fit_square_keeps_the_centre():
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # blue centre square
    sq = np.asarray(fit_square(img, 10))
    assert sq.shape == (10, 10, 3) and (sq[..., 2] > 200).all()
