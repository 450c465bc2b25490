"""A scripted simulated operator that behaves like a person at a SpaceMouse.

Built on the task's scripted expert (``robot_env.sim.experts.make_expert``), it watches
the robot through :meth:`Teleoperator.observe` (the same ``obs``/``info`` the policy
sees, with ``info["task_state"]`` in sim, so it also works across ROS2 against the
sim-robot node) and decides, like a human supervisor, when to take over:

* **drift**: the policy's action disagrees with what the expert would do (translation
  and rotation distance above ``disagreement``, or the opposite gripper command) for
  ``drift_patience`` consecutive steps;
* **stall**: the end effector moved less than ``stall_distance`` over ``stall_steps`` steps
  without success.

It hands control back once the policy has agreed with the expert for
``handback_agree_steps`` consecutive steps (after at least ``min_takeover_steps``). Each
switch takes effect ``reaction_steps`` after the operator decided (a reaction delay), and
their commands carry Gaussian noise. ``skill`` in [0, 1] sets delay and noise unless
given explicitly. ``always_active`` makes it drive every step (demo recording).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_env.hardware import DeviceError
from teleop.base import TELEOPERATORS, Teleoperator, TeleopState


@dataclasses.dataclass
class SimOperatorConfig:
    """Simulated operator settings (comments: launch/config/teleop/sim_operator.yaml).

    Attributes:
        task: task name for the expert (``reach``, ``pick_cube``, ``peg_insert``).
        skill: 0 (clumsy) .. 1 (expert); sets ``reaction_steps`` and ``noise`` when those
            are None.
        reaction_steps: steps between deciding to take over/hand back and doing it.
        noise: std of Gaussian noise added to the normalised 6-DoF command.
        expert_speed: speed factor passed to the expert.
        disagreement: action distance (L2 over the six normalised twist entries) above
            which the policy counts as drifting.
        drift_patience: consecutive drifting steps before deciding to take over.
        stall_steps: window for the no-progress check, steps (0 disables it).
        stall_distance: end-effector travel below which the window counts as a stall, metres.
        handback_agree_steps: consecutive agreeing steps before handing control back.
        min_takeover_steps: shortest takeover, steps.
        always_active: drive every step (demonstrations).
        seed: seed of the noise and of the expert.
    """

    task: str = "pick_cube"
    skill: float = 0.8
    reaction_steps: int | None = None
    noise: float | None = None
    expert_speed: float = 1.0
    disagreement: float = 0.6
    drift_patience: int = 3
    stall_steps: int = 15
    stall_distance: float = 0.005
    handback_agree_steps: int = 4
    min_takeover_steps: int = 8
    always_active: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.skill <= 1.0:
            raise ValueError(f"skill must be in [0, 1]; got {self.skill}")
        if self.reaction_steps is None:
            self.reaction_steps = int(round(1 + 4 * (1.0 - self.skill)))
        if self.noise is None:
            self.noise = 0.02 + 0.25 * (1.0 - self.skill)
        if self.reaction_steps < 0 or self.noise < 0 or self.disagreement <= 0:
            raise ValueError("reaction_steps and noise must be >= 0, disagreement > 0")


@TELEOPERATORS.register("sim_operator", SimOperatorConfig)
class SimulatedOperator(Teleoperator):
    """Scripted stand-in for the human operator (see the module docstring).

    Args:
        cfg: the config.
        expert: an object with ``reset()`` and ``act(obs, info) -> (7,)``; None = built
            from ``robot_env.sim.experts.make_expert`` at ``connect()``.
    """

    def __init__(self, cfg: SimOperatorConfig, expert: Any = None) -> None:
        self.cfg = cfg
        self.expert = expert
        self._given_expert = expert is not None
        self.task_config: Any = None
        self._connected = False
        self.rng = np.random.default_rng(cfg.seed)
        self.takeovers = 0
        self._clear()

    def _clear(self) -> None:
        self._in_control = False
        self._pending_steps = 0
        self._drift = 0
        self._agree = 0
        self._control_steps = 0
        self._ee_hist: collections.deque[np.ndarray] = collections.deque(
            maxlen=max(self.cfg.stall_steps, 1))
        self._command = np.zeros(6, dtype=np.float32)
        self._gripper: float | None = None
        self._stamp = time.monotonic()
        self.last_reason = ""


    def connect(self) -> None:
        """Ready to observe; the expert is built on first use (after ``bind_env``)."""
        self._connected = True

    def bind_env(self, env: Any) -> None:
        """Use the env's task config (action scales) for the expert when it is this task."""
        task = getattr(env.unwrapped, "task", None)
        if task is None and not self._given_expert:  # not a hilr robot env: no task state to follow
            from robot_env.app import UserError

            raise UserError(f"teleop=sim_operator follows the built-in {self.cfg.task!r} expert, which needs the "
                            f"hilr robot env's task state; {type(env.unwrapped).__name__} has none: run without an "
                            "operator (~teleop), or record with the env's own expert (hilr record env=gym)")
        if getattr(task, "name", None) == self.cfg.task:
            self.task_config = task
            if not self._given_expert:
                self.expert = None  # rebuilt with the env's action scales on first use

    def _ensure_expert(self) -> Any:
        if self.expert is None:
            from robot_env.sim.experts import make_expert

            self.expert = make_expert(self.task_config or self.cfg.task, noise=0.0,
                                      speed=self.cfg.expert_speed, seed=self.cfg.seed)
        return self.expert

    def disconnect(self) -> None:
        """Forget the expert's episode state."""
        self._connected = False

    def reset(self) -> None:
        """New episode: reset the expert and hand control back to the policy."""
        self._ensure_expert().reset()
        self._clear()

    @property
    def in_control(self) -> bool:
        """Whether the operator currently drives the robot."""
        return self._in_control or self.cfg.always_active

    def observe(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any],
                policy_action: np.ndarray | None) -> None:
        """Look at the robot, compute the expert's action, decide whether to intervene."""
        if not self._connected:
            raise DeviceError("simulated operator is not connected; call connect() first")
        expert = np.asarray(self._ensure_expert().act(obs, info), dtype=np.float32).reshape(7)
        want = self._want_control(obs, info, expert, policy_action)
        if want != self._in_control:
            self._pending_steps += 1
            if self._pending_steps > self.cfg.reaction_steps:
                self._in_control = want
                self._pending_steps = 0
                self._control_steps = 0
                self._agree = 0
                self._drift = 0
                self._ee_hist.clear()
                self.takeovers += int(want)
        else:
            self._pending_steps = 0
        self._control_steps += int(self._in_control)
        noisy = expert[:6] + self.rng.normal(0.0, self.cfg.noise, 6)
        self._command = np.clip(noisy, -1.0, 1.0).astype(np.float32)
        self._gripper = float(np.sign(expert[6])) if expert[6] != 0 else self._gripper
        self._stamp = time.monotonic()

    def _want_control(self, obs, info, expert, policy_action) -> bool:
        if self.cfg.always_active:
            return True
        disagree = False
        if policy_action is not None:
            policy_action = np.asarray(policy_action, dtype=np.float32).reshape(7)
            dist = float(np.linalg.norm(policy_action[:6] - expert[:6]))
            grip_flip = policy_action[6] * expert[6] < -0.25
            disagree = dist > self.cfg.disagreement or grip_flip
        if self._in_control:
            self._agree = 0 if disagree else self._agree + 1
            done = (self._control_steps >= self.cfg.min_takeover_steps
                    and self._agree >= self.cfg.handback_agree_steps)
            if done:
                self.last_reason = "policy back on track"
            return not done
        self._drift = self._drift + 1 if disagree else 0
        if self._drift >= self.cfg.drift_patience:
            self.last_reason = f"policy drifted for {self._drift} steps"
            return True
        if self.cfg.stall_steps > 0 and not info.get("success", False):
            self._ee_hist.append(np.asarray(obs["state"][:3], dtype=np.float64))
            if len(self._ee_hist) == self._ee_hist.maxlen:
                travel = np.linalg.norm(np.ptp(np.stack(self._ee_hist), axis=0))
                if travel < self.cfg.stall_distance:
                    self.last_reason = f"no progress for {self.cfg.stall_steps} steps"
                    return True
        return False

    def read(self) -> TeleopState:
        """The operator's command (their hand follows the expert, with noise); active only
        while they are in control, so the wrapper executes it only then (or always, when
        the wrapper is ``always_active`` for demo recording)."""
        if not self._connected:
            raise DeviceError("simulated operator is not connected; call connect() first")
        active = self.in_control
        return TeleopState(stamp=self._stamp, command=self._command.copy(), gripper=self._gripper,
                           intervention_button=active, is_active=active, frame="base")
