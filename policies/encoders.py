"""Image and observation encoders (pure ``torch.nn``).

Observations are flat dicts (docs/CONTRACTS.md): ``"state"`` is a ``(D,)`` float32 proprio
vector, and every entry with ``dtype == uint8`` and ``ndim == 3`` is an ``(H, W, 3)`` camera
image. :class:`ObservationEncoder` turns a batch of such dicts (tensors with a leading batch
dim) into one feature vector per sample: one image encoder per camera (conv backbone,
learned spatial embedding, bottleneck) concatenated with the state.

Backbones: a small DrQ-style conv net, a ResNet-10/18 whose pretrained weights come from a
LOCAL safetensors file (torchvision key names), or hil-serl's ResNet-10 loading hil-serl's own
local weight file (:mod:`policies.hilserl_resnet`); nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ObsSpec = dict[str, tuple[tuple[int, ...], str]]  # key -> (shape, numpy dtype name)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def register_imagenet_stats(module: nn.Module) -> None:
    """Give ``module`` the ImageNet ``mean``/``std`` buffers (``(1, 3, 1, 1)``, not saved) that a
    pretrained backbone normalises its [0, 1] input with."""
    module.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)


def is_image(shape: tuple[int, ...], dtype: Any) -> bool:
    """The contract's image test: uint8 with 3 dims ``(H, W, C)``."""
    return np.dtype(dtype) == np.uint8 and len(shape) == 3


def obs_spec_from_space(space: Any) -> ObsSpec:
    """ObsSpec from a ``gymnasium.spaces.Dict`` (or a single ``Box``, keyed ``"state"``)."""
    spaces = getattr(space, "spaces", None)
    if spaces is None:
        return {"state": (tuple(space.shape), np.dtype(space.dtype).name)}
    return {k: (tuple(s.shape), np.dtype(s.dtype).name) for k, s in spaces.items()}


def obs_spec_from_example(obs: Mapping[str, Any]) -> ObsSpec:
    """ObsSpec from one (unbatched) observation dict of numpy arrays."""
    return {k: (tuple(np.shape(v)), np.asarray(v).dtype.name) for k, v in obs.items()}


def image_keys(spec: ObsSpec) -> list[str]:
    """Sorted camera keys of an ObsSpec."""
    return sorted(k for k, (shape, dt) in spec.items() if is_image(shape, dt))


def random_shift(images: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ random-shift augmentation: replicate-pad by ``pad`` px, crop back at a random offset.

    Args:
        images: ``(B, C, H, W)`` float tensor.
        pad: maximum shift in pixels.

    Returns:
        ``(B, C, H, W)``, each sample shifted by its own integer offset in ``[-pad, pad]``.
    """
    if pad <= 0:
        return images
    b, c, h, w = images.shape
    dev = images.device
    # Integer shifts, exact pixels, no interpolation and no host sync. The padding is never
    # built: a replicate-padded crop reads pixel (clamp(i + dy - pad), clamp(j + dx - pad)), so
    # one gather over each image plane does it (2-5x faster on CPU than padding, then gathering
    # through a channels-last permute; this is a third of a cached-feature image update).
    dx = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    dy = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    rows = (torch.arange(h, device=dev)[None, :] + dy[:, None] - pad).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=dev)[None, :] + dx[:, None] - pad).clamp_(0, w - 1)  # (B, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(images.reshape(b, c, h * w), 2, index).view(b, c, h, w)


@dataclasses.dataclass
class EncoderConfig:
    """How images are encoded (the ``policy.encoder`` / ``learner.encoder`` config node).

    Attributes:
        backbone: ``"small_conv"``, ``"resnet10"`` or ``"resnet18"`` (torchvision layout, BatchNorm),
            or ``"hilserl_resnet10"``: hil-serl's ImageNet ResNet-10 (GroupNorm, flax padding;
            :mod:`policies.hilserl_resnet`), which loads hil-serl's own ``resnet10_params.pkl``.
        pretrained: local file of backbone weights, or None: safetensors with torchvision key
            names for ``resnet10``/``resnet18``; hil-serl's ``.pkl`` (or ``.npz``/``.safetensors``)
            for ``hilserl_resnet10``. Never downloaded.
        freeze_backbone: keep the backbone fixed (eval mode, no grads).
        channels: width of the small conv net / base width of the ResNet.
        pooling: ``"spatial_embedding"`` (hil-serl's learned spatial embedding) or ``"avg"``.
        num_spatial_features: learned kernels of the spatial embedding.
        latent_dim: bottleneck width per camera.
        shared_across_cameras: one encoder for all cameras instead of one per camera.
        augment_pad: DrQ random-shift pad in px during training (0 disables).
        image_size: resize images to this square size first (None keeps the camera's size).
        backbone_from: ``"base"``: each camera's backbone starts as the frozen BC base policy's
            (same backbone, channels and image size): the conv trunk that BC trained on the
            task's own images, so a frozen backbone with cached features sees what the base sees,
            and the actor and learner, loading the same base file, compute the same features.
            None: random init or ``pretrained``.
    """

    backbone: str = "small_conv"
    pretrained: str | None = None
    freeze_backbone: bool = False
    channels: int = 32
    pooling: str = "spatial_embedding"
    num_spatial_features: int = 8
    latent_dim: int = 64
    shared_across_cameras: bool = False
    augment_pad: int = 4
    image_size: int | None = None
    backbone_from: str | None = None

    def __post_init__(self) -> None:
        if self.backbone not in ("small_conv", "resnet10", "resnet18", "hilserl_resnet10"):
            raise ValueError(f"unknown backbone {self.backbone!r}")
        if self.pooling not in ("spatial_embedding", "avg"):
            raise ValueError(f"unknown pooling {self.pooling!r}")
        if self.pretrained is not None and self.backbone == "small_conv":
            raise ValueError("pretrained weights are only supported for resnet backbones")
        if self.backbone_from not in (None, "base"):
            raise ValueError(f"encoder.backbone_from is {self.backbone_from!r}; expected null or 'base'")


class SmallConvEncoder(nn.Module):
    """DrQ-style conv net: one stride-2 and three stride-1 3x3 convs with ReLU.

    Input ``(B, 3, H, W)`` in [0, 1]; output ``(B, channels, H', W')``.
    """

    def __init__(self, in_channels: int = 3, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, stride=2), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, C, H', W')`` of images ``(B, 3, H, W)``."""
        return self.net(x - 0.5)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + idt)


class ResNetEncoder(nn.Module):
    """ResNet-10 (blocks 1,1,1,1) or ResNet-18 (2,2,2,2) trunk without the classifier head.

    Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ...), so
    torchvision's ImageNet weights load once converted to safetensors. Input ``(B, 3, H, W)``
    in [0, 1] (ImageNet-normalised inside); output ``(B, 8*width, H/32, W/32)``.

    Args:
        depth: 10 or 18.
        width: channels of the first stage (64 for the standard nets).
        pretrained: local safetensors file with backbone weights; never downloaded.
    """

    def __init__(self, depth: int = 18, width: int = 64, pretrained: str | None = None) -> None:
        super().__init__()
        blocks = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}[depth]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stage = [_BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            cin = cout
        self.out_channels = cin
        register_imagenet_stats(self)
        if pretrained:
            self.load_local_weights(pretrained)

    def load_local_weights(self, path: str) -> None:
        """Load backbone weights from a local safetensors file; ``fc.*`` keys are ignored."""
        from safetensors.torch import load_file

        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"pretrained backbone weights {p} not found; hilr never downloads weights: "
                "convert torchvision's resnet weights to safetensors once and point "
                "encoder.pretrained at the file, or set encoder.pretrained=null"
            )
        state = {k: v for k, v in load_file(str(p)).items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"weights {p} do not fit this ResNet: missing={missing[:5]} unexpected={unexpected[:5]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B, C, h, w)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SpatialEmbedding(nn.Module):
    """hil-serl's learned spatial embedding: per-channel learned spatial kernels.

    ``out[b, c, k] = sum_{h,w} x[b, c, h, w] * kernel[c, h, w, k]``, flattened to
    ``(B, C*K)``.
    """

    def __init__(self, channels: int, height: int, width: int, num_features: int = 8) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_features))
        nn.init.xavier_uniform_(self.kernel.view(channels, -1))
        self.out_dim = channels * num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C*K)``."""
        b, c, h, w = x.shape
        # One (K x P) @ (P x B) product per channel: the batch is the wide dimension of each small
        # matmul. 2.4-3.4x faster forward + backward on one CPU thread than einsum's (B x P) @
        # (P x K) per channel (what bmm does with K = 8 outputs), for 512 x 4x4 ResNet maps and
        # 32 x 25x25 small-conv maps alike; the same sums, to float rounding.
        out = torch.bmm(self.kernel.transpose(1, 2), x.reshape(b, c, h * w).permute(1, 2, 0))  # (C, K, B)
        return out.permute(2, 0, 1).reshape(b, c * self.kernel.shape[2])


class ImageEncoder(nn.Module):
    """One camera: backbone -> pooling -> Linear -> LayerNorm -> tanh, ``latent_dim`` features.

    Args:
        cfg: the encoder config.
        image_shape: ``(H, W, C)`` of this camera's uint8 images.
    """

    def __init__(self, cfg: EncoderConfig, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        h, w, c = image_shape
        if cfg.image_size:
            h = w = cfg.image_size
        if cfg.backbone == "small_conv":
            self.backbone: nn.Module = SmallConvEncoder(c, cfg.channels)
        elif cfg.backbone == "hilserl_resnet10":
            from policies.hilserl_resnet import HilSerlResNet10

            self.backbone = HilSerlResNet10(cfg.channels, cfg.pretrained)
        else:
            self.backbone = ResNetEncoder(int(cfg.backbone[6:]), cfg.channels, cfg.pretrained)
        self.backbone.eval()  # shape probe with one image: BatchNorm needs eval mode
        with torch.no_grad():
            fh, fw = self.backbone(torch.zeros(1, c, h, w)).shape[-2:]
        self.backbone.train(not cfg.freeze_backbone)  # a frozen backbone never updates its BatchNorm statistics
        ch = self.backbone.out_channels
        self.feature_shape = (int(ch), int(fh), int(fw))  # backbone output per image (C, h, w)
        # DrQ's pixel shift at feature-map scale, for cached features (0 when a cell is too coarse)
        self.feature_shift = int(round(cfg.augment_pad * fh / h))
        if cfg.pooling == "spatial_embedding":
            self.pool: nn.Module = SpatialEmbedding(ch, fh, fw, cfg.num_spatial_features)
            pooled = self.pool.out_dim
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            pooled = ch
        self.head = nn.Sequential(nn.Linear(pooled, cfg.latent_dim), nn.LayerNorm(cfg.latent_dim), nn.Tanh())
        if cfg.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.out_dim = cfg.latent_dim

    def train(self, mode: bool = True) -> "ImageEncoder":
        """Train mode, except a frozen backbone stays in eval (BatchNorm statistics fixed)."""
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()
        return self

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 -> ``(B, 3, S, S)`` float in [0, 1], resized to ``image_size``."""
        # one float copy of the batch, scaled in place (copy=True: a float input is never modified)
        x = images.permute(0, 3, 1, 2).to(torch.float32, copy=True).div_(255.0)
        if self.cfg.image_size and x.shape[-1] != self.cfg.image_size:
            x = F.interpolate(x, size=(self.cfg.image_size,) * 2, mode="bilinear", align_corners=False)
        return x

    @torch.no_grad()
    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen-backbone features to cache in replay: ``(B, H, W, 3)`` uint8 -> ``(B, C, h, w)``
        float16 (:attr:`feature_shape`), computed once per frame instead of once per sampled batch.

        Raises:
            RuntimeError: the backbone is trained (its features would go stale).
        """
        if not self.cfg.freeze_backbone:
            raise RuntimeError("cached backbone features need encoder.freeze_backbone=true")
        self.backbone.eval()  # whatever mode a caller left: the frozen BatchNorm statistics are used, never moved
        return self.backbone(self._preprocess(images)).to(torch.float16)

    def forward(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """``(B, H, W, 3)`` uint8 (or float in [0, 255]) -> ``(B, latent_dim)`` features.

        A float16 ``(B, C, h, w)`` input is taken as cached :meth:`backbone_features` (frozen
        backbone only): the backbone is skipped and augmentation shifts the feature map by up
        to :attr:`feature_shift` cells (DrQ's pixel shift at feature scale).
        """
        if images.dtype == torch.float16:
            if not self.cfg.freeze_backbone:
                raise RuntimeError("cached backbone features need encoder.freeze_backbone=true")
            feat = images.float()
            return self.head(self.pool(random_shift(feat, self.feature_shift) if augment else feat))
        x = self._preprocess(images)
        if augment:
            x = random_shift(x, self.cfg.augment_pad)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen: its BatchNorm statistics are fixed in every mode
            with torch.no_grad():
                feat = self.backbone(x)
        else:
            feat = self.backbone(x)
        return self.head(self.pool(feat))


class ObservationEncoder(nn.Module):
    """Obs dict -> features: ``[state, image features of each camera (sorted by name)]``.

    Args:
        spec: observation layout (see :func:`obs_spec_from_space`).
        cfg: image encoder config (unused when there are no cameras).
        use_state: include ``obs["state"]`` in the features.
        normalize_state: standardise ``obs["state"]`` with the buffers ``state_mean`` /
            ``state_std`` (set by :meth:`set_state_stats`; identity until then) and clip the
            result to +-``STATE_CLIP``. The residual agent uses it so that a wrench reading
            that varies 100x more than a position does not dominate the critic's input.
    """

    #: standardised state values are clipped to this (a force spike must not saturate the nets)
    STATE_CLIP = 5.0

    def __init__(self, spec: ObsSpec, cfg: EncoderConfig | None = None, use_state: bool = True,
                 normalize_state: bool = False) -> None:
        super().__init__()
        self.cfg = cfg or EncoderConfig()
        self.spec = dict(spec)
        self.image_keys = image_keys(spec)
        self.use_state = use_state and "state" in spec
        self.state_dim = int(np.prod(spec["state"][0])) if self.use_state else 0
        self.encoders = nn.ModuleDict()
        if self.image_keys:
            if self.cfg.shared_across_cameras:
                self.encoders["shared"] = ImageEncoder(self.cfg, spec[self.image_keys[0]][0])
            else:
                for k in self.image_keys:
                    self.encoders[k] = ImageEncoder(self.cfg, spec[k][0])
        self.out_dim = self.state_dim + len(self.image_keys) * (self.cfg.latent_dim if self.image_keys else 0)
        if self.out_dim == 0:
            raise ValueError(f"observation spec {spec} has neither 'state' nor camera images")
        self.normalize_state = bool(normalize_state and self.use_state)
        if self.normalize_state:
            self.register_buffer("state_mean", torch.zeros(self.state_dim))
            self.register_buffer("state_std", torch.ones(self.state_dim))

    @torch.no_grad()
    def set_state_stats(self, mean: Any, std: Any, floor: float = 1e-3) -> None:
        """Store the state standardisation ``(D,)`` (std floored at ``floor``); needs ``normalize_state``."""
        if not self.normalize_state:
            raise RuntimeError("this encoder was built with normalize_state=False")
        mean = torch.as_tensor(np.asarray(mean, np.float32).reshape(-1))
        std = torch.as_tensor(np.maximum(np.asarray(std, np.float32).reshape(-1), floor))
        if mean.shape != self.state_mean.shape or std.shape != self.state_std.shape:
            raise ValueError(f"state stats of shape {tuple(mean.shape)} for a state of {self.state_dim}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("state stats must be finite")
        self.state_mean.copy_(mean)
        self.state_std.copy_(std)

    @torch.no_grad()
    def load_backbones(self, source: "ObservationEncoder", what: str = "the base policy") -> None:
        """Copy each camera's backbone weights from ``source`` (e.g. a BC policy's encoder).

        Raises:
            ValueError: ``source`` lacks one of the cameras, or its backbone has another
                architecture, channels or image size (names the camera and both settings).
        """
        for k in self.image_keys:
            if k not in getattr(source, "image_keys", ()):
                raise ValueError(f"encoder.backbone_from: {what} has no camera {k!r} (it has {list(getattr(source, 'image_keys', []))})")
            dst, src = self.encoder_for(k), source.encoder_for(k)
            if (dst.cfg.backbone, dst.cfg.channels, dst.cfg.image_size) != (src.cfg.backbone, src.cfg.channels, src.cfg.image_size):
                raise ValueError(
                    f"encoder.backbone_from: camera {k!r} of {what} has backbone {src.cfg.backbone} x{src.cfg.channels} "
                    f"at {src.cfg.image_size} px, this encoder {dst.cfg.backbone} x{dst.cfg.channels} at "
                    f"{dst.cfg.image_size} px: set learner.encoder.backbone/channels/image_size to the base's")
            dst.backbone.load_state_dict(src.backbone.state_dict())

    def encoder_for(self, key: str) -> ImageEncoder:
        """The image encoder used for camera ``key``."""
        return self.encoders["shared" if self.cfg.shared_across_cameras else key]

    def cached_spec(self) -> ObsSpec:
        """The replay layout with each camera replaced by its cached backbone features
        (``(C, h, w)`` float16): see :meth:`ImageEncoder.backbone_features`."""
        return {k: ((self.encoder_for(k).feature_shape, "float16") if k in self.image_keys else v)
                for k, v in self.spec.items()}

    def backbone_digest(self) -> bytes:
        """SHA-256 of every camera's backbone weights and buffers (names, dtypes, shapes, values),
        in camera order, hashed from CPU copies (the same on every device): two encoders with
        equal digests compute the same cached features (bit for bit on the same kind of device;
        to float rounding across devices, e.g. a CUDA learner's TF32 convolutions), so features
        made by an actor can be trusted by a learner (``learner.features_from=actor``)."""
        h = hashlib.sha256()
        for k in self.image_keys:
            enc = self.encoder_for(k)
            h.update(f"{k}|{enc.cfg.backbone}|{enc.cfg.channels}|{enc.cfg.image_size}".encode())
            for name, t in enc.backbone.state_dict().items():
                a = t.detach().cpu().contiguous()
                h.update(f"|{name}|{a.dtype}|{tuple(a.shape)}|".encode())
                h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.digest()

    @torch.no_grad()
    def featurize(self, obs: Mapping[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
        """Numpy obs with a leading batch dim -> the same with every camera's images replaced by
        their frozen-backbone features (float16), computed ``batch`` frames at a time."""
        out = dict(obs)
        device = next(self.parameters()).device
        for k in self.image_keys:
            enc, frames = self.encoder_for(k), np.asarray(obs[k])
            out[k] = np.concatenate([
                enc.backbone_features(torch.as_tensor(frames[i:i + batch], device=device)).cpu().numpy()
                for i in range(0, len(frames), batch)]) if len(frames) else np.zeros((0, *enc.feature_shape), np.float16)
        return out

    def forward(self, obs: Mapping[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        """Batched obs dict (``state`` ``(B, D)`` float, images ``(B, H, W, 3)`` uint8) -> ``(B, out_dim)``."""
        parts = []
        if self.use_state:
            state = obs["state"].float().reshape(obs["state"].shape[0], -1)
            if self.normalize_state:
                state = ((state - self.state_mean) / self.state_std).clamp(-self.STATE_CLIP, self.STATE_CLIP)
            parts.append(state)
        for k in self.image_keys:
            parts.append(self.encoder_for(k)(obs[k], augment=augment))
        return torch.cat(parts, dim=-1)


def obs_to_tensors(obs: Mapping[str, Any], device: str | torch.device = "cpu", batched: bool = False) -> dict[str, torch.Tensor]:
    """numpy obs dict -> torch dict on ``device`` (adds a batch dim unless ``batched``).

    Images stay uint8 (4x less host->device traffic); the encoder converts them.
    """
    out = {}
    for k, v in obs.items():
        t = torch.as_tensor(np.asarray(v), device=device)
        out[k] = t if batched else t.unsqueeze(0)
    return out


def mlp(in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, layer_norm: bool = True,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Plain MLP: ``[Linear -> (LayerNorm) -> activation] * len(hidden) -> Linear``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(activation())
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
