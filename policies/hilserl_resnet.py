"""hil-serl's ImageNet-pretrained ResNet-10, in torch, loading hil-serl's own weight file.

hil-serl (and serl) freeze a ResNet-10 pretrained on ImageNet-1K and train only a small head on
its feature maps. Its trunk is not torchvision's: flax ``ResNetEncoder(stage_sizes=(1, 1, 1, 1))``
with GroupNorm (4 groups) instead of BatchNorm and flax's ``SAME`` padding, which pads stride-2
windows asymmetrically (nothing before, one after, on even sizes). :class:`HilSerlResNet10`
reproduces that network exactly, with parameter names that mirror the flax tree
(``conv_init``, ``norm_init``, ``ResNetBlock_<i>.{Conv_0, MyGroupNorm_0, Conv_1, MyGroupNorm_1,
conv_proj, norm_proj}``), so the weights map one to one.

Weights come only from a local file (nothing is downloaded, ever):

* ``resnet10_params.pkl``: hil-serl's release file as it sits in ``~/.serl/`` after a hil-serl
  run (or downloaded once by hand from the serl release page). It is read with a restricted
  unpickler that builds only dicts and numpy arrays and refuses anything else by name;
* ``.npz`` with flattened flax keys (``conv_init/kernel``, ``ResNetBlock_0/Conv_0/kernel``, ...),
  the neutral format for a pickle that holds JAX arrays (convert where JAX is installed; the
  error message prints the one-liner);
* ``.safetensors`` with this module's own parameter names (``save_file(model.state_dict())``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.encoders import register_imagenet_stats

GROUPS = 4
JAX_TO_NPZ = ("python -c \"import pickle, numpy as np; from flax.traverse_util import flatten_dict; "
              "p = pickle.load(open('resnet10_params.pkl', 'rb')); "
              "np.savez('resnet10_params.npz', **{'/'.join(k): np.asarray(v) for k, v in flatten_dict(p).items()})\"")


def same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` as flax/XLA ``SAME`` does: output ``ceil(n / stride)``, the odd pixel
    of padding after, not before."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class _Conv(nn.Conv2d):
    """A bias-free conv with flax ``SAME`` padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))


class _Block(nn.Module):
    """hil-serl's ``ResNetBlock`` (two 3x3 convs, GroupNorm, projection on a shape change)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.Conv_0 = _Conv(cin, cout, 3, stride)
        self.MyGroupNorm_0 = nn.GroupNorm(GROUPS, cout, eps=1e-5)
        self.Conv_1 = _Conv(cout, cout, 3)
        self.MyGroupNorm_1 = nn.GroupNorm(GROUPS, cout, eps=1e-5)
        self.conv_proj = self.norm_proj = None
        if stride != 1 or cin != cout:
            self.conv_proj = _Conv(cin, cout, 1, stride)
            self.norm_proj = nn.GroupNorm(GROUPS, cout, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.MyGroupNorm_0(self.Conv_0(x)))
        y = self.MyGroupNorm_1(self.Conv_1(y))
        if self.conv_proj is not None:
            x = self.norm_proj(self.conv_proj(x))
        return F.relu(x + y)


class HilSerlResNet10(nn.Module):
    """hil-serl's ResNet-10 trunk (``resnetv1-10-frozen``): input ``(B, 3, H, W)`` in [0, 1]
    (ImageNet-normalised inside, as hil-serl does), output ``(B, 8 * width, H/32, W/32)`` (rounded
    up: flax ``SAME``).

    Args:
        width: ``num_filters`` of the first stage (64 in hil-serl's pretrained file).
        pretrained: a local ``.pkl`` / ``.npz`` / ``.safetensors`` file (module docstring).
    """

    def __init__(self, width: int = 64, pretrained: str | None = None) -> None:
        super().__init__()
        if width % GROUPS:
            raise ValueError(f"width {width} must be a multiple of the {GROUPS} GroupNorm groups")
        self.conv_init = nn.Conv2d(3, width, 7, 2, 3, bias=False)  # explicit (3, 3) padding in flax too
        self.norm_init = nn.GroupNorm(GROUPS, width, eps=1e-5)
        cin = width
        for i in range(4):
            cout = width * 2**i
            setattr(self, f"ResNetBlock_{i}", _Block(cin, cout, 2 if i > 0 else 1))
            cin = cout
        self.out_channels = cin
        register_imagenet_stats(self)
        if pretrained:
            self.load_local_weights(pretrained)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B, C, h, w)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        x = F.relu(self.norm_init(self.conv_init((x - self.mean) / self.std)))
        x = F.max_pool2d(same_pad(x, 3, 2, value=float("-inf")), 3, 2)
        for i in range(4):
            x = getattr(self, f"ResNetBlock_{i}")(x)
        return x

    def load_local_weights(self, path: str | Path) -> None:
        """Load hil-serl's weights (``.pkl`` / ``.npz``) or this module's (``.safetensors``).

        Raises:
            FileNotFoundError: no such file (hilr never downloads weights).
            ValueError: the file does not fit this network (names the keys), or a pickle holds
                something other than dicts and numpy arrays.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(
                f"pretrained backbone weights {p} not found; hilr never downloads weights: copy hil-serl's "
                "resnet10_params.pkl (~/.serl/ after a hil-serl run, or the serl release page) to this machine "
                "and point encoder.pretrained at it, or set encoder.pretrained=null")
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = flax_to_torch(read_flax_params(p))
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            raise ValueError(f"weights {p} do not fit hil-serl's ResNet-10 of width {own['conv_init.weight'].shape[0]}: "
                             f"missing={missing[:4]} unexpected={unexpected[:4]} "
                             f"wrong shape={[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in wrong[:3]]}")
        self.load_state_dict(state)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists and numpy arrays; anything else (code, JAX arrays) is refused by name."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"), ("builtins", "dict")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        hint = (f"; it holds JAX arrays: convert it to .npz once where JAX and flax are installed:\n  {JAX_TO_NPZ}"
                if module.startswith(("jax", "flax")) else "")
        raise ValueError(f"refusing to unpickle {module}.{name} (only dicts and numpy arrays are loaded){hint}")


def read_flax_params(path: str | Path) -> dict[str, np.ndarray]:
    """hil-serl's parameter tree as flat ``{"conv_init/kernel": array, ...}`` from a ``.pkl``
    (nested dicts of numpy arrays, optionally under ``params``) or a flattened ``.npz``."""
    p = Path(path)
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    else:
        with open(p, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
        if isinstance(tree, Mapping) and set(tree) == {"params"}:
            tree = tree["params"]
        if not isinstance(tree, Mapping):
            raise ValueError(f"{p}: expected a dict of parameters, got {type(tree).__name__}")
        flat = {}

        def walk(node: Mapping, prefix: str) -> None:
            for k, v in node.items():
                key = f"{prefix}/{k}" if prefix else str(k)
                if isinstance(v, Mapping):
                    walk(v, key)
                else:
                    flat[key] = np.asarray(v)

        walk(tree, "")
    return {k[len("params/"):] if k.startswith("params/") else k: v for k, v in flat.items()}


def flax_to_torch(flat: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Flat flax names -> :class:`HilSerlResNet10` state dict: conv ``kernel`` (HWIO) -> ``weight``
    (OIHW); GroupNorm ``scale``/``bias`` -> ``weight``/``bias``. Keys outside the trunk (a head
    saved with it) are dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in flat.items():
        parts = key.split("/")
        if parts[0] not in ("conv_init", "norm_init") and not parts[0].startswith("ResNetBlock_"):
            continue
        arr = np.asarray(value, dtype=np.float32)
        leaf = parts[-1]
        if leaf == "kernel":
            if arr.ndim != 4:
                raise ValueError(f"{key}: a conv kernel must be 4-D (HWIO), got shape {arr.shape}")
            tensor, leaf = torch.from_numpy(np.ascontiguousarray(arr.transpose(3, 2, 0, 1))), "weight"
        elif leaf == "scale":
            tensor, leaf = torch.from_numpy(arr.copy()), "weight"
        elif leaf == "bias":
            tensor = torch.from_numpy(arr.copy())
        else:
            raise ValueError(f"{key}: unknown parameter {leaf!r} (expected kernel, scale or bias)")
        out[".".join(parts[:-1] + [leaf])] = tensor
    return out
