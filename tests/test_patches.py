"""Tests for teachkit.patches (the scan, the atlas, merging, the cache), the patch figures and
``teachkit patches`` on the command line.  Offline; tiny hand-built networks where possible."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from teachkit import patches as P
from teachkit.datasets import ConcatDataset, FolderDataset, TensorDataset
from teachkit.features import FeatureExtractor
from teachkit.patches import Atlas, get_atlas, merge, scan, select_units
from teachkit.receptive_field import receptive_fields

# ---------------------------------------------------------------- helpers


def extractor(body: nn.Sequential, weights_id: str = "test-weights") -> FeatureExtractor:
    """A FeatureExtractor around a hand-built body; the input goes in unchanged (RGB in [0, 1])."""
    return FeatureExtractor("tiny", body, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), bgr=False,
                            scale=1.0, weights_id=weights_id)


def red_detector() -> FeatureExtractor:
    """conv1_1 channel 0 sums (R - G - B) over 3x3: it fires on a red 3x3 square, at its centre.

    Channel 1 does the same for green.  conv2_1 passes channel 0 through (centre tap) after a
    2x2 max pool.
    """
    conv1 = nn.Conv2d(3, 2, 3, padding=1)
    conv2 = nn.Conv2d(2, 1, 3, padding=1)
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.bias.zero_()
        conv1.weight[0, 0] = 1.0
        conv1.weight[0, 1] = -1.0
        conv1.weight[0, 2] = -1.0
        conv1.weight[1, 1] = 1.0
        conv1.weight[1, 0] = -1.0
        conv1.weight[1, 2] = -1.0
        conv2.weight.zero_()
        conv2.bias.zero_()
        conv2.weight[0, 0, 1, 1] = 1.0
    body = nn.Sequential(OrderedDict([
        ("conv1_1", conv1), ("relu1_1", nn.ReLU()), ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2_1", conv2), ("relu2_1", nn.ReLU()),
    ]))
    return extractor(body, "red-detector")


def random_net(seed: int = 0, positive: bool = False) -> FeatureExtractor:
    """Random 3x3 convs; ``positive``: positive weights, so no ReLU zeros (and no ties)."""
    g = torch.Generator().manual_seed(seed)
    conv1, conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1)
    with torch.no_grad():
        for conv in (conv1, conv2):
            w = torch.randn(conv.weight.shape, generator=g)
            conv.weight.copy_(w.abs() if positive else w)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g))
    body = nn.Sequential(OrderedDict([
        ("conv1_1", conv1), ("relu1_1", nn.ReLU()), ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2_1", conv2), ("relu2_1", nn.ReLU()),
    ]))
    return extractor(body, f"random-{seed}-{positive}")


def random_images(n: int = 12, size: int = 20, seed: int = 1, sources=None) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 3, size, size, generator=g), name=f"random{n}", sources=sources)


def grey_images(n: int, size: int = 32) -> torch.Tensor:
    return torch.full((n, 3, size, size), 0.5)


def plant(img: torch.Tensor, y: int, x: int, rgb) -> None:
    """A 3x3 square of colour ``rgb`` centred on (y, x)."""
    img[:, y - 1:y + 2, x - 1:x + 2] = torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1)


def assert_same_atlas(a: Atlas, b: Atlas) -> None:
    assert a.layers == b.layers
    for n in a.layers:
        np.testing.assert_array_equal(a.values[n], b.values[n])
        np.testing.assert_array_equal(a.images[n], b.images[n])
        np.testing.assert_array_equal(a.ys[n], b.ys[n])
        np.testing.assert_array_equal(a.xs[n], b.xs[n])
        np.testing.assert_array_equal(a.sources[n], b.sources[n])


def allowed_positions(net, layer, h, w, size, min_inside=P.DEFAULT_MIN_INSIDE):
    """(h, w) mask of the positions whose receptive field has >= min_inside of its rows and of its
    columns inside the image (or the most there are), from the documented edge formula."""
    rf = receptive_fields(net.body)[layer]
    fracs = []
    for n, side, stride, offset in ((h, rf.size, rf.stride, rf.offset), (w, rf.size_x, rf.stride_x, rf.offset_x)):
        start = offset - (side - 1) / 2 + stride * np.arange(n)
        frac = (np.minimum(start + side, size) - np.maximum(start, 0)) / side
        fracs.append(frac >= min(min_inside, frac.max()) - 1e-9)
    return fracs[0][:, None] & fracs[1][None, :]


def brute_force(net, ds, layer, k, size, batch_size, m=1, min_inside=P.DEFAULT_MIN_INSIDE, cap=0):
    """All activations, then the top-k sorted in numpy, at most ``cap`` per source photo (0: any number),
    taken greedily from the best down: (values, images, ys, xs), each (C, k)."""
    acts = []
    for s in range(0, len(ds), batch_size):
        pils = [ds.square(i, size) for i in range(s, min(s + batch_size, len(ds)))]
        with torch.no_grad():
            acts.append(net.extract(P._pils_to_batch(pils, torch.device("cpu")), [layer])[layer].numpy())
    a = np.concatenate(acts)  # N, C, H, W
    n, c, h, w = a.shape
    ok = allowed_positions(net, layer, h, w, size, min_inside)
    a = np.where(ok, a, -np.inf)
    vals, imgs, pos = [], [], []
    for i in range(n):
        for ch in range(c):
            flat = a[i, ch].ravel()
            if m == 1:
                keep = [int(np.argmax(flat))]  # first maximum in reading order
            else:
                padded = np.pad(a[i, ch], 1, constant_values=-np.inf)
                neigh = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], 0)
                peaks = np.nonzero(((a[i, ch] >= neigh) & ok).ravel())[0]
                keep = peaks[np.argsort(-flat[peaks], kind="stable")][:m].tolist()
            for p in keep:
                vals.append((ch, flat[p], i, p))
    out_v = np.full((c, k), -np.inf, np.float32)
    out_i = np.full((c, k), -1)
    out_p = np.full((c, k), -1)
    for ch in range(c):
        rows = [r for r in vals if r[0] == ch]
        rows.sort(key=lambda r: (-r[1], r[2]))
        taken: dict[int, int] = {}
        kept = []
        for r in rows:
            photo = ds.source(r[2])
            if len(kept) < k and (not cap or taken.get(photo, 0) < cap):
                kept.append(r)
                taken[photo] = taken.get(photo, 0) + 1
        for j, (_, v, i, p) in enumerate(kept):
            out_v[ch, j], out_i[ch, j], out_p[ch, j] = v, i, p
    return out_v, out_i, np.where(out_p >= 0, out_p // w, -1), np.where(out_p >= 0, out_p % w, -1)


# ---------------------------------------------------------------- the scan


def test_planted_pattern_top_patches_are_exactly_the_planted_squares():
    imgs = grey_images(10)
    # Red squares of decreasing strength in images 2, 5, 7; a green distractor in image 4.
    planted = {2: ((10, 20), 1.0), 5: ((5, 6), 0.9), 7: ((25, 12), 0.8)}
    for i, ((y, x), r) in planted.items():
        plant(imgs[i], y, x, (r, 0.0, 0.0))
    plant(imgs[4], 15, 15, (0.0, 1.0, 0.0))
    ds = TensorDataset(imgs, "planted")
    net = red_detector()
    atlas = scan(net, ds, ["relu1_1", "relu2_1"], k=3, image_size=32, batch_size=4)

    hits = atlas.top("relu1_1", 0)
    assert [h.image_index for h in hits] == [2, 5, 7]
    assert [(h.y, h.x) for h in hits] == [planted[i][0] for i in (2, 5, 7)]
    # The receptive field of relu1_1 is 3x3: the box is exactly the planted square.
    assert [h.box for h in hits] == [(y - 1, x - 1, y + 2, x + 2) for (y, x), _ in
                                     (planted[i] for i in (2, 5, 7))]
    values = [h.value for h in hits]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(9.0, rel=1e-2)
    for patch, i in zip(atlas.patches("relu1_1", 0), (2, 5, 7)):
        arr = np.asarray(patch)
        assert arr.shape == (3, 3, 3)
        assert (arr[..., 1:] == 0).all() and (arr[..., 0] == round(planted[i][1] * 255)).all()
    # The green unit finds the distractor first.
    assert atlas.top("relu1_1", 1)[0].image_index == 4
    # One layer deeper (after pooling) the same images win, and the box covers the square.
    deep = atlas.top("relu2_1", 0)
    assert [h.image_index for h in deep] == [2, 5, 7]
    for h, i in zip(deep, (2, 5, 7)):
        (y, x), _ = planted[i]
        top, left, bottom, right = h.box
        assert bottom - top == atlas.rf("relu2_1").size == 8
        assert top <= y - 1 and y + 2 <= bottom and left <= x - 1 and x + 2 <= right


def test_several_positions_per_image_are_distinct_peaks():
    imgs = grey_images(6)
    plant(imgs[1], 8, 8, (1.0, 0, 0))
    plant(imgs[1], 22, 24, (0.95, 0, 0))
    plant(imgs[3], 16, 16, (0.8, 0, 0))
    atlas = scan(red_detector(), TensorDataset(imgs), ["relu1_1"], k=3, image_size=32,
                 positions_per_image=2, per_image=2, batch_size=4)
    hits = atlas.top("relu1_1", 0)
    assert [(h.image_index, h.y, h.x) for h in hits] == [(1, 8, 8), (1, 22, 24), (3, 16, 16)]
    assert atlas.meta["positions_per_image"] == 2
    # the default cap: one patch per photo, so image 1's second peak gives way to image 3
    hits = scan(red_detector(), TensorDataset(imgs), ["relu1_1"], k=3, image_size=32, positions_per_image=2).top(
        "relu1_1", 0)
    assert [(h.image_index, h.y, h.x) for h in hits[:2]] == [(1, 8, 8), (3, 16, 16)]
    assert len({h.image_index for h in hits}) == 3


#: 11 images from 5 photos: photo 2 gives images 2..6 (it straddles the batches of 3 and the shards)
PHOTOS = [0, 0, 2, 2, 2, 2, 2, 7, 8, 8, 10]


@pytest.mark.parametrize("m, min_inside, cap, sources", [
    (1, P.DEFAULT_MIN_INSIDE, 0, None), (2, P.DEFAULT_MIN_INSIDE, 0, None), (1, 0.0, 0, None), (2, 1.0, 0, None),
    (1, P.DEFAULT_MIN_INSIDE, 1, PHOTOS), (2, P.DEFAULT_MIN_INSIDE, 1, PHOTOS), (2, 0.0, 2, PHOTOS), (2, 1.0, 1, None)])
def test_topk_equals_brute_force(m, min_inside, cap, sources):
    net = random_net(seed=3, positive=m > 1)  # m=2: no ReLU zeros, so no tied peaks
    ds = random_images(11, 20, sources=sources)
    atlas = scan(net, ds, ["relu1_1", "relu2_1"], k=4, image_size=20, batch_size=3,
                 positions_per_image=m, min_inside=min_inside, per_image=cap)
    assert atlas.meta["min_inside"] == min_inside and atlas.meta["per_image"] == cap
    for layer in ("relu1_1", "relu2_1"):
        v, i, y, x = brute_force(net, ds, layer, 4, 20, 3, m, min_inside, cap)
        np.testing.assert_array_equal(atlas.sources[layer], [[ds.source(j) if j >= 0 else -1 for j in r] for r in i])
        np.testing.assert_array_equal(atlas.values[layer], v)
        np.testing.assert_array_equal(atlas.images[layer], i)
        np.testing.assert_array_equal(atlas.ys[layer], y)
        np.testing.assert_array_equal(atlas.xs[layer], x)


def greedy(rows, k, cap):
    """The capped top-k by its definition: (value, image, photo) rows from the best down (the earlier
    image on ties), each taken unless k are taken or its photo already gave ``cap``."""
    out, taken = [], {}
    for v, i, s in sorted(rows, key=lambda r: (-r[0], r[1])):
        if len(out) < k and (not cap or taken.get(s, 0) < cap):
            out.append((v, i, s))
            taken[s] = taken.get(s, 0) + 1
    return out


def test_the_capped_keeper_on_a_stream_or_merged_from_any_split_equals_the_whole():
    """P._pick (what the scan and merge keep) against greedy(), on random rows with many ties and photos
    in runs that straddle the splits: kept batch by batch, or per part and then merged, it is exact."""
    rng = np.random.default_rng(0)

    def keep(kept, new, k, cap):
        rows = kept + new
        v, i, s = (torch.tensor([r[j] for r in rows]) for j in range(3))
        return [rows[j] for j in P._pick(v[None], i[None], s[None], k, cap)[0].tolist()]

    for _ in range(400):
        n, k, cap = int(rng.integers(2, 30)), int(rng.integers(1, 6)), int(rng.integers(0, 4))
        rows = list(zip(rng.integers(0, 6, n).astype(float).tolist(), range(n),
                        np.sort(rng.integers(0, n // 3 + 1, n)).tolist()))
        want = greedy(rows, k, cap)
        empty = [(float("-inf"), -1, -1)] * k
        parts = np.split(np.arange(n), np.sort(rng.integers(0, n, int(rng.integers(1, 4)))))
        kept_parts = []
        for part in parts:  # each part kept batch by batch, as a shard's scan keeps it
            kept = empty
            for batch in np.array_split(part, max(1, len(part) // 3)):
                kept = keep(kept, [rows[j] for j in batch], k, cap)
            kept_parts.append(kept)
        merged = kept_parts[0]
        for kept in kept_parts[1:]:
            merged = keep(merged, kept, k, cap)
        assert [r for r in merged if r[1] >= 0] == want, (rows, k, cap, parts)


def test_a_dominant_photo_split_between_shards_gives_each_unit_at_most_cap_patches():
    """Planted: images 3..8 are one photo, the six reddest; the shards' boundary (6) cuts it in two."""
    imgs = grey_images(12)
    for i, r in zip(range(12), (0.5, 0.6, 0.7, 1.0, 0.98, 0.96, 0.94, 0.92, 0.9, 0.8, 0.55, 0.65)):
        plant(imgs[i], 16 if 3 <= i <= 8 else 10, 16, (r, 0.0, 0.0))
    ds = TensorDataset(imgs, "dominant", sources=[0, 1, 2, 3, 3, 3, 3, 3, 3, 9, 10, 11])
    net = red_detector()
    for cap, want in {0: [3, 4, 5, 6], 1: [3, 9, 2, 11], 2: [3, 4, 9, 2]}.items():
        kw = dict(layers=["relu1_1"], k=4, image_size=32, batch_size=1, per_image=cap)  # same sums in any split
        whole = scan(net, ds, **kw)
        assert [h.image_index for h in whole.top("relu1_1", 0)] == want
        v, i, y, x = brute_force(net, ds, "relu1_1", 4, 32, 1, cap=cap)
        np.testing.assert_array_equal(whole.values["relu1_1"], v)
        np.testing.assert_array_equal(whole.images["relu1_1"], i)
        shards = [scan(net, ds, shard=(j, 2), **kw) for j in (0, 1)]
        assert_same_atlas(merge(*shards), whole)
        assert_same_atlas(merge(shards[1], shards[0]), whole)
        thirds = [scan(net, ds, start=a, end=b, **kw) for a, b in ((0, 4), (4, 7), (7, 12))]
        assert_same_atlas(merge(thirds[0], merge(thirds[2], thirds[1])), whole)
    with pytest.raises(ValueError, match="per_image"):
        merge(shards[0], scan(net, ds, shard=(1, 2), **{**kw, "per_image": 1}))


def test_merge_of_two_halves_equals_the_whole_scan():
    net, ds = random_net(seed=5), random_images(12, 20)
    kw = dict(layers=["relu1_1", "relu2_1"], k=5, image_size=20, batch_size=4)
    whole = scan(net, ds, **kw)
    first = scan(net, ds, start=0, end=8, **kw)
    second = scan(net, ds, start=8, end=12, **kw)
    assert not first.complete and first.n_images == 8
    for merged in (merge(first, second), merge(second, first)):
        assert_same_atlas(merged, whole)
        assert merged.complete and merged.n_images == 12
        assert (merged.meta["start"], merged.meta["end"]) == (0, 12)
    # Shards name the same split.
    halves = [scan(net, ds, shard=(j, 2), **{**kw, "batch_size": 6}) for j in (0, 1)]
    assert_same_atlas(merge(*halves), scan(net, ds, **{**kw, "batch_size": 6}))
    with pytest.raises(ValueError, match="overlap"):
        merge(first, scan(net, ds, start=4, end=12, **kw))
    with pytest.raises(ValueError, match="different k"):
        merge(first, scan(net, ds, start=8, end=12, **{**kw, "k": 3}))


def test_merge_of_two_datasets_offsets_the_second():
    net = random_net(seed=6)
    a_ds, b_ds = random_images(8, 20, seed=1), random_images(4, 20, seed=2)
    kw = dict(layers=["relu2_1"], k=4, image_size=20, batch_size=4)
    merged = merge(scan(net, a_ds, **kw), scan(net, b_ds, **kw))
    both = ConcatDataset([a_ds, b_ds])
    assert_same_atlas(merged, scan(net, both, **kw))
    assert merged.meta["dataset_size"] == 12 and merged.n_images == 12
    # The merged atlas crops from the concatenation.
    assert len(merged.patches("relu2_1", 0, both)) == 4


def test_patches_of_a_layer_all_have_the_receptive_field_size():
    net, ds = random_net(seed=7), random_images(6, 20)
    atlas = scan(net, ds, ["relu1_1", "relu2_1"], k=6, image_size=20, batch_size=6)
    for layer in atlas.layers:
        rf = atlas.rf(layer)
        sizes = {p.size for u in range(atlas.channels(layer)) for p in atlas.patches(layer, u)}
        assert sizes == {(rf.size_x, rf.size)}
    # Border padding is drawn in flat grey.
    hits = atlas.top("relu2_1", 0)
    img = atlas.scanned_image(hits[0].image_index)
    assert img.size == (20, 20)


def test_folder_with_broken_files_skips_counts_and_names_them(tmp_path, caplog):
    rng = np.random.default_rng(0)
    good = ["a.png", "sub/b.JPG", "sub/deeper/c.webp"]
    for name in good:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(tmp_path / name)
    buf = (tmp_path / "a.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(buf[: len(buf) // 2])
    (tmp_path / "text.jpg").write_text("this is not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    ds = FolderDataset(tmp_path)
    assert len(ds) == 6
    with caplog.at_level(logging.WARNING):
        atlas = scan(random_net(), ds, ["relu1_1"], k=5, image_size=16, batch_size=2)
    assert atlas.n_images == 3 and atlas.meta["n_skipped"] == 3
    assert sorted(atlas.meta["skipped"]) == ["empty.png", "text.jpg", "truncated.png"]
    assert sorted(ds.skipped) == ["empty.png", "text.jpg", "truncated.png"]
    assert len(ds.skip_log) == 3 and all(":" in line for line in ds.skip_log)
    assert sum("skipping unreadable image" in r.message for r in caplog.records) == 3
    scanned = {ds.files[i] for i in atlas.images["relu1_1"].ravel() if i >= 0}
    assert scanned == set(good)
    assert atlas.complete
    again = scan(random_net(), ds, ["relu1_1"], k=5, image_size=16, batch_size=4)
    assert again.meta["n_skipped"] == 3 and len(ds.skipped) == 3  # counted per scan, named once


def test_stop_returns_the_partial_atlas():
    net, ds = random_net(), random_images(12, 20)
    seen = []

    def callback(p):
        seen.append((p.task, p.step, p.total))
        return p.step >= 4  # stop after the first batch

    atlas = scan(net, ds, ["relu1_1"], k=3, image_size=20, batch_size=4, callback=callback)
    assert seen == [("scan", 0, 12), ("scan", 4, 12)]
    assert not atlas.complete and atlas.n_images == 4 and atlas.meta["end"] == 4
    assert atlas.images["relu1_1"].max() < 4
    stop = threading.Event()
    stop.set()
    empty = scan(net, ds, ["relu1_1"], k=3, image_size=20, stop=stop)
    assert empty.n_images == 0 and empty.top("relu1_1", 0) == []


def test_bad_arguments_raise_value_error():
    net, ds = random_net(), random_images(4, 20)
    with pytest.raises(ValueError, match="unknown layer"):
        scan(net, ds, ["relu9_9"])
    with pytest.raises(ValueError, match="k must"):
        scan(net, ds, ["relu1_1"], k=0)
    with pytest.raises(ValueError, match="range"):
        scan(net, ds, ["relu1_1"], start=3, end=9)
    atlas = scan(net, ds, ["relu1_1"], k=2, image_size=20)
    with pytest.raises(ValueError, match="unit must be"):
        atlas.top("relu1_1", 4)
    with pytest.raises(ValueError, match="no layer"):
        atlas.top("relu2_1", 0)


# ---------------------------------------------------------------- files and the cache


def test_save_load_round_trip(tmp_path):
    net, ds = random_net(), random_images(6, 20)
    atlas = scan(net, ds, ["relu1_1", "relu2_1"], k=3, image_size=20)
    path = atlas.save(tmp_path / "atlas.npz")
    back = Atlas.load(path)
    assert_same_atlas(back, atlas)
    assert back.meta == json.loads(json.dumps(atlas.meta))
    assert back.top("relu2_1", 1) == atlas.top("relu2_1", 1)
    assert back.meta["format_version"] == P.FORMAT_VERSION
    assert P.read_meta(path)["layers"] == ["relu1_1", "relu2_1"]
    # Tensor data cannot be re-opened from a spec: pass it.
    assert [p.size for p in back.patches("relu1_1", 0, ds)] == [(3, 3)] * 3
    (tmp_path / "junk.npz").write_bytes(b"not an atlas")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])
    for bad in ("junk.npz", "cut.npz"):
        with pytest.raises(ValueError, match="not a teachkit atlas"):
            Atlas.load(tmp_path / bad)
    with pytest.raises(FileNotFoundError):
        Atlas.load(tmp_path / "missing.npz")
    newer = Atlas(dict(atlas.meta, format_version=P.FORMAT_VERSION + 1), atlas.values, atlas.images,
                  atlas.ys, atlas.xs)
    newer.save(tmp_path / "newer.npz")
    with pytest.raises(ValueError, match="newer"):
        Atlas.load(tmp_path / "newer.npz")
    other = random_images(6, 20, seed=9)
    with pytest.raises(ValueError, match="not the one"):
        back.patches("relu1_1", 0, other)


@pytest.fixture
def scan_calls(monkeypatch):
    """A list that grows by one on every scan get_atlas starts."""
    calls = []
    real_scan = P.scan
    monkeypatch.setattr(P, "scan", lambda *args, **kw: calls.append(1) or real_scan(*args, **kw))
    return calls


def test_cache_hit_does_not_rescan(tmp_path, monkeypatch, scan_calls):
    calls = scan_calls
    net, ds = random_net(), random_images(6, 20)
    kw = dict(k=3, image_size=20, cache_dir=tmp_path)
    first = get_atlas(ds, net, ["relu1_1", "relu2_1"], **kw)
    assert len(calls) == 1 and first.path is not None and first.path.parent == tmp_path
    again = get_atlas(ds, net, ["relu2_1", "relu1_1"], **kw)
    assert len(calls) == 1
    assert_same_atlas(again, first)
    fewer = get_atlas(ds, net, ["relu2_1"], **kw)  # a superset in the cache answers
    assert len(calls) == 1 and fewer.layers == ["relu2_1"]
    np.testing.assert_array_equal(fewer.values["relu2_1"], first.values["relu2_1"])
    assert fewer.patches("relu2_1", 0)  # the in-memory dataset is attached
    get_atlas(ds, net, ["relu1_1"], **{**kw, "k": 2})  # another k: a new scan
    assert len(calls) == 2
    get_atlas(random_images(6, 20, seed=4), net, ["relu1_1"], **kw)  # other images
    assert len(calls) == 3
    get_atlas(ds, random_net(seed=11), ["relu1_1"], **kw)  # other weights
    assert len(calls) == 4
    monkeypatch.setenv("TEACHKIT_CACHE", str(tmp_path / "env"))
    assert P.default_cache_dir() == tmp_path / "env" / "atlases"


def test_two_threads_asking_at_once_scan_once(tmp_path, scan_calls):
    calls = scan_calls
    net, ds = random_net(), random_images(6, 20)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        get_atlas(ds, net, ["relu1_1"], k=3, image_size=20, cache_dir=tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2
    assert_same_atlas(results[0], results[1])


def _rewrite_meta(path, **changes):
    """Save the atlas at ``path`` again with its metadata changed (None: key removed)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, what", [
    (dict(layers=5), "'layers' is 5"),
    (dict(rf=None), "lacks 'rf'"),
    (dict(rf={"relu1_1": [3, 1, 0.0, 3, 1, 0.0]}), "no receptive field for layer 'relu2_1'"),
    (dict(k="3"), "'k' is '3'"),
    (dict(complete="yes"), "'complete' is 'yes'"),
    (dict(channels={"relu1_1": 4, "relu2_1": 7}), "shape"),
])
def test_malformed_cached_atlas_is_refused_or_rebuilt(tmp_path, scan_calls, changes, what):
    calls = scan_calls
    net, ds = random_net(), random_images(6, 20)
    kw = dict(k=3, image_size=20, cache_dir=tmp_path)
    good = get_atlas(ds, net, ["relu1_1", "relu2_1"], **kw)
    _rewrite_meta(good.path, **changes)
    # read directly: one ValueError naming the file (read_meta does not read the arrays)
    for read in (Atlas.load,) if what == "shape" else (Atlas.load, P.read_meta):
        with pytest.raises(ValueError) as err:
            read(good.path)
        assert str(good.path) in str(err.value) and what in str(err.value)
    again = get_atlas(ds, net, ["relu1_1", "relu2_1"], **kw)  # through the cache: ignored and rebuilt
    assert len(calls) == 2
    assert_same_atlas(again, good)
    assert Atlas.load(good.path).meta["layers"] == ["relu1_1", "relu2_1"]  # the bad file was replaced


def test_cli_names_a_malformed_atlas_file(tmp_path, capsys):
    from teachkit.cli import main

    net, ds = random_net(), random_images(4, 20)
    path = scan(net, ds, ["relu1_1"], k=2, image_size=20).save(tmp_path / "bad.npz")
    _rewrite_meta(path, layers=5)
    assert main(["patches", "overview", str(path), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'layers' is 5" in err and len(err.strip().splitlines()) == 1


def _rewrite_arrays(path, meta_text=None, **arrays):
    """Save the atlas at ``path`` again with raw metadata text and/or some arrays replaced."""
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    if meta_text is not None:
        stored["meta"] = np.array(meta_text)
    stored.update(arrays)
    np.savez_compressed(path, **stored)


def _hostile_files(tmp_path):
    """name -> (a malformed atlas file, the words of its problem): the four of issue 17 and a zip bomb."""
    net, ds = random_net(), random_images(4, 20)
    good = scan(net, ds, ["relu1_1"], k=2, image_size=20)
    meta = json.dumps(good.meta)
    files = {}

    def make(name, problem, meta_changes=None, meta_text=None, **arrays):
        path = good.save(tmp_path / f"{name}.npz")
        if meta_changes:
            _rewrite_meta(path, **meta_changes)
        if meta_text is not None or arrays:
            _rewrite_arrays(path, meta_text, **arrays)
        files[name] = (path, problem)

    make("nested", "nested too deeply", meta_text=meta[:-1] + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}")
    make("rf_huge", "receptive field of layer 'relu1_1' is out of range",
         meta_changes=dict(rf={"relu1_1": [1e300, 1, 0.0, 3, 1, 0.0]}))
    images = good.images["relu1_1"].copy()
    images[1, 0] = 10 ** 12
    make("index_huge", "image index 1000000000000", L0_images=images)
    make("size_huge", "image_size=1000000", meta_changes=dict(image_size=10 ** 6))
    ys = good.ys["relu1_1"].copy()
    ys[0, 0] = 99
    make("position_out", "outside its 20×20 feature map", L0_ys=ys)
    make("bomb", "larger than its metadata allows", L0_values=np.zeros((4000, 4000), np.float32))
    return files


def test_malformed_atlas_files_give_one_error_naming_the_file(tmp_path):
    from teachkit.atlas import AtlasError

    for name, (path, problem) in _hostile_files(tmp_path).items():
        readers = (Atlas.load,) if name in ("index_huge", "position_out", "bomb") else (Atlas.load, P.read_meta)
        for read in readers:
            with pytest.raises(AtlasError) as err:
                read(path)
            assert str(path) in str(err.value) and problem in str(err.value), (name, str(err.value))
            zh = err.value.text("zh")  # the same error in the lecture's language, same file named
            assert str(path) in zh and "不是有效的" in zh and "is not" not in zh, (name, zh)


def test_cli_names_each_hostile_atlas_file_in_one_line(tmp_path, capsys):
    from teachkit.cli import main

    for name, (path, problem) in _hostile_files(tmp_path).items():
        assert main(["patches", "overview", str(path), "-o", str(tmp_path / "o.png")]) == 2, name
        err = capsys.readouterr().err
        assert str(path) in err and problem in err and len(err.strip().splitlines()) == 1, (name, err)


def test_scan_refuses_an_image_size_above_the_limit():
    with pytest.raises(ValueError, match="above the limit"):
        scan(random_net(), random_images(2, 20), ["relu1_1"], image_size=P.MAX_IMAGE_SIZE + 1)


def _atlases_in(folder):
    return sorted(p.name.split("_")[0] for p in folder.glob("*.npz"))


def test_the_cache_keeps_the_most_recently_used_atlases(tmp_path):
    """One atlas per dataset ever scanned, bounded: the least recently *used* goes first."""
    import time

    net = random_net()
    sets = {name: TensorDataset(torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(i)), name=name)
            for i, name in enumerate(["a", "b", "c", "d"])}
    kw = dict(layers=["relu1_1"], k=2, image_size=20, cache_dir=tmp_path, cache_keep=2)
    get_atlas(sets["a"], net, **kw)
    time.sleep(0.05)
    get_atlas(sets["b"], net, **kw)
    assert _atlases_in(tmp_path) == ["a", "b"]
    time.sleep(0.05)
    assert get_atlas(sets["a"], net, **kw).path is not None  # a cache hit: 'a' is used again
    time.sleep(0.05)
    get_atlas(sets["c"], net, **kw)
    assert _atlases_in(tmp_path) == ["a", "c"]  # 'b', used longest ago, was deleted
    time.sleep(0.05)
    get_atlas(sets["d"], net, **kw)
    assert _atlases_in(tmp_path) == ["c", "d"]
    # a file that get_atlas did not name is never touched; nor is the one just written
    (tmp_path / "mine.npz").write_bytes(b"x")
    assert P.prune_cache(tmp_path, keep=0, spare=tmp_path / [p.name for p in tmp_path.glob("d_*.npz")][0])
    assert sorted(p.name.split("_")[0] for p in tmp_path.glob("*.npz")) == ["d", "mine.npz"]


def test_lock_files_are_bounded(tmp_path):
    net = random_net()
    for i in range(40):
        ds = TensorDataset(torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(i)), name=f"s{i}")
        get_atlas(ds, net, ["relu1_1"], k=1, image_size=20, cache_dir=tmp_path, cache_keep=5)
    locks = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert 0 < len(locks) <= P.LOCK_BUCKETS
    assert len(list(tmp_path.glob("*.npz"))) == 5


def test_the_cache_lock_is_a_file_lock(tmp_path):
    """While the lock file is held (as by another process), get_atlas waits for it."""
    import filelock

    net, ds = random_net(), random_images(6, 20)
    key = P.cache_key(net.name, net.weights_id, ds.fingerprint, 20, 3, ["relu1_1"], 1, P.DEFAULT_MIN_INSIDE,
                      P.DEFAULT_PER_IMAGE)
    held = filelock.FileLock(str(P._lock_path(tmp_path, key)))
    done = threading.Event()
    with held:
        t = threading.Thread(target=lambda: (get_atlas(ds, net, ["relu1_1"], k=3, image_size=20,
                                                       cache_dir=tmp_path), done.set()))
        t.start()
        t.join(0.5)
        assert not done.is_set()  # blocked on the lock
    t.join()
    assert done.is_set() and len(list(tmp_path.glob("*.npz"))) == 1


def test_stopped_scan_is_not_cached(tmp_path):
    net, ds = random_net(), random_images(8, 20)
    partial = get_atlas(ds, net, ["relu1_1"], k=3, image_size=20, cache_dir=tmp_path, batch_size=4,
                        callback=lambda p: p.step >= 4)
    assert not partial.complete and partial.n_images == 4
    assert not list(tmp_path.glob("*.npz"))
    full = get_atlas(ds, net, ["relu1_1"], k=3, image_size=20, cache_dir=tmp_path, batch_size=4)
    assert full.complete and full.n_images == 8 and len(list(tmp_path.glob("*.npz"))) == 1


def test_a_stopped_scan_is_resumed_where_it_stopped(tmp_path):
    net, ds = random_net(), random_images(12, 20, sources=PHOTOS + [11])
    kw = dict(k=3, image_size=20, batch_size=4, cache_dir=tmp_path, resume=True)
    first = get_atlas(ds, net, ["relu1_1", "relu2_1"], callback=lambda p: p.step >= 4, **kw)
    assert not first.complete and first.meta["end"] == 4 and len(list(tmp_path.glob("partial_*.npz"))) == 1
    seen = []
    again = get_atlas(ds, net, ["relu1_1", "relu2_1"], callback=lambda p: seen.append((p.step, p.total)), **kw)
    assert seen[0] == (0, 8) and again.complete and again.n_images == 12  # only the 8 images left were scanned
    assert not list(tmp_path.glob("partial_*.npz")) and again.meta["stopped"] == ""
    assert_same_atlas(again, scan(net, ds, ["relu1_1", "relu2_1"], k=3, image_size=20, batch_size=4))


def test_capped_and_uncapped_atlases_are_cached_apart(tmp_path, scan_calls):
    net, ds = random_net(), random_images(6, 20, sources=[0, 0, 0, 3, 3, 5])
    kw = dict(k=3, image_size=20, cache_dir=tmp_path)
    free = get_atlas(ds, net, ["relu1_1"], per_image=0, **kw)
    capped = get_atlas(ds, net, ["relu1_1"], **kw)
    assert len(scan_calls) == 2 and (free.meta["per_image"], capped.meta["per_image"]) == (0, P.DEFAULT_PER_IMAGE)
    assert capped.path != free.path and (capped.sources["relu1_1"] >= 0).all()
    assert all(len(set(row)) == 3 for row in capped.sources["relu1_1"])  # three photos, one patch each
    # a file of format 1 (no cap, no sources) answers only an uncapped request
    with np.load(free.path) as z:
        arrays = {key: z[key] for key in z.files if not key.endswith("_sources")}
    meta = {key: v for key, v in json.loads(str(arrays["meta"])).items() if key != "per_image"}
    arrays["meta"] = np.array(json.dumps({**meta, "format_version": 1}))
    np.savez(free.path, **arrays)
    old = Atlas.load(free.path)
    assert old.meta["per_image"] == 0 and (old.sources["relu1_1"] == old.images["relu1_1"]).all()
    capped.path.unlink()
    assert get_atlas(ds, net, ["relu1_1"], **kw).meta["per_image"] == 1 and len(scan_calls) == 3
    assert get_atlas(ds, net, ["relu1_1"], per_image=0, **kw).path == free.path and len(scan_calls) == 3


# ---------------------------------------------------------------- units and figures


def test_select_units():
    net, ds = random_net(seed=2), random_images(8, 20)
    atlas = scan(net, ds, ["relu2_1"], k=4, image_size=20)
    active = select_units(atlas, "relu2_1", "most_active", 3)
    means = atlas.mean_top("relu2_1")
    assert active == list(np.argsort(-means, kind="stable")[:3])
    assert select_units(atlas, "relu2_1", "index", 2, start=3) == [3, 4]
    varied = select_units(atlas, "relu2_1", "most_varied", 3)
    assert len(varied) == len(set(varied)) and all(0 <= u < 5 for u in varied)
    with pytest.raises(ValueError, match="how must be"):
        select_units(atlas, "relu2_1", "prettiest", 3)


def test_figures_name_the_unit_and_its_receptive_field():
    from teachkit.viz import activation_map_figure, layer_overview_figure, unit_figure

    imgs = grey_images(5)
    plant(imgs[3], 10, 10, (1.0, 0, 0))
    ds = TensorDataset(imgs)
    net = red_detector()
    atlas = scan(net, ds, ["relu1_1", "relu2_1"], k=4, image_size=32)
    fig = unit_figure(atlas, ds, "relu1_1", 0)
    assert fig._suptitle.get_text() == "unit = channel 0 of layer relu1_1, receptive field 3×3 px"
    assert len([ax for ax in fig.axes if ax.images]) == 4
    fig = activation_map_figure(atlas, ds, "relu1_1", 0, net)
    assert "channel 0 of layer relu1_1" in fig._suptitle.get_text()
    am = atlas.activation_map("relu1_1", 0, ds, net)
    assert am.image_index == 3 and am.peak == (10, 10) and am.box == (9, 9, 12, 12)
    with pytest.raises(ValueError, match="weights"):
        atlas.activation_map("relu1_1", 0, ds, random_net())
    fig = layer_overview_figure(atlas, ds, n_units=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["relu1_1\nreceptive field\n3×3 px", "relu2_1\nreceptive field\n8×8 px"]


# ---------------------------------------------------------------- the shipped sample index


def test_shipped_sample_index_agrees_with_a_fresh_scan_of_some_images(vgg19, tmp_path, monkeypatch, one_thread):
    """A first visit loads the shipped index (no scan), and for a subset of the images the
    index agrees with their activations computed here: each kept value is the image's best
    activation among the allowed positions (independent formula), found at the kept position, and
    an image a unit does not keep never beats that unit's k-th value, unless its photo already gave
    the unit its one patch, and a better one."""
    def no_scan(*args, **kw):
        raise AssertionError("the shipped index was not used: it does not match this installation "
                             "(rebuild it: see teachkit/data/README.md)")

    monkeypatch.setattr(P, "scan", no_scan)
    atlas = get_atlas("sample", vgg19, cache_dir=tmp_path)
    assert atlas.path.parent == P.shipped_dir() and atlas.complete
    assert atlas.layers == list(P.DEFAULT_LAYERS) and atlas.image_size == P.DEFAULT_IMAGE_SIZE
    ds = atlas.open_dataset()
    assert atlas.meta["per_image"] == P.DEFAULT_PER_IMAGE == 1
    photo = np.array([ds.source(i) for i in range(len(ds))])
    for n in atlas.layers:  # nine patches, nine photos
        np.testing.assert_array_equal(atlas.sources[n], photo[atlas.images[n]])
        assert all(len(set(row)) == atlas.k for row in atlas.sources[n])
    kept = np.concatenate([atlas.images[n].ravel() for n in atlas.layers])
    ids, counts = np.unique(kept, return_counts=True)
    never = sorted(set(range(len(ds))) - set(ids.tolist()))
    subset = sorted(ids[np.argsort(-counts, kind="stable")[:5]].tolist() + never[:1] + [len(ds) // 2])
    size = atlas.image_size
    batch = P._pils_to_batch([ds.square(i, size) for i in subset], torch.device("cpu"))
    with torch.no_grad():
        feats = vgg19.extract(batch, atlas.layers)
    checked = 0
    for layer in atlas.layers:
        a = feats[layer].numpy()
        n, c, h, w = a.shape
        a = np.where(allowed_positions(vgg19, layer, h, w, size), a, -np.inf)
        best = a.reshape(n, c, -1).max(-1)
        vals, imgs, ys, xs = atlas.values[layer], atlas.images[layer], atlas.ys[layer], atlas.xs[layer]
        tol = dict(rtol=2e-3, atol=2e-3)  # another CPU may round differently
        for j, index in enumerate(subset):
            ch, slot = np.nonzero(imgs == index)
            np.testing.assert_allclose(vals[ch, slot], a[j, ch, ys[ch, slot], xs[ch, slot]], **tol)
            np.testing.assert_allclose(vals[ch, slot], best[j, ch], **tol)
            missing = ~(imgs == index).any(1)
            mine = atlas.sources[layer] == photo[index]  # the patch its photo gave, if any
            bar = np.where(mine.any(1), np.where(mine, vals, np.inf).min(1), vals[:, -1])[missing]
            assert (best[j, missing] <= bar + 2e-3 * np.abs(bar) + 2e-3).all(), (layer, index)
            checked += len(ch)
    assert checked > 100
    patches = atlas.patches("relu5_1", 0)  # cut from the dataset's images
    assert len(patches) == 9 and patches[0].size == (156, 156)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for i in range(3):
        arr = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"img{i}.png")
    (root / "broken.jpg").write_text("not a jpeg")
    return root


def test_cli_scan_show_overview_end_to_end(image_folder, tmp_path, monkeypatch, capsys):
    from teachkit.cli import main

    monkeypatch.setenv("TEACHKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "atlas.npz"
    rc = main(["patches", "scan", "--data", str(image_folder), "--layers", "relu1_1,relu2_1", "--k", "3",
               "--image-size", "32", "--batch-size", "2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "3 images at 32 px" in text and "broken.jpg" in text
    atlas = Atlas.load(out)
    assert atlas.layers == ["relu1_1", "relu2_1"] and atlas.meta["dataset_spec"] == str(image_folder)
    assert list((tmp_path / "cache" / "atlases").glob("*.npz"))  # cached as well

    rc = main(["patches", "show", str(out), "--layer", "relu2_1", "--unit", "5",
               "-o", str(tmp_path / "g.png"), "--map", str(tmp_path / "m.png")])
    assert rc == 0 and "channel 5 of layer relu2_1" in capsys.readouterr().out
    assert Image.open(tmp_path / "g.png").size[0] > 100 and (tmp_path / "m.png").stat().st_size > 0
    rc = main(["patches", "overview", str(out), "-o", str(tmp_path / "o.png"), "--units", "2"])
    assert rc == 0 and (tmp_path / "o.png").stat().st_size > 0

    # Bad input: one line on stderr naming the problem, exit code 2, and what was made before is kept.
    made = {path: path.read_bytes() for path in (out, tmp_path / "g.png")}
    for command, problem in (
            (["show", str(out), "--layer", "relu9_1", "--unit", "0", "-o", str(tmp_path / "g.png")], "no layer 'relu9_1'"),
            (["show", str(out), "--layer", "relu2_1", "--unit", "128", "-o", str(tmp_path / "g.png")], "127"),
            (["scan", "--data", str(image_folder), "--layers", "relu9_1", "-o", str(out)], "relu9_1"),
            (["scan", "--data", str(image_folder), "--per-image", "-1", "-o", str(out)], "--per-image")):
        assert main(["patches", *command]) == 2
        err = capsys.readouterr().err.strip()
        assert problem in err and len(err.splitlines()) == 1, err
    assert all(path.read_bytes() == data for path, data in made.items())
    # --map naming the same file as -o would replace the grid with the map: refused, nothing written.
    same = tmp_path / "same.png"
    assert main(["patches", "show", str(out), "--layer", "relu2_1", "--unit", "5", "-o", str(same),
                 "--map", str(tmp_path / "." / "same.png")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--map" in err and not same.exists()
    assert main(["patches", "show", str(tmp_path / "nope.npz"), "--layer", "relu1_1", "--unit", "0",
                 "-o", str(tmp_path / "x.png")]) == 2
    assert "no atlas file" in capsys.readouterr().err
    moved = Atlas.load(out)
    moved.meta["dataset_spec"] = str(tmp_path / "gone")
    moved.save(tmp_path / "moved.npz")
    assert main(["patches", "overview", str(tmp_path / "moved.npz"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "gone" in err and "--data" in err and len(err.strip().splitlines()) == 1
    assert main(["patches", "overview", str(tmp_path / "moved.npz"), "-o", str(tmp_path / "y.png"),
                 "--data", str(image_folder)]) == 0


def test_cli_merge_speaks_the_chosen_language(tmp_path, capsys):
    from teachkit.cli import main

    net, ds = random_net(seed=5), random_images(6, 20)
    kw = dict(layers=["relu1_1"], k=2, image_size=20)
    a = scan(net, ds, start=0, end=3, **kw).save(tmp_path / "a.npz")
    b = scan(net, ds, start=3, end=6, **kw).save(tmp_path / "b.npz")
    assert main(["--lang", "zh", "patches", "merge", str(a), str(b), "-o", str(tmp_path / "ab.npz")]) == 0
    out = capsys.readouterr().out
    assert "第 0..6 张（共 6 张）" in out and f"已保存到 {tmp_path / 'ab.npz'}" in out and "saved" not in out
    assert main(["--lang", "en", "patches", "merge", str(a), str(b), "-o", str(tmp_path / "ab.npz")]) == 0
    assert "images 0..6 of 6" in capsys.readouterr().out


def test_the_unit_label_speaks_the_asked_language_and_english_by_default():
    from teachkit.messages import catalogue, using_language

    atlas = scan(red_detector(), TensorDataset(grey_images(2)), ["relu1_1"], k=1, image_size=32)
    assert atlas.unit_label("relu1_1", 0) == "unit = channel 0 of layer relu1_1, receptive field 3×3 px"
    zh = catalogue("zh")["viz.unit_label"].format(unit=0, layer="relu1_1", h=3, w=3)
    assert atlas.unit_label("relu1_1", 0, "zh") == zh
    with using_language("zh"):  # None: the process's language (what the CLI prints)
        assert atlas.unit_label("relu1_1", 0, None) == zh
        assert atlas.unit_label("relu1_1", 0) != zh  # figures ask for their own language
    with pytest.raises(ValueError) as info:
        atlas.activation_map("relu1_1", 0, TensorDataset(grey_images(2)), random_net())
    assert info.value.msg_id == "atlas.other_weights"
