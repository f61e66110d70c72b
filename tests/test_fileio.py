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
