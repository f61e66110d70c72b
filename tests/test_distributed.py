"""A scan on torch.distributed: two gloo processes on the CPU give the atlas of a one-process scan.

Two routes: ``teachkit.distributed.scan`` in processes started by ``torch.multiprocessing`` (a tiny
hand-made network, planted ties across the two shares), and ``torchrun -m teachkit patches scan``
end to end (VGG19, a handful of small images).  Both on 127.0.0.1 with a free port; seconds each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from local_server import free_port
from torch import nn

from teachkit import distributed
from teachkit.atlas import Atlas
from teachkit.datasets import TensorDataset
from teachkit.features import FeatureExtractor
from teachkit.patches import scan

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch has no gloo backend")


def positive_net() -> FeatureExtractor:
    """Two 3x3 convs with positive weights: a brighter image gives larger activations everywhere."""
    g = torch.Generator().manual_seed(3)
    conv1, conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1)
    with torch.no_grad():
        for conv in (conv1, conv2):
            conv.weight.copy_(torch.rand(conv.weight.shape, generator=g))
            conv.bias.zero_()
    body = nn.Sequential(OrderedDict([
        ("conv1_1", conv1), ("relu1_1", nn.ReLU()), ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2_1", conv2), ("relu2_1", nn.ReLU()),
    ]))
    return FeatureExtractor("tiny", body, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), bgr=False,
                            scale=1.0, weights_id="tiny-positive")


#: images 4..8 are one photo, cut in two by the shares (0..5 and 6..12)
PHOTOS = [0, 1, 2, 3, 4, 4, 4, 4, 4, 9, 10, 11, 12]


def tied_images() -> TensorDataset:
    """13 dim random images; image 2 bright, and copied to images 7 and 9 (the other share).

    Without a cap, every unit's top three are three equal values; a one-process scan orders them 2, 7, 9
    (ties go to the earlier image), and so must the merge of the two processes' tables."""
    g = torch.Generator().manual_seed(4)
    imgs = torch.rand(13, 3, 20, 20, generator=g) * 0.4
    imgs[2] = 0.6 + 0.4 * torch.rand(3, 20, 20, generator=g)
    imgs[7] = imgs[9] = imgs[2]
    imgs[4:7] += 0.3  # the photo of images 4..8 brighter than the rest: the cap must act across the shares
    return TensorDataset(imgs, name="tied", sources=PHOTOS)


OPTIONS = dict(layers=["relu1_1", "relu2_1"], k=4, image_size=20, batch_size=3)
RUNS = ((1, 0), (2, 0), (1, 1), (2, 2))  # (positions per image, per-photo cap)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: scans with one and two positions per image, with and without a cap; rank 0 saves them."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    with distributed.process_group("cpu"):
        for m, cap in RUNS:
            seen = []
            atlas = distributed.scan(positive_net(), tied_images(), positions_per_image=m, per_image=cap,
                                     callback=lambda p: seen.append((p.values["rank"], p.step, p.total)) and False,
                                     **OPTIONS)
            assert all(r == rank for r, _, _ in seen) and seen[-1][1] == seen[-1][2]  # its own share, to the end
            if rank == 0:
                atlas.save(f"{out}{m}{cap}.npz")
            else:
                assert atlas is None
        # rank 1 stops at its time limit after its first batch: rank 0 still gets the merged part
        part = distributed.scan(positive_net(), tied_images(), time_limit=1e-9 if rank else None, **OPTIONS)
        if rank == 0:
            part.save(f"{out}-stopped.npz")
        # the ranks see different images: one error on every rank, before any scan
        other = tied_images() if rank == 0 else TensorDataset(torch.zeros(13, 3, 20, 20), name="other")
        with pytest.raises(distributed.DistributedError) as err:
            distributed.scan(positive_net(), other, **OPTIONS)
        assert err.value.msg_id == "dist.datasets_differ"


def test_two_gloo_processes_equal_one_process_scan(tmp_path, monkeypatch):
    # in a pytest-xdist worker __main__ is execnet's bootstrap file: the spawned processes must not run it again
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    out = tmp_path / "dist"
    torch.multiprocessing.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    for m, cap in RUNS:
        merged = Atlas.load(f"{out}{m}{cap}.npz")
        whole = scan(positive_net(), tied_images(), positions_per_image=m, per_image=cap, **OPTIONS)
        for n in whole.layers:
            for field in ("values", "images", "ys", "xs", "sources"):
                np.testing.assert_array_equal(getattr(merged, field)[n], getattr(whole, field)[n],
                                              err_msg=f"m={m} cap={cap} {n} {field}")
            photos = merged.sources[n]
            assert cap == 0 or all(np.bincount(row[row >= 0]).max() <= cap for row in photos)
        assert merged.complete and merged.n_images == 13 and merged.meta["processes"] == 2
        assert (merged.meta["start"], merged.meta["end"]) == (0, 13)
    # rank 1 (images 6..12) stopped after one batch of 3: the atlas of images 0..8, marked partial
    stopped = Atlas.load(f"{out}-stopped.npz")
    assert stopped.meta["stopped"] == "time_limit" and not stopped.complete and stopped.n_images == 9
    first9 = scan(positive_net(), tied_images(), end=9, **OPTIONS)
    for n in first9.layers:
        np.testing.assert_array_equal(stopped.images[n], first9.images[n])
        np.testing.assert_array_equal(stopped.values[n], first9.values[n])
    # the planted tie, checked against its own oracle: equal values, earlier image first
    merged = Atlas.load(f"{out}10.npz")
    assert (merged.images["relu2_1"][:, :3] == [2, 7, 9]).all()
    assert (merged.values["relu2_1"][:, 0] == merged.values["relu2_1"][:, 2]).all()


def test_torchrun_cli_writes_one_atlas_equal_to_a_one_process_scan(tmp_path, vgg19):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray((rng.random((36, 44, 3)) * 255).astype("uint8")).save(folder / f"im{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")  # skipped by its rank, named in the atlas
    out = tmp_path / "atlas.npz"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "teachkit", "patches", "scan", "--data", str(folder),
           "--layers", "relu1_1,relu2_1", "--image-size", "32", "--k", "3", "--threads", "1",
           "--cache-dir", str(tmp_path / "cache"), "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANG": "C"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved to") == 1 and "2 process(es)" in done.stdout  # rank 0 alone reports
    merged = Atlas.load(out)
    whole = scan(vgg19, str(folder), ["relu1_1", "relu2_1"], k=3, image_size=32)
    for n in whole.layers:
        for field in ("values", "images", "ys", "xs"):
            np.testing.assert_array_equal(getattr(merged, field)[n], getattr(whole, field)[n], err_msg=f"{n} {field}")
    assert merged.meta["skipped"] == whole.meta["skipped"] == ["broken.png"]
    assert merged.complete and merged.n_images == whole.n_images == 7
