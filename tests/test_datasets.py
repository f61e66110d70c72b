"""Tests for teachkit.datasets: the embedded sample, folders of images, torchvision on disk."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from teachkit.datasets import (
    ConcatDataset,
    FolderDataset,
    FolderRefused,
    SampleDataset,
    TensorDataset,
    TorchvisionDataset,
    fit_square,
    get_dataset,
    resolve_dataset_folder,
)


def read_all(ds) -> int:
    """Read every image now: the number of readable ones (``ds.skipped`` names the rest)."""
    return sum(1 for _ in ds.items())


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
    # a figure's title words a crop in its own language (lesson 1's map in Chinese read "crop 3 at (x=...)")
    zh = ds.description(len(ds) - 1).text("zh")
    assert "crop" not in zh and "1/5" in zh and re.search(r"[\u4e00-\u9fff]", zh)
    assert ds.description(len(ds) - 1).text("en") == ds.describe(len(ds) - 1)


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
    assert read_all(ds) == 1
    assert sorted(ds.skipped) == ["cut.png", "words.jpg", "zero.webp"]
    assert read_all(ds) == 1 and len(ds.skipped) == 3  # named once


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


def test_every_image_names_the_photo_it_was_cut_from(tmp_path):
    ds = SampleDataset()
    photos = [ds.source(i) for i in range(len(ds))]
    assert photos == sorted(photos) and set(photos) == set(range(len(ds.sources)))  # one run of crops per photo
    for i in (0, 400, len(ds) - 1):  # the crop's own description names that photo's file
        assert ds.sources[photos[i]][0].split(":", 1)[1] in ds.describe(i)
    assert len(ds.sources) == 20 and "skimage:clock_motion.png" in {s[0] for s in ds.sources}
    save_noise(tmp_path / "a.png")
    save_noise(tmp_path / "b.png")
    folder = FolderDataset(tmp_path)  # each file its own photo
    grouped = TensorDataset(torch.zeros(3, 3, 8, 8), sources=[0, 0, 2])
    both = ConcatDataset([folder, grouped])
    assert [both.source(i) for i in range(5)] == [0, 1, 2, 2, 4]
    assert grouped.fingerprint != TensorDataset(torch.zeros(3, 3, 8, 8)).fingerprint
    with pytest.raises(ValueError) as err:
        TensorDataset(torch.zeros(2, 3, 8, 8), sources=[0, 5])
    assert err.value.msg_id == "dataset.tensor_sources"


def test_a_folder_that_cannot_be_read_is_named_in_one_message(tmp_path, monkeypatch):
    save_noise(tmp_path / "locked" / "a.png")
    real = os.scandir

    def scandir(path="."):  # what a folder without read permission gives (root reads any, so fake it)
        if os.fspath(path) == str(tmp_path / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ValueError) as err:
        FolderDataset(tmp_path / "locked")
    assert err.value.msg_id == "dataset.unreadable_folder" and "locked" in str(err.value)
    assert "Permission denied" in str(err.value)


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


# ---------------------------------------------------------------- torchvision datasets on disk


def write_idx(path, array: np.ndarray):
    """An MNIST-style IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim; then each size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_dataset_reads_an_on_disk_mnist_without_download(tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network access"))
    rng = np.random.default_rng(5)
    test_images = rng.integers(0, 256, (3, 20, 20), dtype=np.uint8)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.array([7, 2, 1]))
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (2, 20, 20), dtype=np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.array([5, 0]))

    ds = get_dataset(f"mnist:{tmp_path}")
    assert isinstance(ds, TorchvisionDataset)
    assert len(ds) == 3 and ds.name == "mnist" and ds.spec == f"mnist:{tmp_path.resolve()}"
    for i in range(3):
        index, img, desc = ds[i]
        # Grey digits become RGB with three equal channels holding exactly the stored bytes.
        assert (index, desc, img.mode, img.size) == (i, f"mnist #{i}", "RGB", (20, 20))
        assert np.array_equal(np.asarray(img), np.repeat(test_images[i][:, :, None], 3, axis=2))
    again = get_dataset(ds.spec)
    assert again.fingerprint == ds.fingerprint
    train = TorchvisionDataset("mnist", root=tmp_path, split="train")
    assert len(train) == 2 and train.name == "mnist-train" and train.fingerprint != ds.fingerprint
    assert train.spec.endswith(":train") and len(get_dataset(train.spec)) == 2
    with pytest.raises(ValueError, match="splits"):
        TorchvisionDataset("mnist", root=tmp_path, split="valid")
    with pytest.raises(ValueError, match="unknown torchvision dataset"):
        TorchvisionDataset("imagenet", root=tmp_path)


# ---------------------------------------------------------------- untrusted folder names (served app)


@pytest.fixture()
def tree(tmp_path):
    """root/ with photos/ (2 images), a file, links out of root and inside it; outside/ holds a secret."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    save_noise(root / "photos" / "a.png")
    save_noise(root / "photos" / "sub" / "b.png", seed=1)
    (root / "notes.txt").write_text("x")
    save_noise(outside / "secret.png", seed=2)
    save_noise(outside / "deep" / "secret2.png", seed=3)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "photos" / "linked_dir").symlink_to(outside / "deep", target_is_directory=True)
    (root / "photos" / "linked.png").symlink_to(outside / "secret.png")
    (root / "photos" / "inside_link.png").symlink_to(root / "photos" / "a.png")
    (root / "alias").symlink_to(root / "photos", target_is_directory=True)
    return root, outside


def test_resolve_dataset_folder_accepts_only_folders_inside_the_root(tree):
    root, outside = tree
    photos = (root / "photos").resolve()
    assert resolve_dataset_folder("photos", root) == photos
    for same in ("photos/", "./photos", "photos/sub/..", str(root / "photos"), str(root / "photos") + "/",
                 "  photos  ", "alias"):
        assert resolve_dataset_folder(same, root) == photos, same
    assert str(resolve_dataset_folder(str(root / "photos"), root)) == str(resolve_dataset_folder("photos/", root))
    assert resolve_dataset_folder(".", root) == root.resolve()

    messages = set()
    for bad in ("/", "/etc", "..", "../outside", str(outside), "escape", "escape/deep", "notes.txt",
                "missing", "photos/a.png", "", "   ", "photos/\0x", "x" * 5000):
        with pytest.raises(FolderRefused) as info:
            resolve_dataset_folder(bad, root)
        messages.add(str(info.value))
    assert len(messages) == 1  # one neutral message: nothing tells a file from a missing path
    (message,) = messages
    assert str(root) not in message and "outside" not in message
    with pytest.raises(FileNotFoundError):
        resolve_dataset_folder("photos", root / "no_such_root")


def test_folder_scan_does_not_follow_links_out_of_the_root(tree):
    root, _ = tree
    ds = FolderDataset(root / "photos")
    assert ds.files == ["a.png", "inside_link.png", "sub/b.png"]
    ds = FolderDataset(root)  # 'escape' (a linked folder) is not entered either
    assert ds.files == ["photos/a.png", "photos/inside_link.png", "photos/sub/b.png"]


def test_folder_refuses_a_file_swapped_for_a_link_out_after_listing(tree):
    from teachkit.images import ImageError

    root, outside = tree
    ds = FolderDataset(root / "photos")
    (root / "photos" / "a.png").unlink()
    (root / "photos" / "a.png").symlink_to(outside / "secret.png")
    with pytest.raises(ImageError, match="outside the folder"):
        ds.load(0)


def test_folder_caps_files_and_names_the_folder_by_its_label(tmp_path):
    from teachkit.datasets import DatasetError

    root = tmp_path / "srv" / "data"
    for i in range(6):
        save_noise(root / "class" / f"{i}.png", seed=i)
    assert len(FolderDataset(root / "class", max_files=6)) == 6  # at the cap: fine
    with pytest.raises(DatasetError) as err:
        FolderDataset(root / "class", max_files=5, label="class")
    assert err.value.msg_id == "dataset.too_many_files" and str(tmp_path) not in str(err.value)
    assert "'class'" in str(err.value) and "5" in str(err.value) and "5" in err.value.text("zh")
    # many entries that are not images stop the walk too (a visitor's '.' must not walk a disk)
    for i in range(1100):
        (root / "junk" / "deep").mkdir(parents=True, exist_ok=True)
        (root / "junk" / "deep" / f"{i}.txt").write_bytes(b"")
    with pytest.raises(DatasetError, match="more than 5"):
        FolderDataset(root / "junk", max_files=5, label="junk")
    # the empty-folder error names the folder as the caller labels it, never the server path
    (root / "empty").mkdir()
    with pytest.raises(DatasetError) as err:
        get_dataset(str(root / "empty"), label="empty")
    assert err.value.msg_id == "dataset.no_images" and str(tmp_path) not in str(err.value)
    assert str(tmp_path) not in err.value.text("zh") and "empty" in err.value.text("zh")


# ---- errors are message ids, worded in the reader's language ------------------------------------


def _zh(msg_id: str, **params) -> str:
    from teachkit.messages import catalogue

    return catalogue("zh")[msg_id].format(**params)


def test_dataset_errors_are_ids_that_speak_chinese(tree, tmp_path):
    from teachkit.messages import TeachkitError

    root, _ = tree
    with pytest.raises(FolderRefused) as info:  # the neutral refusal: still a FolderRefused for the app
        resolve_dataset_folder("../outside", root)
    assert isinstance(info.value, TeachkitError) and info.value.text("zh") == _zh("dataset.folder_refused")
    a_file = tmp_path / "root.txt"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        resolve_dataset_folder("photos", a_file)
    assert info.value.text("zh") == _zh("dataset.root_not_folder", root=str(a_file))
    ds = TensorDataset(torch.zeros(2, 3, 8, 8), name="two")
    with pytest.raises(IndexError) as info:
        ds[5]
    assert info.value.text("zh") == _zh("dataset.index_range", index=5, name="two", n=2)
    with pytest.raises(ValueError) as info:
        TensorDataset(torch.zeros(2, 1, 8, 8))
    assert info.value.text("zh") == _zh("dataset.tensor_shape", shape=(2, 1, 8, 8))
    with pytest.raises(ValueError) as info:
        ConcatDataset([])
    assert info.value.text("zh") == _zh("dataset.concat_empty")
