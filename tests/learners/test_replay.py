"""Replay buffer tests: n-step targets by hand, truncation bootstrapping, interventions, disk round trip."""

from __future__ import annotations

import numpy as np
import pytest

from learners.replay import MixedReplay, ReplayBuffer

SPEC = {"state": ((2,), "float32"), "front": ((4, 4, 3), "uint8")}


def _obs(i: float) -> dict[str, np.ndarray]:
    return {"state": np.array([i, -i], np.float32), "front": np.full((4, 4, 3), int(i) % 256, np.uint8)}


def _add_episode(buf, start, rewards, terminated_last=False, truncated_last=False, **extra):
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        buf.add({"obs": _obs(start + t), "next_obs": _obs(start + t + 1), "action": np.full(7, 0.1 * t, np.float32),
                 "base_action": np.zeros(7, np.float32), "reward": r,
                 "terminated": terminated_last and last, "truncated": truncated_last and last, **extra})


def test_frames_stored_once_and_next_obs_is_own_next_frame():
    buf = ReplayBuffer(SPEC, 100, n_step=1)
    _add_episode(buf, 0, [0, 0, 0], truncated_last=True)
    _add_episode(buf, 50, [0, 1], terminated_last=True)
    # 3 + 1 frames for episode 1, 2 + 1 for episode 2: images stored once
    assert buf.size == 7 and len(buf) == 5
    b = buf.sample(5, indices=np.arange(7)[buf.data["valid"][:7]])
    assert np.array_equal(b["next_obs"]["state"][:, 0], b["obs"]["state"][:, 0] + 1)
    # the truncated last step bootstraps from ITS next frame (3), not episode 2's first (50)
    i = np.where(b["truncated"])[0][0]
    assert b["obs"]["state"][i, 0] == 2 and b["next_obs"]["state"][i, 0] == 3
    assert b["discount"][i] == pytest.approx(0.99)  # truncated: bootstrap
    j = np.where(b["terminated"])[0][0]
    assert b["discount"][j] == 0.0 and b["reward"][j] == 1.0  # terminated: no bootstrap


def test_n_step_targets_hand_computed():
    g = 0.9
    buf = ReplayBuffer(SPEC, 100, n_step=3, gamma=g)
    _add_episode(buf, 0, [1.0, 2.0, 3.0, 4.0, 5.0], terminated_last=True)
    b = buf.sample(5, indices=np.arange(5))
    # t=0: 1 + .9*2 + .81*3, bootstrap from frame 3 with gamma^3
    assert b["reward"][0] == pytest.approx(1 + 0.9 * 2 + 0.81 * 3)
    assert b["discount"][0] == pytest.approx(g**3) and b["next_obs"]["state"][0, 0] == 3
    # t=3: 4 + .9*5 and the episode terminates at t=4: no bootstrap
    assert b["reward"][3] == pytest.approx(4 + 0.9 * 5)
    assert b["discount"][3] == 0.0 and b["n"][3] == 2
    # t=4: 5, terminated
    assert b["reward"][4] == 5 and b["discount"][4] == 0.0
    # truncated episode: the return stops at the truncation and bootstraps with gamma^m
    buf2 = ReplayBuffer(SPEC, 100, n_step=3, gamma=g)
    _add_episode(buf2, 0, [1.0, 1.0], truncated_last=True)
    _add_episode(buf2, 10, [7.0, 7.0, 7.0])
    b2 = buf2.sample(1, indices=np.array([0]))
    assert b2["reward"][0] == pytest.approx(1 + 0.9) and b2["discount"][0] == pytest.approx(g**2)
    assert b2["next_obs"]["state"][0, 0] == 2


def test_segment_auto_split_when_obs_does_not_continue():
    buf = ReplayBuffer(SPEC, 100, n_step=3, gamma=0.5)
    _add_episode(buf, 0, [1.0, 1.0])  # not done: open segment
    _add_episode(buf, 20, [8.0, 8.0])  # obs 20 != pending frame 2 -> new segment
    b = buf.sample(1, indices=np.array([1]))
    assert b["reward"][0] == 1.0 and b["next_obs"]["state"][0, 0] == 2 and b["discount"][0] == 0.5


def test_ring_overwrite_keeps_transitions_consistent():
    buf = ReplayBuffer(SPEC, 10, n_step=2, gamma=0.9, seed=3)
    for e in range(7):
        _add_episode(buf, 100 * e, [0.0, 0.0, 1.0], terminated_last=True)
    b = buf.sample(64)
    assert np.array_equal(b["next_obs"]["state"][b["n"] == 1, 0], b["obs"]["state"][b["n"] == 1, 0] + 1)
    assert np.array_equal(b["next_obs"]["state"][b["n"] == 2, 0], b["obs"]["state"][b["n"] == 2, 0] + 2)


def test_buffer_disk_round_trip_bit_exact(tmp_path):
    buf = ReplayBuffer(SPEC, 16, n_step=3, gamma=0.97, seed=5)
    for e in range(5):  # wraps the ring
        _add_episode(buf, 10 * e, list(np.linspace(0, 1, 4)), terminated_last=e % 2 == 0, truncated_last=e % 2 == 1)
    buf.sample(8)  # advance the RNG
    path = buf.save(tmp_path / "online.npz")
    back = ReplayBuffer.load(path)
    for k in buf.frames:
        assert back.frames[k].tobytes() == buf.frames[k].tobytes()
    for k in buf.data:
        assert back.data[k].tobytes() == buf.data[k].tobytes()
    assert (back.head, back.size, back.open) == (buf.head, buf.size, buf.open)
    a, b = buf.sample(32), back.sample(32)  # same RNG state -> same batch
    assert all(np.array_equal(a[k], b[k]) for k in ("indices", "reward", "discount"))
    np.load(path, allow_pickle=False).close()  # plain numpy, no pickle
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        ReplayBuffer.load(tmp_path / "bad.npz")


def test_interventions_land_in_both_buffers_with_implied_residual():
    scale = np.full(7, 0.2, np.float32)
    mixed = MixedReplay(ReplayBuffer(SPEC, 50), ReplayBuffer(SPEC, 50), scale, demo_ratio=0.5)
    base = np.full(7, 0.1, np.float32)
    human = np.array([0.2, 0.0, 0.1, 0.5, -0.5, 0.14, 1.0], np.float32)
    for t in range(4):
        intervened = t in (1, 2)
        mixed.add({"obs": _obs(t), "next_obs": _obs(t + 1), "action": human if intervened else base,
                   "base_action": base, "residual_action": np.zeros(7, np.float32), "reward": 0.0,
                   "terminated": False, "truncated": t == 3, "intervened": intervened})
    assert len(mixed.online) == 4 and len(mixed.demo) == 2
    expected = np.clip((human - base) / scale, -1, 1)
    d = mixed.demo.sample(2, indices=np.array([0, 1]))
    assert np.allclose(d["residual_action"], expected) and np.array_equal(d["action"], np.stack([human, human]))
    assert d["intervened"].all()
    o = mixed.online.sample(4, indices=np.arange(4))
    assert np.allclose(o["residual_action"][1], expected) and np.allclose(o["residual_action"][0], 0)
    assert expected[3] == 1.0 and expected[4] == -1.0  # clipped
    batch = mixed.sample(10)
    assert len(batch["reward"]) == 10 and batch["intervened"][:5].all()  # 50/50: demo rows first


def test_relabel_base_actions_runs_base_from_reset():
    from learners.replay import relabel_base_actions

    class Counter:
        def reset(self):
            self.t = 0

        def act(self, obs):
            self.t += 1
            return np.full(7, obs["state"][0] + self.t, np.float32)

    ep = {"obs/state": np.arange(4, dtype=np.float32)[:, None].repeat(2, 1), "action": np.zeros((3, 7), np.float32)}
    out = relabel_base_actions(ep, Counter())
    assert out["base_action"].shape == (3, 7) and np.allclose(out["base_action"][:, 0], [1, 3, 5])
    assert "base_action" not in ep


def test_classifier_probability_is_stored_and_survives_a_save(tmp_path):
    buf = ReplayBuffer(SPEC, 16, n_step=1, gamma=0.97, seed=0)
    _add_episode(buf, 0, [0.0, 1.0], terminated_last=True, success_probability=np.float32(0.9))
    _add_episode(buf, 10, [0.0, 0.0], truncated_last=True)  # a reward that came from no classifier
    stored = buf.data["success_probability"]
    assert np.allclose(stored[[0, 1]], 0.9) and np.isnan(stored[[3, 4]]).all()
    back = ReplayBuffer.load(buf.save(tmp_path / "b.npz"))
    assert back.data["success_probability"].tobytes() == stored.tobytes()
