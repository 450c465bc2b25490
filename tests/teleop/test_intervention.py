"""Intervention switching, sticky hold and per-episode counters on a tiny gymnasium env."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from robot_env.hardware import DeviceError
from teleop.base import TELEOPERATORS, Teleoperator, TeleopState
from teleop.intervention import InterventionWrapper


class PointEnv(gym.Env):
    """A point that moves by the action's first three entries; records executed actions."""

    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-10, 10, (8,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    def __init__(self):
        self.executed = []

    def _obs(self):
        state = np.zeros(8, np.float32)
        state[:3] = self.pos
        state[3:7] = [0, 0, 0, 1]
        return {"state": state}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.zeros(3, np.float32)
        return self._obs(), {"success": False}

    def step(self, action):
        self.executed.append(np.array(action))
        self.pos = self.pos + 0.01 * np.asarray(action[:3], np.float32)
        return self._obs(), 0.0, False, False, {"success": False}


@dataclasses.dataclass
class ScriptConfig:
    """Test fake: a list of per-read (command, active) entries."""

    script: list = dataclasses.field(default_factory=list)


@TELEOPERATORS.register("test_script", ScriptConfig)
class ScriptedInput(Teleoperator):
    """Hardware-edge fake: returns scripted states, one per read()."""

    def __init__(self, cfg):
        self.cfg, self.i, self.connected, self.fail = cfg, 0, False, False
        self.seen_policy = []

    @property
    def is_connected(self):
        return self.connected

    def connect(self):
        self.connected = True

    def disconnect(self):
        self.connected = False

    def observe(self, obs, info, policy_action):
        self.seen_policy.append(policy_action)

    def read(self):
        if self.fail:
            raise DeviceError("unplugged")
        cmd, active, grip = self.cfg.script[min(self.i, len(self.cfg.script) - 1)]
        self.i += 1
        return TeleopState(stamp=0.0, command=np.asarray(cmd, np.float32), gripper=grip,
                           is_active=active)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


Z = [0.0] * 6
X = [1.0, 0, 0, 0, 0, 0]


def run(script, sticky_s, dt=0.1, steps=None):
    teleop = TELEOPERATORS.make({"type": "test_script", "script": script})
    teleop.connect()
    clock = FakeClock()
    env = InterventionWrapper(PointEnv(), teleop, sticky_s=sticky_s, clock=clock)
    env.reset(seed=0)
    policy = np.array([0, 0, -0.5, 0, 0, 0, -1], np.float32)
    infos = []
    for _ in range(steps or len(script)):
        infos.append(env.step(policy)[4])
        clock.t += dt
    return env, infos


def test_operator_replaces_policy_only_while_active_without_sticky():
    script = [(Z, False, None), (X, True, None), (X, True, 1.0), (Z, False, None)]
    env, infos = run(script, sticky_s=0.0)
    assert [i["intervened"] for i in infos] == [False, True, True, False]
    executed = env.unwrapped.executed
    np.testing.assert_allclose(executed[0], [0, 0, -0.5, 0, 0, 0, -1])
    np.testing.assert_allclose(executed[1], [1, 0, 0, 0, 0, 0, -1])  # policy gripper kept
    np.testing.assert_allclose(executed[2], [1, 0, 0, 0, 0, 0, 1])   # operator closed it
    np.testing.assert_allclose(infos[1]["policy_action"], [0, 0, -0.5, 0, 0, 0, -1])
    np.testing.assert_allclose(infos[1]["teleop_action"], executed[1])
    assert infos[-1]["interventions"] == 1 and infos[-1]["intervention_steps"] == 2
    assert infos[-1]["intervention_rate"] == pytest.approx(0.5)


def test_sticky_hold_keeps_control_then_hands_back():
    # active at t=0.1; sticky 0.25 s -> steps at t=0.2, 0.3 still held (arm holds still)
    script = [(Z, False, None), (X, True, None)] + [(Z, False, None)] * 4
    env, infos = run(script, sticky_s=0.25)
    assert [i["intervened"] for i in infos] == [False, True, True, True, False, False]
    np.testing.assert_allclose(env.unwrapped.executed[2][:6], 0)  # hold: zero twist, not policy
    assert infos[-1]["interventions"] == 1


def test_two_interventions_counted_and_reset_clears():
    script = [(X, True, None), (Z, False, None), (X, True, None), (Z, False, None)]
    env, infos = run(script, sticky_s=0.0)
    assert infos[-1]["interventions"] == 2
    env.reset()
    assert env.interventions == 0 and env.intervention_rate == 0.0


def test_policy_parts_pass_through_and_observe_sees_policy():
    teleop = TELEOPERATORS.make({"type": "test_script", "script": [(Z, False, None)]})
    env = InterventionWrapper(PointEnv(), teleop)
    env.reset()
    env.set_policy_parts(base_action=np.ones(7), residual_action=np.zeros(7))
    info = env.step(np.zeros(7, np.float32))[4]
    np.testing.assert_array_equal(info["base_action"], np.ones(7, np.float32))
    assert "base_action" not in env.step(np.zeros(7, np.float32))[4]
    assert len(teleop.seen_policy) == 2


def test_bad_inputs_fail_loudly():
    teleop = TELEOPERATORS.make({"type": "test_script", "script": [(Z, False, None)]})
    env = InterventionWrapper(PointEnv(), teleop)
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(7, np.nan, np.float32))
    teleop.fail = True
    with pytest.raises(DeviceError):
        env.step(np.zeros(7, np.float32))
    assert len(env.unwrapped.executed) == 0  # nothing reached the "arm"


def test_tool_frame_command_is_rotated_into_base_frame():
    class Rotated(PointEnv):
        def _obs(self):
            obs = super()._obs()
            obs["state"][3:7] = [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]  # tool yawed 90 deg
            return obs

    class ToolInput(ScriptedInput):
        def read(self):
            st = super().read()
            return TeleopState(stamp=0.0, command=st.command, is_active=st.is_active, frame="tool")

    teleop = ToolInput(ScriptConfig(script=[(X, True, None)]))
    env = InterventionWrapper(Rotated(), teleop)
    env.reset()
    info = env.step(np.zeros(7, np.float32))[4]
    np.testing.assert_allclose(info["action"][:3], [0, 1, 0], atol=1e-6)  # tool +x = base +y
