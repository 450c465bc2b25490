"""The intervention wrapper: while the operator is active, their action replaces the policy's.

One concern (house style): who is in control this step. The operator is active while
their device reads input beyond its dead-zone or a button is held; control stays with
them for ``sticky_s`` after the last input (serl keeps 0.5 s) so a pause in the hand's
motion does not hand control back mid-correction. During that hold the operator's action
is their (zero) command: the arm holds still instead of lurching back to the policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from teleop.base import Teleoperator, tool_to_base


class InterventionWrapper(gym.Wrapper):
    """Replace the policy's action with the operator's while they intervene.

    ``info`` of every step carries:
        ``intervened`` (bool): the executed action came from the operator;
        ``teleop_action`` ((7,) float32): what the operator commanded (zeros + policy
        gripper when idle);
        ``policy_action`` ((7,) float32): what the policy proposed;
        ``base_action`` / ``residual_action`` ((7,) float32): passed through when the
        caller set them with :meth:`set_policy_parts` before ``step``;
        ``interventions`` (int): interventions started this episode;
        ``intervention_steps`` (int) and ``intervention_rate`` (float): steps under
        operator control this episode, and their fraction of the steps so far.

    Args:
        env: env with the 7-D action of docs/CONTRACTS.md.
        teleop: a connected :class:`Teleoperator`.
        sticky_s: seconds control stays with the operator after their last input.
        always_active: the operator is always in control (demo recording).
        clock: clock of the sticky hold, seconds: ``time.monotonic`` by default;
            ``"steps"`` = env time (steps x ``env.unwrapped.dt``), for sims that run
            faster than real time; or any callable.
    """

    def __init__(self, env: gym.Env, teleop: Teleoperator, sticky_s: float = 0.5,
                 always_active: bool = False,
                 clock: Callable[[], float] | str = time.monotonic) -> None:
        super().__init__(env)
        if sticky_s < 0:
            raise ValueError(f"sticky_s must be >= 0; got {sticky_s}")
        shape = getattr(env.action_space, "shape", None)
        if shape != (7,):  # operators command the 7-D end-effector action of docs/CONTRACTS.md
            from robot_env.app import UserError

            raise UserError(f"an operator ({type(teleop).__name__}) commands 7-D end-effector actions but this env "
                            f"takes actions of shape {shape}: run it without one (~teleop), or record it "
                            "with its scripted expert (hilr record env=gym)")
        self.teleop = teleop
        self.sticky_s = float(sticky_s)
        self.always_active = always_active
        if clock == "steps":
            dt = float(getattr(env.unwrapped, "dt", 0.0) or 1.0 / env.metadata.get("render_fps", 10))
            self._total_steps = 0
            clock = lambda: self._total_steps * dt  # noqa: E731
        elif isinstance(clock, str):
            raise ValueError(f"clock must be a callable or 'steps'; got {clock!r}")
        self._total_steps = 0
        self.clock = clock
        self._parts: dict[str, np.ndarray] = {}
        self._reset_stats()
        teleop.bind_env(env)

    def _reset_stats(self) -> None:
        self._last_active = -np.inf
        self._was_intervening = False
        self.interventions = 0
        self.intervention_steps = 0
        self.steps = 0
        self._obs: Any = None
        self._info: dict[str, Any] = {}

    @property
    def intervention_rate(self) -> float:
        """Fraction of this episode's steps under operator control (0 before any step)."""
        return self.intervention_steps / self.steps if self.steps else 0.0

    @property
    def intervening(self) -> bool:
        """Whether the last step was under operator control."""
        return self._was_intervening

    def set_policy_parts(self, base_action: np.ndarray | None = None,
                         residual_action: np.ndarray | None = None) -> None:
        """Attach the base/residual decomposition of the next policy action to its ``info``."""
        if base_action is not None:
            self._parts["base_action"] = np.asarray(base_action, dtype=np.float32)
        if residual_action is not None:
            self._parts["residual_action"] = np.asarray(residual_action, dtype=np.float32)

    def reset(self, **kwargs: Any):
        """Reset the env, the episode counters and the operator's latched gripper."""
        obs, info = self.env.reset(**kwargs)
        self._reset_stats()
        self._parts = {}
        self.teleop.reset()
        self._obs, self._info = obs, info
        return obs, info

    def step(self, action: np.ndarray):
        """Step with the policy's ``action`` or, while the operator intervenes, theirs."""
        policy_action = np.asarray(action, dtype=np.float32).reshape(7)
        if not np.all(np.isfinite(policy_action)):
            raise ValueError(f"non-finite policy action {policy_action}")
        self.teleop.observe(self._obs, self._info, policy_action)
        state = self.teleop.read()  # DeviceError propagates: an unplugged device stops the loop
        now = self.clock()
        if state.is_active:
            self._last_active = now
        intervening = self.always_active or state.is_active or (now - self._last_active < self.sticky_s)
        command = state.command
        if state.frame == "tool" and self._obs is not None:
            command = tool_to_base(command, np.asarray(self._obs["state"])[3:7])
        teleop_action = np.concatenate([command, [policy_action[6] if state.gripper is None
                                                  else state.gripper]]).astype(np.float32)
        teleop_action = np.clip(teleop_action, -1.0, 1.0)
        executed = teleop_action if intervening else policy_action
        if intervening and not self._was_intervening:
            self.interventions += 1
        self._was_intervening = intervening
        self.steps += 1
        self._total_steps += 1
        self.intervention_steps += int(intervening)

        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = dict(info)
        info.update(self._parts)
        self._parts = {}
        info["intervened"] = bool(intervening)
        info["teleop_action"] = teleop_action
        info["policy_action"] = policy_action
        info["action"] = executed.copy()
        info["interventions"] = self.interventions
        info["intervention_steps"] = self.intervention_steps
        info["intervention_rate"] = self.intervention_rate
        self._obs, self._info = obs, info
        return obs, reward, terminated, truncated, info
