"""Fixtures shared by the test files: one frozen VGG19 for the whole run, a one-thread switch, and one
classroom (tiny demos, a tiny atlas, a private cache prepared once) with its one local server."""

from types import SimpleNamespace

import pytest
import torch

from teachkit.features import load_backbone


#: the test files that take longest, longest first, so that both workers end together (the grader's, which
#: needs no classroom, beside the first browser file while that one builds the classroom): ``make test``
#: runs pytest-xdist with --dist loadfile --no-loadscope-reorder
SLOW_FIRST = ("test_browser.py", "test_grade.py", "test_browser_zh.py", "test_serving.py", "test_wheel.py",
              "test_app.py", "test_pages.py", "test_transfer.py", "test_cli_transfer.py", "test_gram.py",
              "test_notebooks.py", "test_distributed.py", "test_viz.py", "test_features.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: SLOW_FIRST.index(item.path.name) if item.path.name in SLOW_FIRST else len(SLOW_FIRST))


@pytest.fixture(scope="session")
def vgg19():
    """The default backbone (original VGG19 weights), loaded once; it is frozen, so sharing is safe."""
    return load_backbone("vgg19", device="cpu")


@pytest.fixture(scope="session")
def net(vgg19):
    """The same backbone under the name the engine's functions use for it."""
    return vgg19


@pytest.fixture(scope="module")
def one_thread():
    """Tiny images: one torch thread beats several, by far on a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- the classroom: one for the whole run ----------------------------------------------------------

#: the tiny default dataset of lesson 1 (sample photos, 64 px, scanned at 48 px)
CLASSROOM_IMAGES = ("chelsea", "astronaut", "coffee", "rocket")


@pytest.fixture(scope="session")
def classroom(request, tmp_path_factory):
    """Tiny demos (TEACHKIT_FAST, 32 px), a tiny atlas (4 images at 48 px) and a private cache holding
    what ``teachkit prepare --fast`` makes for the default pages: built once (under pytest-xdist, once for
    all workers).  ``env`` is the app's environment; :func:`classroom_env` puts it into this process,
    :func:`classroom_server` serves the app with it."""
    import os

    from filelock import FileLock

    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' temporary folders share a parent
        root = tmp_path_factory.getbasetemp().parent / "classroom"
    else:
        root = tmp_path_factory.mktemp("classroom")
    folder, cache = root / "atlas_images", root / "cache"
    with FileLock(str(root) + ".lock"):
        if not (root / "ready").is_file():
            _build_classroom(request.getfixturevalue("vgg19"), folder, cache)
            (root / "ready").touch()
    env = {"TEACHKIT_FAST": "1", "TEACHKIT_DEMO_SIZE": "32", "TEACHKIT_ATLAS_DATASET": str(folder),
           "TEACHKIT_ATLAS_SIZE": "48", "TEACHKIT_CACHE": str(cache), "TEACHKIT_OFFLINE": "1",
           "TEACHKIT_WARMUP": "0"}
    return SimpleNamespace(folder=folder, cache=cache, env=env)


def _build_classroom(net, folder, cache) -> None:
    """The tiny dataset, and what `teachkit prepare --fast --dataset FOLDER` makes that the default pages
    show: the atlas, the first gallery pair, lesson 4's rebuilt photo, lesson 5's textures of the default
    style."""
    from teachkit import prepare
    from teachkit.samples import DEFAULT_CONTENT, DEFAULT_STYLE, sample_content

    folder.mkdir(parents=True, exist_ok=True)
    for name in CLASSROOM_IMAGES:
        sample_content(name, 64).save(folder / f"{name}.png")
    prepare.prepare_atlas(net, str(folder), prepare.FAST, cache)
    prepare.prepare_transfer(net, *prepare.GALLERY[0], prepare.FAST, cache)
    prepare.prepare_content(net, DEFAULT_CONTENT, prepare.FAST, cache)
    prepare.prepare_texture(net, DEFAULT_STYLE, prepare.FAST, cache)


@pytest.fixture(scope="module")
def classroom_env(classroom):
    """The classroom's settings in this process's environment (for AppTest) while a test module runs;
    the tiny dataset's folder."""
    mp = pytest.MonkeyPatch()
    for key, value in classroom.env.items():
        mp.setenv(key, value)
    yield classroom.folder
    mp.undo()


@pytest.fixture(scope="module")
def tiny_atlas_env(classroom_env):
    """The name tests/test_serving.py knows the classroom by."""
    return classroom_env


@pytest.fixture(scope="session")
def classroom_server(classroom, tmp_path_factory):
    """The app served on 127.0.0.1 with the classroom's settings and ``make run``'s flags (teachkit.serve,
    the default upload limit), started outside the repository (no .streamlit/config.toml to lean on).
    Shared by the tests that need a real server and leave it as they found it (tests/local_server.py)."""
    import os

    from local_server import serve_app

    from teachkit.lessons.uploads import UPLOAD_MAX_MB
    from teachkit.serve import streamlit_flags

    elsewhere = tmp_path_factory.mktemp("served_from")
    env = dict(os.environ, **classroom.env)
    flags = streamlit_flags(UPLOAD_MAX_MB, local=True)
    with serve_app(flags, cwd=elsewhere, env=env, log=elsewhere / "streamlit.log") as server:
        server.flags = flags
        yield server


@pytest.fixture(scope="session", autouse=True)
def components_scanned_once():
    """Every new AppTest has Streamlit read the metadata of every installed package, looking for v2
    components: most of a short AppTest's time.  Nothing is installed during a run, so one scan serves all."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # a Streamlit without v2 components: nothing to scan
        yield
        return
    scan = manifest_scanner.scan_component_manifests
    found = []

    def scan_once(*args, **kwargs):
        if not found:
            found.append(scan(*args, **kwargs))
        return list(found[0])

    manifest_scanner.scan_component_manifests = scan_once
    yield
    manifest_scanner.scan_component_manifests = scan
