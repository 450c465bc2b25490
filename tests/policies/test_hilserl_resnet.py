"""hil-serl's ResNet-10 in torch against an independent numpy transcription of its flax forward
pass (NHWC, XLA SAME padding, GroupNorm over 4 groups), from a locally generated weight file in
hil-serl's own format (a pickle of nested dicts of numpy arrays)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from policies.encoders import EncoderConfig, ImageEncoder
from policies.hilserl_resnet import HilSerlResNet10, read_flax_params

WIDTH = 8  # hil-serl's file has 64; the architecture is the same for any multiple of 4


def flax_tree(width: int, seed: int = 0) -> dict:
    """Parameters named and shaped exactly as flax names hil-serl's ``resnetv1-10`` ones."""
    rng = np.random.default_rng(seed)

    def conv(k, cin, cout):
        return {"kernel": (rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))).astype(np.float32)}

    def norm(c):
        return {"scale": (1 + 0.1 * rng.standard_normal(c)).astype(np.float32),
                "bias": (0.1 * rng.standard_normal(c)).astype(np.float32)}

    tree = {"conv_init": conv(7, 3, width), "norm_init": norm(width)}
    cin = width
    for i in range(4):
        cout = width * 2**i
        block = {"Conv_0": conv(3, cin, cout), "MyGroupNorm_0": norm(cout),
                 "Conv_1": conv(3, cout, cout), "MyGroupNorm_1": norm(cout)}
        if i > 0:
            block.update(conv_proj=conv(1, cin, cout), norm_proj=norm(cout))
        tree[f"ResNetBlock_{i}"] = block
        cin = cout
    return tree


# ---------------------------------------------------------------- the flax model, in numpy (NHWC)
def _same(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def np_conv(x, kernel, stride, padding):
    """``lax.conv_general_dilated`` NHWC/HWIO with explicit or SAME padding, by explicit windows."""
    k = kernel.shape[0]
    if padding == "SAME":
        padding = [_same(x.shape[1], k, stride), _same(x.shape[2], k, stride)]
    x = np.pad(x, [(0, 0), padding[0], padding[1], (0, 0)])
    b, h, w, _ = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((b, oh, ow, kernel.shape[3]), np.float64)
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
            out += patch @ kernel[i, j]
    return out


def np_group_norm(x, p, groups=4, eps=1e-5):
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = ((g - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(b, h, w, c) * p["scale"] + p["bias"]


def np_max_pool_same(x, k=3, s=2):
    ph, pw = _same(x.shape[1], k, s), _same(x.shape[2], k, s)
    x = np.pad(x, [(0, 0), ph, pw, (0, 0)], constant_values=-np.inf)
    oh, ow = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    return np.max([x[:, i:i + s * oh:s, j:j + s * ow:s] for i in range(k) for j in range(k)], axis=0)


def flax_forward(tree, images_uint8):
    """hil-serl's ResNetEncoder.__call__ with pre_pooling=True, transcribed to numpy."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x = (images_uint8.astype(np.float64) / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    x = relu(np_group_norm(np_conv(x, tree["conv_init"]["kernel"], 2, [(3, 3), (3, 3)]), tree["norm_init"]))
    x = np_max_pool_same(x)
    for i in range(4):
        p, stride = tree[f"ResNetBlock_{i}"], 2 if i > 0 else 1
        y = relu(np_group_norm(np_conv(x, p["Conv_0"]["kernel"], stride, "SAME"), p["MyGroupNorm_0"]))
        y = np_group_norm(np_conv(y, p["Conv_1"]["kernel"], 1, "SAME"), p["MyGroupNorm_1"])
        if "conv_proj" in p:
            x = np_group_norm(np_conv(x, p["conv_proj"]["kernel"], stride, "SAME"), p["norm_proj"])
        x = relu(x + y)
    return x


@pytest.mark.parametrize("size", [64, 72])  # 72: odd sizes inside the net (SAME pads both sides)
def test_matches_the_flax_network_on_hilserl_weights(tmp_path, size):
    tree = flax_tree(WIDTH)
    path = tmp_path / "resnet10_params.pkl"
    path.write_bytes(pickle.dumps(tree))
    net = HilSerlResNet10(WIDTH, pretrained=str(path)).eval()
    images = np.random.default_rng(1).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        got = net(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0).permute(0, 2, 3, 1).numpy()
    want = flax_forward(tree, images)
    assert got.shape == want.shape == (2, -(-size // 32), -(-size // 32), 8 * WIDTH)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    # torchvision-style symmetric padding would not match: the asymmetric SAME padding matters
    assert np.abs(want).mean() > 0.1


def test_npz_params_and_a_params_wrapper_load_the_same(tmp_path):
    tree = flax_tree(WIDTH, seed=2)
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"params": tree}))
    flat = read_flax_params(tmp_path / "a.pkl")
    np.savez(tmp_path / "b.npz", **flat)
    a, b = HilSerlResNet10(WIDTH, str(tmp_path / "a.pkl")), HilSerlResNet10(WIDTH, str(tmp_path / "b.npz"))
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k])
    torch.testing.assert_close(a.conv_init.weight, torch.from_numpy(tree["conv_init"]["kernel"].transpose(3, 2, 0, 1)))


def test_bad_files_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        HilSerlResNet10(WIDTH, str(tmp_path / "missing.pkl"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"conv_init": Evil()}))
    with pytest.raises(ValueError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        HilSerlResNet10(WIDTH, str(tmp_path / "evil.pkl"))
    tree = flax_tree(16)  # width 16 weights into a width-8 net
    (tmp_path / "wide.pkl").write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="do not fit hil-serl's ResNet-10 of width 8: .*wrong shape"):
        HilSerlResNet10(WIDTH, str(tmp_path / "wide.pkl"))
    del tree["ResNetBlock_3"]
    (tmp_path / "short.pkl").write_bytes(pickle.dumps(tree))
    with pytest.raises(ValueError, match="missing=.*ResNetBlock_3"):
        HilSerlResNet10(16, str(tmp_path / "short.pkl"))


def test_frozen_hilserl_backbone_in_the_image_encoder_caches_features(tmp_path):
    """The encoder config path users set (``encoder.backbone=hilserl_resnet10
    encoder.pretrained=...``): frozen, its cached features give the same output as images."""
    (tmp_path / "r10.pkl").write_bytes(pickle.dumps(flax_tree(WIDTH)))
    cfg = EncoderConfig(backbone="hilserl_resnet10", channels=WIDTH, pretrained=str(tmp_path / "r10.pkl"),
                        freeze_backbone=True, latent_dim=16)
    enc = ImageEncoder(cfg, (64, 64, 3)).eval()
    assert enc.feature_shape == (8 * WIDTH, 2, 2)
    images = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        direct = enc(images)
        cached = enc(enc.backbone_features(images))
    torch.testing.assert_close(direct, cached, rtol=2e-3, atol=2e-3)  # float16 cache
    assert not any(p.requires_grad for p in enc.backbone.parameters())
