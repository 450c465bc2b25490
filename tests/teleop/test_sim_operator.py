"""The simulated operator on the real MuJoCo pick_cube env: when it takes over and hands back."""

from __future__ import annotations

import numpy as np
import pytest

from robot_env import make_env
from robot_env.sim.experts import make_expert
from teleop.base import make_teleoperator
from teleop.intervention import InterventionWrapper
from teleop.sim_operator import SimOperatorConfig

ENV_CFG = {"control": {"mode": "free_running"}, "task": {"name": "pick_cube", "episode_steps": 60}}


def run(policy_fn, steps=40, seed=0, **op_cfg):
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", **op_cfg})
    op.connect()
    env = InterventionWrapper(make_env(ENV_CFG), op, sticky_s=0.0, clock="steps")
    obs, info = env.reset(seed=seed)
    flags = []
    for t in range(steps):
        obs, _, term, trunc, info = env.step(policy_fn(t, obs, info))
        flags.append(info["intervened"])
        if term or trunc:
            break
    env.close()
    return np.array(flags), info, op


def test_drifting_policy_is_taken_over_after_patience_plus_reaction():
    drift = np.array([0, 0.8, 0.6, 0, 0, 0, -1], np.float32)  # sideways and up, away from the cube
    flags, info, op = run(lambda t, o, i: drift, steps=20, skill=1.0, reaction_steps=2,
                          drift_patience=3, noise=0.0)
    first = int(np.argmax(flags))
    # decided at the 3rd drifting step (index 2); 2 steps of reaction delay: acts at index 4
    assert first == 2 + 2 and not flags[:first].any() and flags[first:].all()
    assert "drifted" in op.last_reason and info["interventions"] == 1


def test_hands_back_once_the_policy_is_on_track():
    expert = make_expert("pick_cube", noise=0.0, seed=0)
    bad = np.array([0, -0.9, 0.5, 0, 0, 0, -1], np.float32)

    def policy(t, obs, info):
        good = expert.act(obs, info)  # the expert watches every step, like the operator
        return bad if t < 6 else good
    flags, info, op = run(policy, steps=45, skill=1.0, reaction_steps=1, noise=0.0,
                          min_takeover_steps=5, handback_agree_steps=3)
    assert flags[:3].sum() == 0 and flags[3], flags  # patience 3 + reaction 1
    last = np.flatnonzero(flags)[-1]
    assert last < len(flags) - 1 and not flags[last + 1:].any(), flags  # control went back
    assert op.takeovers == 1 and op.last_reason == "policy back on track"
    assert info["intervention_rate"] < 0.6


def test_stalled_policy_triggers_takeover():
    still = np.array([0, 0, 0, 0, 0, 0, -1], np.float32)
    flags, _, op = run(lambda t, o, i: still, steps=8, disagreement=50.0, stall_steps=8,
                       reaction_steps=0, noise=0.0)
    assert flags[7] and not flags[:7].any()  # the 8-observation window is full at index 7
    assert "no progress" in op.last_reason


def test_skill_sets_delay_and_noise_and_noise_is_applied():
    lo, hi = SimOperatorConfig(skill=0.0), SimOperatorConfig(skill=1.0)
    assert lo.reaction_steps > hi.reaction_steps and lo.noise > hi.noise
    with pytest.raises(ValueError):
        SimOperatorConfig(skill=1.5)
    # always-active noisy operator: commands differ from the noiseless expert's
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "noise": 0.2, "always_active": True})
    op.connect()
    env = make_env(ENV_CFG)
    obs, info = env.reset(seed=0)
    expert = make_expert(env.unwrapped.task, noise=0.0, seed=0)
    op.bind_env(env)
    op.reset()
    op.observe(obs, info, None)
    st = op.read()
    assert st.is_active and not np.allclose(st.command, expert.act(obs, info)[:6], atol=1e-3)
    env.close()
