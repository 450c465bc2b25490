"""Unit tests of the policies package: encoders, BC chunk execution, residual init, critics, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.base import TorchScriptBasePolicy, ZeroBasePolicy, load_base_policy
from policies.bc import BCBasePolicy, BCConfig, BCPolicy, ChunkExecutor, load_bc_model, save_bc_policy
from policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policies.critics import CriticEnsemble, NaiveCriticList, polyak_update, random_subset_min
from policies.encoders import EncoderConfig, ObservationEncoder, ResNetEncoder, SpatialEmbedding, random_shift
from policies.residual import DeterministicResidualActor, GaussianResidualActor, compose_action, implied_residual
from policies.reward import RewardClassifier, RewardClassifierConfig, load_reward_classifier, save_reward_classifier

torch.set_num_threads(1)
SPEC = {"state": ((10,), "float32"), "front": ((32, 32, 3), "uint8"), "wrist": ((32, 32, 3), "uint8")}


def _obs(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"state": torch.randn(b, 10, generator=g),
            "front": torch.randint(0, 256, (b, 32, 32, 3), dtype=torch.uint8, generator=g),
            "wrist": torch.randint(0, 256, (b, 32, 32, 3), dtype=torch.uint8, generator=g)}


def test_observation_encoder_one_encoder_per_camera_and_shapes():
    enc = ObservationEncoder(SPEC, EncoderConfig(latent_dim=16))
    assert sorted(enc.encoders) == ["front", "wrist"]
    assert enc.encoders["front"] is not enc.encoders["wrist"]
    out = enc(_obs(), augment=True)
    assert out.shape == (4, 10 + 2 * 16) and enc.out_dim == 42
    shared = ObservationEncoder(SPEC, EncoderConfig(latent_dim=16, shared_across_cameras=True))
    assert list(shared.encoders) == ["shared"]


def test_random_shift_moves_pixels_within_pad():
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = random_shift(x, pad=2)
    pos = torch.nonzero(y[:, 0] == 1.0)[:, 1:]
    assert ((pos - 4).abs() <= 2).all()
    assert len({tuple(p.tolist()) for p in pos}) > 3  # shifts differ across the batch


def test_random_shift_is_a_replicate_padded_crop_per_sample():
    x = torch.randn(32, 3, 7, 6)
    torch.manual_seed(5)
    y = random_shift(x, pad=2)
    torch.manual_seed(5)  # the same draws, in the same order: dx then dy
    dx, dy = torch.randint(0, 5, (32,)), torch.randint(0, 5, (32,))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(32):
        assert torch.equal(y[i], padded[i, :, dy[i]:dy[i] + 7, dx[i]:dx[i] + 6])
    assert y.shape == x.shape and y.is_contiguous()


@pytest.mark.parametrize("shape", [(7, 512, 4, 4), (5, 32, 25, 25), (1, 16, 3, 3)])
def test_spatial_embedding_matches_einsum(shape):
    """The per-channel (K x P) @ (P x B) product gives hil-serl's spatial embedding
    ``out[b, c, k] = sum_p x[b, c, p] kernel[c, p, k]``, and its gradient, as the plain einsum."""
    torch.manual_seed(0)
    b, c, h, w = shape
    pool = SpatialEmbedding(c, h, w, num_features=8)
    x = torch.randn(shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ref_kernel = pool.kernel.detach().clone().requires_grad_(True)
    ref = torch.einsum("bcp,cpk->bck", x_ref.reshape(b, c, -1), ref_kernel).reshape(b, -1)
    out = pool(x)
    assert out.shape == (b, c * 8)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(ref)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(pool.kernel.grad, ref_kernel.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)  # a trainable backbone's gradient
    assert pool(torch.zeros(0, c, h, w)).shape == (0, c * 8)  # an empty batch


def test_resnet_loads_local_weights_and_freezes(tmp_path):
    from safetensors.torch import save_file

    src = ResNetEncoder(depth=10, width=8)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "r10.safetensors"))
    cfg = EncoderConfig(backbone="resnet10", channels=8, pretrained=str(tmp_path / "r10.safetensors"), freeze_backbone=True)
    enc = ObservationEncoder(SPEC, cfg)
    bb = enc.encoders["front"].backbone
    assert torch.equal(bb.conv1.weight, src.conv1.weight)
    assert not any(p.requires_grad for p in bb.parameters())
    enc.train()
    assert not bb.training  # frozen BatchNorm stays in eval mode
    with pytest.raises(FileNotFoundError, match="never downloads"):
        ObservationEncoder(SPEC, EncoderConfig(backbone="resnet18", pretrained=str(tmp_path / "missing.safetensors")))


def test_residual_at_init_reproduces_base_action():
    feat, base = torch.randn(32, 20), torch.rand(32, 7) * 2 - 1
    scale = torch.full((7,), 0.1)
    for actor in (DeterministicResidualActor(20), GaussianResidualActor(20)):
        res = actor(feat, base)
        assert torch.equal(res, torch.zeros_like(res))
        assert torch.equal(compose_action(base, res, scale), base)
    explore = DeterministicResidualActor(20).explore(feat, base, 0.05)
    assert 0.02 < explore.std() < 0.08  # exploration noise at the mean


def test_gaussian_actor_log_prob_matches_monte_carlo_entropy_sign():
    actor = GaussianResidualActor(5, 3, init_std=0.3)
    res, logp = actor.sample(torch.zeros(4096, 5), torch.zeros(4096, 3))
    assert res.abs().max() < 1 and torch.isfinite(logp).all()
    assert 0.2 < res.std() < 0.35


def test_implied_residual_inverts_compose():
    base, res, scale = torch.tensor([[0.2, -0.5]]), torch.tensor([[0.5, -1.0]]), torch.tensor([0.2, 0.3])
    executed = compose_action(base, res, scale)
    assert torch.allclose(implied_residual(executed, base, scale), res)


def test_critic_ensemble_batched_matches_per_head_loop():
    ens = CriticEnsemble(12, 7, num_critics=5, hidden=(32, 32))
    feat, act = torch.randn(8, 12), torch.randn(8, 7)
    q = ens(feat, act)
    assert q.shape == (5, 8)
    # head 3 computed by hand
    x = torch.cat([feat, act], -1)
    h = x
    for layer in ens.net:
        name = type(layer).__name__
        if name == "EnsembleLinear":
            h = h @ layer.weight[3] + layer.bias[3]
        elif name == "EnsembleLayerNorm":
            h = torch.nn.functional.layer_norm(h, h.shape[-1:]) * layer.weight[3] + layer.bias[3]
        else:
            h = layer(h)
    assert torch.allclose(q[3], h.squeeze(-1), atol=1e-5)
    assert NaiveCriticList(12, 7, 5, (32, 32))(feat, act).shape == (5, 8)


def test_random_subset_min_and_polyak():
    q = torch.arange(10.0).view(10, 1).expand(10, 3)
    m = random_subset_min(q, 2, torch.Generator().manual_seed(0))
    assert m.shape == (3,) and (m[0] == m).all() and m[0] < 9
    assert torch.equal(random_subset_min(q, 10), torch.zeros(3))
    a, b = CriticEnsemble(3, 1, 2, (4,)), CriticEnsemble(3, 1, 2, (4,))
    before = a.net[0].weight.clone()
    polyak_update(a, b, 0.25)
    assert torch.allclose(a.net[0].weight, 0.75 * before + 0.25 * b.net[0].weight)


def test_chunk_executor_modes():
    chunk = np.arange(12, dtype=np.float32).reshape(4, 3)
    ex = ChunkExecutor("chunk", 4)
    got = [ex.step(chunk if ex.needs_chunk() else None) for _ in range(4)]
    assert np.array_equal(np.stack(got), chunk) and ex.needs_chunk()
    ex = ChunkExecutor("receding", 4, execute_steps=2)
    ex.step(chunk)
    assert not ex.needs_chunk()
    ex.step(None)
    assert ex.needs_chunk()
    ex = ChunkExecutor("ensemble", 4, ensemble_k=0.0)
    ex.step(np.zeros((4, 3)))
    a = ex.step(np.ones((4, 3)) * 2)  # average of chunk0[1]=0 and chunk1[0]=2
    assert np.allclose(a, 1.0)


def test_bc_checkpoint_round_trip_and_base_interface(tmp_path):
    spec = {"state": ((10,), "float32"), "front": ((32, 32, 3), "uint8")}
    model = BCPolicy(spec, BCConfig(chunk_size=4, execute_steps=2, hidden=(32,)))
    model.set_state_stats(np.ones(10), np.full(10, 2.0))
    path = save_bc_policy(tmp_path / "bc.safetensors", model)
    loaded, meta = load_bc_model(path)
    assert meta["kind"] == "hilr-bc-policy"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    policy = load_base_policy(path)
    assert isinstance(policy, BCBasePolicy)
    obs = {"state": np.zeros(10, np.float32), "front": np.zeros((32, 32, 3), np.uint8)}
    a = policy.act(obs)
    assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    assert isinstance(load_base_policy(None), ZeroBasePolicy)


def test_torchscript_base_policy(tmp_path):
    class Tiny(torch.nn.Module):
        def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.tanh(obs["state"][:, :7])

    torch.jit.save(torch.jit.script(Tiny()), str(tmp_path / "tiny.pt"))
    policy = load_base_policy(tmp_path / "tiny.pt")
    assert isinstance(policy, TorchScriptBasePolicy)
    s = np.linspace(-1, 1, 10).astype(np.float32)
    assert np.allclose(policy.act({"state": s}), np.tanh(s[:7]))


def test_checkpoint_is_pickle_free_atomic_and_rejects_corruption(tmp_path):
    opt_state = torch.optim.Adam([torch.nn.Parameter(torch.ones(2))]).state_dict()
    state = {"w": torch.arange(3.0), "optim": opt_state, "step": 7, "nested": [1, {"a": torch.ones(1)}]}
    path = save_checkpoint(tmp_path / "c.safetensors", state, {"kind": "x"})
    back, meta = load_checkpoint(path)
    assert meta == {"kind": "x"} and back["step"] == 7 and torch.equal(back["w"], state["w"])
    assert back["optim"]["param_groups"][0]["params"] == [0]
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp leftovers
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(TypeError, match="without pickle"):
        save_checkpoint(tmp_path / "d.safetensors", {"bad": object()})


def test_reward_classifier_round_trip_and_threshold(tmp_path):
    spec = {"state": ((10,), "float32"), "front": ((32, 32, 3), "uint8")}
    clf = RewardClassifier(spec, RewardClassifierConfig(hidden=(16,), threshold=0.6))
    path = save_reward_classifier(tmp_path / "r.safetensors", clf)
    back = load_reward_classifier(path, threshold=0.9)
    obs = {"state": np.zeros(10, np.float32), "front": np.full((32, 32, 3), 128, np.uint8)}
    r, p = back.reward(obs)
    assert 0 <= p <= 1 and r == float(p > 0.9)
    with pytest.raises(ValueError, match="camera"):
        RewardClassifier({"state": ((3,), "float32")}, RewardClassifierConfig())


def test_gripper_critic_td_loss_falls():
    from policies.critics import GripperCritic, gripper_action_to_index, gripper_td_loss

    torch.manual_seed(0)
    critic, target = GripperCritic(6, 2, (32,)), GripperCritic(6, 2, (32,))
    target.load_state_dict(critic.state_dict())
    feat, next_feat = torch.randn(64, 6), torch.randn(64, 6)
    idx = gripper_action_to_index(torch.sign(feat[:, 0]), torch.zeros(64), deadband=0.5)
    assert set(idx.tolist()) <= {0, 2}
    reward, discount = (idx == 2).float(), torch.full((64,), 0.9)
    opt = torch.optim.Adam(critic.parameters(), 1e-2)
    losses = []
    for _ in range(100):
        loss = gripper_td_loss(critic, target, feat, next_feat, idx, reward, discount)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert critic.greedy(feat).shape == (64,)
