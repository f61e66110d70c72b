"""Tests for teachkit.images: loading, checking, converting and saving."""

import io
import os
import stat
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from teachkit.images import (
    ImageError,
    check_upload,
    check_output_path,
    load_image,
    resize_long_side,
    resize_to,
    save_image,
    to_pil,
    to_tensor,
)
from teachkit.messages import catalogue

# ---------------------------------------------------------------- helpers


def gradient(width=40, height=30):
    """A small RGB image with distinct pixels (uint8 array, HxWx3)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 6 % 256, y * 8 % 256, (x + y) * 3 % 256], axis=-1).astype(np.uint8)


def write(tmp_path, name, img, **save_args):
    path = tmp_path / name
    img.save(path, **save_args)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width, height) -> bytes:
    """A tiny PNG file whose header claims width x height (no real pixels)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b""))


def expect_error(source, fragment, **kwargs):
    """load_image(source) must raise ImageError mentioning `fragment`."""
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    err = info.value
    assert fragment in str(err)
    # the same error in Chinese: the catalogue's sentence around the same source, never the English
    zh = err.text("zh")
    assert err.source in zh and zh != str(err)
    assert zh == err.problem.text("zh").join(catalogue("zh")[err.msg_id].split("{problem}")).replace(
        "{source}", err.source)
    return str(err)


# ---------------------------------------------------------------- source kinds


def test_every_source_kind_gives_the_same_rgb_image(tmp_path):
    pixels = gradient()
    path = write(tmp_path, "g.png", Image.fromarray(pixels))
    data = path.read_bytes()
    sources = [
        str(path), path, data, bytearray(data), io.BytesIO(data), open(path, "rb"),
        Image.fromarray(pixels), Image.open(path), pixels,
        torch.from_numpy(pixels).permute(2, 0, 1).float() / 255,
        torch.from_numpy(pixels).permute(2, 0, 1).float().unsqueeze(0) / 255,
    ]
    for source in sources:
        img = load_image(source)
        assert img.mode == "RGB" and img.size == (40, 30), type(source)
        assert np.array_equal(np.asarray(img), pixels), type(source)
    sources[5].close()


def test_non_seekable_file_object(tmp_path):
    data = write(tmp_path, "g.png", Image.fromarray(gradient())).read_bytes()

    class Pipe:
        def __init__(self, data):
            self.data = data

        def read(self, n=-1):
            out, self.data = self.data, b""
            return out

        def seekable(self):
            return False

    assert load_image(Pipe(data)).size == (40, 30)


def test_array_kinds():
    gray = np.arange(32 * 20, dtype=np.uint8).reshape(20, 32)
    assert np.array_equal(np.asarray(load_image(gray))[..., 1], gray)
    assert load_image(gray[..., None]).size == (32, 20)

    mask = np.zeros((20, 20), bool)
    mask[5, 5] = True
    out = np.asarray(load_image(mask))
    assert out[5, 5].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]

    floats = np.full((20, 20, 3), 0.5)
    assert np.asarray(load_image(floats))[0, 0].tolist() == [128, 128, 128]

    wide = np.zeros((20, 20), np.uint16)
    wide[0, 0], wide[0, 1] = 65535, 32768
    out = np.asarray(load_image(wide))
    assert out[0, 0, 0] == 255 and abs(int(out[0, 1, 0]) - 128) <= 1

    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black -> white
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [255, 255, 255]


def test_bad_arrays_and_tensors():
    expect_error(np.full((20, 20), 255.0), "[0, 1]")
    expect_error(np.full((20, 20), np.nan), "NaN")
    expect_error(np.zeros((3, 20, 20)), "channels-first")
    expect_error(np.zeros((20, 20, 5)), "shape")
    expect_error(np.zeros((0, 20, 3), np.uint8), "zero size")
    expect_error(torch.zeros(2, 3, 20, 20), "shape")
    expect_error(torch.full((3, 20, 20), 2.0), "[0, 1]")
    expect_error(object(), "don't know")
    # The message names the source, or the name the caller gave.
    assert "<array>" in expect_error(np.zeros((4, 4), np.uint8), "too small")
    assert "'upload.png'" in expect_error(np.zeros((4, 4), np.uint8), "too small", name="upload.png")


# ---------------------------------------------------------------- colour modes


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(gradient(40, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = write(tmp_path, "phone.jpg", img, exif=exif.tobytes())
    assert Image.open(path).size == (40, 30)
    assert load_image(path).size == (30, 40)


def test_grayscale_and_palette(tmp_path):
    gray = Image.fromarray(np.full((20, 24), 77, np.uint8), "L")
    out = load_image(write(tmp_path, "gray.png", gray))
    assert out.mode == "RGB" and np.asarray(out)[0, 0].tolist() == [77, 77, 77]

    palette = Image.fromarray(gradient()).quantize(16)
    assert palette.mode == "P"
    out = load_image(write(tmp_path, "pal.png", palette))
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(palette.convert("RGB")))


def test_transparency_becomes_white(tmp_path):
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    out = np.asarray(load_image(write(tmp_path, "rgba.png", rgba)))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert abs(int(out[0, 1, 0]) - 127) <= 1
    assert out[5, 5].tolist() == [255, 0, 0]

    la = Image.new("LA", (20, 20), (0, 255))
    la.putpixel((0, 0), (0, 0))
    out = np.asarray(load_image(write(tmp_path, "la.png", la)))
    assert out[0, 0].tolist() == [255, 255, 255] and out[5, 5].tolist() == [0, 0, 0]

    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    out = np.asarray(load_image(write(tmp_path, "pt.png", pal, transparency=0)))
    assert out[0, 0].tolist() == [255, 255, 255] and out[5, 5].tolist() == [0, 0, 255]


def test_transparency_is_painted_over_white_by_the_formula():
    # out = a * colour + (1 - a) * 255, rounded: checked on random pixels against the formula itself.
    rgba = np.random.default_rng(4).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    out = np.asarray(load_image(Image.fromarray(rgba, "RGBA"))).astype(float)
    alpha = rgba[..., 3:] / 255.0
    assert np.abs(out - (rgba[..., :3] * alpha + 255.0 * (1 - alpha))).max() <= 0.5 + 1e-9


def test_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red ink mix
    out = np.asarray(load_image(write(tmp_path, "cmyk.tif", cmyk)))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert load_image(write(tmp_path, "cmyk.jpg", cmyk)).mode == "RGB"


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.zeros((20, 20), np.uint16)
    values[0, :3] = [65535, 32768, 257]
    src = Image.fromarray(values)
    assert src.mode == "I;16"
    path = write(tmp_path, "deep.png", src)
    out = np.asarray(load_image(path))[..., 0]
    assert out[0, 0] == 255 and abs(int(out[0, 1]) - 128) <= 1 and out[0, 2] == 1
    # The same through mode "I" (32-bit int), as older Pillow versions open it.
    out = np.asarray(load_image(Image.open(path).convert("I")))[..., 0]
    assert out[0, 0] == 255 and abs(int(out[0, 1]) - 128) <= 1


def test_full_range_int32_tiff_is_scaled_by_its_own_range_not_white(tmp_path):
    """A 32-bit TIFF using the whole int32 range came out all white (clipped at 65535): it is stretched
    from its own minimum to its maximum; one inside 0..65535 keeps the 16-bit scale."""
    ramp = np.linspace(-(2**31), 2**31 - 1, 64).round().astype(np.int64).clip(-(2**31), 2**31 - 1)
    values = np.tile(ramp.astype(np.int32), (20, 1))
    path = write(tmp_path, "wide.tif", Image.fromarray(values))
    assert Image.open(path).mode == "I"
    out = np.asarray(load_image(path))[..., 0].astype(int)
    expected = np.rint((ramp - ramp.min()) / (ramp.max() - ramp.min()) * 255)
    assert np.abs(out[0] - expected).max() <= 1 and out.min() == 0 and out.max() == 255
    deep = np.asarray(load_image(Image.fromarray(np.full((20, 20), 32768, np.int32))))
    assert abs(int(deep[0, 0, 0]) - 128) <= 1  # 16-bit values in mode "I": as before
    far = np.asarray(load_image(Image.fromarray(np.linspace(-5, 1000, 400, dtype=np.float32).reshape(20, 20), "F")))
    assert far[0, 0, 0] == 0 and far[-1, -1, 0] == 255  # floats beyond [0, 255]: their own range too


def test_float_mode_image():
    out = np.asarray(load_image(Image.fromarray(np.full((20, 20), 0.25, np.float32), "F")))
    assert out[0, 0].tolist() == [64, 64, 64]


# ---------------------------------------------------------------- resizing


def test_resize_long_side_exact():
    img = Image.fromarray(gradient(400, 300))
    assert resize_long_side(img, 100).size == (100, 75)
    assert resize_long_side(img.transpose(Image.Transpose.ROTATE_90), 100).size == (75, 100)
    assert resize_long_side(img, 800).size == (800, 600)
    assert load_image(img, size=64).size == (64, 48)
    assert resize_to(img, 33, 17).size == (33, 17)
    with pytest.raises(ValueError):
        resize_long_side(img, 0)


def test_resize_jpeg_with_draft(tmp_path):
    path = write(tmp_path, "big.jpg", Image.fromarray(gradient(400, 300)), quality=95)
    out = load_image(path, size=90)
    assert out.size == (90, 68) and out.mode == "RGB"


def test_size_argument_checked(tmp_path):
    path = write(tmp_path, "g.png", Image.fromarray(gradient()))
    assert "g.png" in expect_error(path, "at least 16", size=8)
    expect_error(path, "whole number", size="big")
    # A long thin strip would become too thin after scaling.
    expect_error(np.zeros((20, 2000), np.uint8), "too small", size=256)
    # Scaling up must respect max_pixels too.
    expect_error(path, "max_pixels", size=100_000)


def test_text_mode_file(tmp_path):
    path = write(tmp_path, "g.png", Image.fromarray(gradient()))
    with open(path, encoding="latin-1") as text_file:
        expect_error(text_file, "text mode")


# ---------------------------------------------------------------- bad input files


def test_missing_file(tmp_path):
    assert "nothere.jpg" in expect_error(tmp_path / "nothere.jpg", "no such file")


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert "folder.png" in expect_error(tmp_path / "folder.png", "directory")


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty.png" in expect_error(tmp_path / "empty.png", "empty")
    expect_error(b"", "empty")
    expect_error(io.BytesIO(b""), "empty")


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture\n" * 10)
    assert "notes.png" in expect_error(tmp_path / "notes.png", "not an image")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_file(tmp_path, fmt):
    full = write(tmp_path, f"full.{fmt}", Image.fromarray(gradient(64, 64)))
    cut = tmp_path / f"cut.{fmt}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    message = expect_error(cut, "truncated")
    assert f"cut.{fmt}" in message
    expect_error(data[: len(data) // 2], "<bytes>")


def test_truncated_detected_even_if_pil_is_told_to_allow_it(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = write(tmp_path, "f.png", Image.fromarray(gradient(64, 64))).read_bytes()
    expect_error(data[: len(data) // 2], "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_pil_truncation_switch_is_not_written_while_decoding(tmp_path, monkeypatch):
    # Threads decode in parallel: with PIL's global switch off (its default) load_image must not write
    # it at all (a flip-and-restore in one thread would change how another thread decodes).
    import types

    from PIL import ImageFile

    writes = []

    class Spy(types.ModuleType):
        def __setattr__(self, name, value):
            if name == "LOAD_TRUNCATED_IMAGES":
                writes.append(value)
            super().__setattr__(name, value)

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    monkeypatch.setattr(ImageFile, "__class__", Spy)
    data = write(tmp_path, "f.png", Image.fromarray(gradient(64, 64))).read_bytes()
    assert load_image(data).size == (64, 64)
    expect_error(data[: len(data) // 2], "truncated")
    assert writes == []


def test_decoding_leaves_the_warning_filters_alone(tmp_path, monkeypatch):
    # warnings.catch_warnings swaps a process-wide list: from several threads it can lose filters.
    import warnings

    before = list(warnings.filters)
    data = write(tmp_path, "f.png", Image.fromarray(gradient(64, 64))).read_bytes()
    monkeypatch.setattr(warnings, "catch_warnings", lambda *a, **k: pytest.fail("catch_warnings used"))
    load_image(data)
    check_upload(data)
    assert warnings.filters == before


def test_threads_decode_truncated_and_whole_files_correctly(tmp_path, monkeypatch):
    # Even when other code has switched PIL's truncation switch on, every truncated file is refused and
    # every whole one decoded exactly, from many threads at once; the switch is left as it was.
    from concurrent.futures import ThreadPoolExecutor

    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    pixels = gradient(64, 64)
    data = write(tmp_path, "f.png", Image.fromarray(pixels)).read_bytes()

    def job(i):
        if i % 2:
            return np.array_equal(np.asarray(load_image(data)), pixels)
        try:
            load_image(data[: len(data) // 2])
        except ImageError as err:
            return "truncated" in str(err)
        return False

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(job, range(40)))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_blocking(tmp_path):
    import threading

    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    result = {}

    def read():
        try:
            load_image(fifo)
        except ImageError as err:
            result["error"] = str(err)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # unblock the reader so the test run can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    assert "photo.png" in result["error"] and "not a regular file" in result["error"]


def test_zero_size(tmp_path):
    expect_error(Image.new("RGB", (0, 0)), "zero size")
    (tmp_path / "zero.png").write_bytes(png_with_header(0, 10))
    assert "zero.png" in expect_error(tmp_path / "zero.png", "")


def test_too_many_pixels(tmp_path):
    path = write(tmp_path, "big.png", Image.fromarray(gradient(100, 100)))
    message = expect_error(path, "too large", max_pixels=5000)
    assert "big.png" in message and "100x100" in message
    # A small file whose header claims a huge picture: refused before decoding.
    (tmp_path / "bomb.png").write_bytes(png_with_header(60_000, 1_000))
    assert "bomb.png" in expect_error(tmp_path / "bomb.png", "too large")
    (tmp_path / "megabomb.png").write_bytes(png_with_header(100_000, 100_000))
    assert "megabomb.png" in expect_error(tmp_path / "megabomb.png", "too large")


def test_too_small(tmp_path):
    path = write(tmp_path, "icon.png", Image.new("RGB", (8, 8)))
    message = expect_error(path, "too small for the network")
    assert "icon.png" in message and "16" in message
    assert load_image(path, min_side=None).size == (8, 8)


def test_check_upload_reads_no_pixels(tmp_path, monkeypatch):
    data = write(tmp_path, "p.png", Image.fromarray(gradient(40, 30))).read_bytes()
    assert check_upload(data) == (40, 30)
    assert check_upload(tmp_path / "p.png") == (40, 30)
    f = io.BytesIO(data)
    f.seek(0)
    assert check_upload(f) == (40, 30)
    assert f.tell() == 0 and load_image(f).size == (40, 30)  # the position is put back for the reader
    # A 60 KB-ish file claiming 25 megapixels: refused by its header, naming the upload.
    bomb = png_with_header(5000, 5000)
    with pytest.raises(ImageError) as info:
        check_upload(bomb, max_pixels=4_000_000, name="upload.png")
    assert "upload.png" in str(info.value) and "5000x5000" in str(info.value) and "4,000,000" in str(info.value)
    # ... and no pixel was decoded on the way: decoding would fail loudly.
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels were decoded"))
    with pytest.raises(ImageError):
        check_upload(bomb, max_pixels=4_000_000)
    assert check_upload(bomb, max_pixels=None) == (5000, 5000)
    # Our limit does not lean on PIL's own guard: with that switched off, the header still refuses.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError, match="too large"):
        load_image(bomb, max_pixels=4_000_000)
    for bad, fragment in ((b"", "empty"), (b"not an image", "not an image"), (gradient(), "encoded")):
        with pytest.raises(ImageError, match=fragment):
            check_upload(bad)


# ---------------------------------------------------------------- tensors


def test_tensor_round_trip_exact():
    img = Image.fromarray(gradient())
    t = to_tensor(img)
    assert t.shape == (1, 3, 30, 40) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    assert np.array_equal(np.asarray(to_pil(t)), np.asarray(img))
    assert np.array_equal(np.asarray(to_pil(t[0])), np.asarray(img))


def test_to_pil_clamps():
    t = torch.full((3, 4, 4), 2.0)
    t[0] = -1.0
    assert np.asarray(to_pil(t))[0, 0].tolist() == [0, 255, 255]


# ---------------------------------------------------------------- output paths


def test_check_output_path_creates_parents(tmp_path):
    out = check_output_path(tmp_path / "a" / "b" / "out.png")
    assert out.parent.is_dir() and not out.exists()
    assert list(out.parent.iterdir()) == []


def test_output_under_a_regular_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ImageError) as info:
        check_output_path(tmp_path / "file.txt" / "out.png")
    assert "out.png" in str(info.value) and "not a directory" in str(info.value)


def test_output_is_a_directory(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(ImageError, match="directory") as info:
        check_output_path(tmp_path / "out.png")
    assert "out.png" in str(info.value)


def test_output_bad_extension(tmp_path):
    for name in ["out.gif", "out"]:
        with pytest.raises(ImageError) as info:
            check_output_path(tmp_path / name)
        assert name in str(info.value) and ".png" in str(info.value)


def test_output_kinds(tmp_path):
    assert check_output_path(tmp_path / "log.json", "json").name == "log.json"
    assert check_output_path(tmp_path / "plot.svg", "figure").name == "plot.svg"
    assert check_output_path(tmp_path / "a.npz", "npz").name == "a.npz"
    for path, kind in (("log.txt", "json"), ("plot.webp", "figure"), ("a.json", "npz"), ("a.pdf", "image")):
        with pytest.raises(ImageError) as info:
            check_output_path(tmp_path / path, kind)
        assert path in str(info.value) and kind in str(info.value)
    with pytest.raises(ValueError, match="kind"):
        check_output_path(tmp_path / "a.png", "movie")


def test_output_may_not_be_an_input(tmp_path):
    photo = write(tmp_path, "photo.png", Image.fromarray(gradient()))
    (tmp_path / "link.png").symlink_to(photo)
    for out in (photo, tmp_path / "link.png", tmp_path / "sub" / ".." / "photo.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ImageError) as info:
            check_output_path(out, inputs=["chelsea", str(photo)])
        assert "input" in str(info.value) and "photo.png" in str(info.value)
    assert check_output_path(tmp_path / "other.png", inputs=[photo]).name == "other.png"


def test_save_image_interrupted_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = save_image(Image.fromarray(gradient()), tmp_path / "out.png")
    before = out.read_bytes()

    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"half a picture")
        raise KeyboardInterrupt  # a second Ctrl-C while saving

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(Image.new("RGB", (20, 20)), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_saved_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = save_image(Image.fromarray(gradient()), tmp_path / "m.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_save_image(tmp_path):
    pixels = gradient()
    saved = save_image(Image.fromarray(pixels), tmp_path / "sub" / "a.png")
    assert np.array_equal(np.asarray(Image.open(saved)), pixels)
    saved = save_image(to_tensor(Image.fromarray(pixels)), str(tmp_path / "b.png"))
    assert np.array_equal(np.asarray(Image.open(saved)), pixels)
    save_image(Image.new("RGBA", (20, 20)), tmp_path / "c.jpg")
    assert Image.open(tmp_path / "c.jpg").mode == "RGB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "c.jpg", "sub"]
