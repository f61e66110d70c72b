"""Fixtures shared by the test files: one frozen VGG19 for the whole run, and a one-thread switch."""

import pytest
import torch

from teachkit.features import load_backbone


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
