"""Tests for teachkit.fileio: check_int and atomic_write."""

import os
import stat

import numpy as np
import pytest

from teachkit import fileio
from teachkit.fileio import atomic_write, check_int


def test_check_int():
    assert check_int("steps", 3, 1) == 3 and type(check_int("k", np.int64(2), 0)) is int
    for bad in (0, -1, 2.0, "3", True, None):
        with pytest.raises(ValueError) as info:
            check_int("steps", bad, 1)
        assert "steps" in str(info.value) and ">= 1" in str(info.value) and repr(bad) in str(info.value)


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "a.json"
    with atomic_write(path, "w") as f:
        f.write("first")
    assert path.read_text() == "first"
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_write(path, "w") as f:
                f.write("half")
                raise error
        assert path.read_text() == "first"
        assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left
    with pytest.raises(ValueError, match="writing only"):
        with atomic_write(path, "a"):
            pass


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_write_mode_follows_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert fileio._umask() == mask
        with atomic_write(tmp_path / "x.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o666 & ~mask


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")
def test_umask_is_read_without_changing_it(monkeypatch):
    # Setting the umask, even for an instant, changes the mode of files other threads create.
    expected = fileio._umask()
    monkeypatch.setattr(os, "umask", lambda *a: pytest.fail("os.umask was called"))
    assert fileio._umask() == expected


def _read_only(monkeypatch, folder):
    """``folder`` refuses new files: by its mode where that holds (not for root), else as the kernel
    answers then (mkstemp's PermissionError names the hidden temporary file it tried)."""
    import errno
    import tempfile

    os.chmod(folder, 0o555)
    probe = folder / "probe"
    try:
        probe.touch()
    except PermissionError:
        return
    probe.unlink()
    real = tempfile.mkstemp

    def mkstemp(*a, **k):
        if os.path.samefile(k.get("dir", "."), folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / f".tmp-x8k2{k['suffix']}"))
        return real(*a, **k)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)


def test_a_read_only_folder_names_the_file_asked_for_not_the_temporary_one(tmp_path, monkeypatch):
    from teachkit.cli import os_error_message

    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(monkeypatch, folder)
    try:
        with pytest.raises(PermissionError) as info:
            with atomic_write(folder / "lesson1_en.html") as f:
                f.write(b"x")
    finally:
        os.chmod(folder, 0o755)
    shown = os_error_message(info.value).text("en")
    assert str(folder / "lesson1_en.html") in shown and ".tmp" not in shown and "permission denied" in shown
    assert list(folder.iterdir()) == []


def test_one_output_folder_rule_never_overwrites_without_force_and_refuses_a_file(tmp_path):
    from teachkit.messages import InputError

    paths = fileio.output_files(tmp_path / "new" / "deep", ["a.html", "b.html"])
    assert paths == [tmp_path / "new" / "deep" / n for n in ("a.html", "b.html")] and paths[0].parent.is_dir()
    paths[1].write_text("edited by the teacher")
    with pytest.raises(InputError) as info:
        fileio.output_files(tmp_path / "new" / "deep", ["a.html", "b.html"])
    assert info.value.msg_id == "output.exists" and str(paths[1]) in str(info.value) and "--force" in str(info.value)
    assert fileio.output_files(tmp_path / "new" / "deep", ["a.html", "b.html"], force=True) == paths
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InputError) as info:
        fileio.output_files(tmp_path / "f.txt", ["a.html"], force=True)
    assert info.value.msg_id == "output.not_a_folder" and "--force" not in str(info.value)
