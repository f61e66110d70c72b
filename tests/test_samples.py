"""Tests for teachkit.samples: the bundled photos, the painted styles and resolve_image."""

import numpy as np
import pytest
from PIL import Image

from teachkit import images, samples
from teachkit.images import ImageError
from teachkit.samples import list_samples, resolve_image, sample_content, sample_image, sample_style


def gradient(width=40, height=30):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 6 % 256, y * 8 % 256, (x + y) * 3 % 256], axis=-1).astype(np.uint8)


def write(tmp_path, name, img):
    path = tmp_path / name
    img.save(path)
    return path


def test_list_samples():
    names = list_samples()
    assert samples.DEFAULT_CONTENT in names["content"]
    assert samples.DEFAULT_STYLE in names["style"]
    assert {"stained_glass", "swirls", "rings"} <= set(names["style"])
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= set(names["content"])


@pytest.mark.parametrize("name", samples.CONTENT_SAMPLES)
def test_content_samples(name):
    img = sample_content(name)
    assert img.mode == "RGB" and min(img.size) >= 100
    assert max(sample_content(name, size=128).size) == 128
    assert np.array_equal(np.asarray(img), np.asarray(sample_content(name)))


def test_content_samples_are_read_from_the_package(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    samples._read_content_file.cache_clear()
    assert sample_content("chelsea").size == (451, 300)


@pytest.mark.parametrize("name", samples.STYLE_SAMPLES)
def test_style_samples(name):
    img = sample_style(name, size=128)
    assert img.mode == "RGB" and img.size == (128, 128)
    pixels = np.asarray(img)
    assert pixels.std() > 40  # strong texture and contrast, not a flat picture
    assert np.asarray(img.convert("HSV"))[..., 1].mean() > 60  # colourful
    again = sample_style(name, size=128)
    assert again is not img and again.tobytes() == img.tobytes()
    samples._painted_style.cache_clear()
    assert sample_style(name, size=128).tobytes() == img.tobytes()  # fixed seeds
    assert sample_style(name, size=(96, 64)).size == (96, 64)


def test_default_style_size():
    assert sample_style().size == (512, 512)


def test_unknown_sample():
    for get in (sample_content, sample_style, sample_image):
        with pytest.raises(ValueError) as info:
            get("nope")
        assert "nope" in str(info.value) and "chelsea" in str(info.value)


def test_resolve_image(tmp_path):
    assert resolve_image("chelsea").size == (451, 300)
    assert resolve_image("sample:rings", size=64).size == (64, 64)
    assert resolve_image("coffee", size=100).size == (100, 67)
    path = write(tmp_path, "mine.png", Image.fromarray(gradient()))
    assert resolve_image(str(path)).size == (40, 30)
    assert resolve_image(path, size=32).size == (32, 24)
    assert resolve_image(gradient()).size == (40, 30)
    with pytest.raises(ImageError) as info:
        resolve_image(str(tmp_path / "typo.jpg"))
    message = str(info.value)
    assert "typo.jpg" in message and "chelsea" in message and "stained_glass" in message
    with pytest.raises(ImageError, match="unknown sample"):
        resolve_image("sample:typo")


def test_hsv_colours_by_definition():
    # hue 0, 1/3, 2/3 at full saturation and value are red, green, blue; zero saturation is grey v.
    rgb = samples._hsv(np.array([0.0, 1 / 3, 2 / 3, 0.5]), np.array([1.0, 1.0, 1.0, 0.0]), 0.5)
    expected = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(rgb, expected, atol=1e-12)
    assert samples._hsv(0.25, 0.5, np.ones((2, 3))).shape == (2, 3, 3)  # scalars broadcast


def test_package_data_dir():
    assert (samples.package_data_dir("skimage") / "chelsea.png").is_file()
    assert (samples.package_data_dir("matplotlib") / "grace_hopper.jpg").is_file()
    with pytest.raises(FileNotFoundError, match="no_such_package_xyz"):
        samples.package_data_dir("no_such_package_xyz")


def test_bad_style_sizes():
    for size, fragment in ((0, "style width"), ((32, 0), "style height"), (True, "style width"),
                           ((32, 2.5), "style height")):
        with pytest.raises(ValueError, match=fragment):
            sample_style("rings", size)
