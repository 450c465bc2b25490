"""The simulated operator of a gymnasium env (``env=gym``): its scripted expert intervenes.

A :class:`~teleop.base.Teleoperator` reads as a 6-DoF end-effector command plus a gripper,
which fits only 7-D end-effector envs; a gymnasium env has actions of any size (FetchReach
4, gym-hil's pick-cube 4). So for ``env=gym`` with ``teleop=sim_operator`` the operator is
the env's own expert (``env.expert``) behind :class:`robot_env.gym_env.ExpertOperator`
(takes over after sustained disagreement, hands back when they agree), and this wrapper
plays the part of :class:`~teleop.intervention.InterventionWrapper`: same ``info`` keys,
same ``set_policy_parts``, any action size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np


def is_gym_env(env: gym.Env) -> bool:
    """True when ``env`` is (a wrapper around) a ``robot_env.gym_env.GymAdapter``."""
    from robot_env.gym_env import GymAdapter

    e = env
    while e is not None:
        if isinstance(e, GymAdapter):
            return True
        e = getattr(e, "env", None)
    return False


class ExpertIntervention(gym.Wrapper):
    """The env's scripted expert takes over from the policy as a simulated operator would.

    ``info`` of every step carries the keys of ``InterventionWrapper``: ``intervened``,
    ``teleop_action`` (the expert's action while it drives, else the policy's), ``policy_action``,
    ``action`` (what was executed, (A,) float32), ``interventions``, ``intervention_steps``,
    ``intervention_rate``, and ``base_action`` / ``residual_action`` when set with
    :meth:`set_policy_parts`.

    Args:
        env: an env with a 1-D ``Box`` action space in ``[-1, 1]`` (A,).
        operator: ``operator(obs, info, policy_action) -> (A,) action | None`` with ``reset()``
            (a :class:`robot_env.gym_env.ExpertOperator`).
        always_active: the expert drives every step (demo recording).
    """

    def __init__(self, env: gym.Env, operator: Any, always_active: bool = False) -> None:
        super().__init__(env)
        self.operator, self.always_active = operator, bool(always_active)
        self._parts: dict[str, np.ndarray] = {}
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.interventions = self.intervention_steps = self.steps = 0
        self._was_intervening = False
        self._obs: Any = None
        self._info: dict[str, Any] = {}

    @property
    def intervention_rate(self) -> float:
        """Fraction of this episode's steps under the expert's control (0 before any step)."""
        return self.intervention_steps / self.steps if self.steps else 0.0

    def set_policy_parts(self, base_action: np.ndarray | None = None,
                         residual_action: np.ndarray | None = None) -> None:
        """Attach the base/residual decomposition of the next policy action to its ``info``."""
        for key, value in (("base_action", base_action), ("residual_action", residual_action)):
            if value is not None:
                self._parts[key] = np.asarray(value, dtype=np.float32)

    def reset(self, **kwargs: Any):
        """Reset the env, the episode counters and the expert."""
        obs, info = self.env.reset(**kwargs)
        self._reset_stats()
        self._parts = {}
        self.operator.reset()
        self._obs, self._info = obs, info
        return obs, info

    def step(self, action: np.ndarray):
        """Step with the policy's ``action`` or, while the expert intervenes, the expert's."""
        policy_action = np.asarray(action, dtype=np.float32).reshape(self.action_space.shape)
        if not np.all(np.isfinite(policy_action)):
            raise ValueError(f"non-finite policy action {policy_action}")
        if self.always_active:
            human = np.asarray(self.operator.expert.act(self._obs, self._info), np.float32)
        else:
            human = self.operator(self._obs, self._info, policy_action)
        intervening = human is not None
        executed = np.clip(np.asarray(human, np.float32).reshape(policy_action.shape), -1.0, 1.0) \
            if intervening else policy_action
        self.interventions += int(intervening and not self._was_intervening)
        self._was_intervening = intervening
        self.steps += 1
        self.intervention_steps += int(intervening)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = dict(info)
        info.update(self._parts)
        self._parts = {}
        info.update(intervened=intervening, teleop_action=executed.copy(), policy_action=policy_action,
                    action=executed.copy(), interventions=self.interventions,
                    intervention_steps=self.intervention_steps, intervention_rate=self.intervention_rate)
        self._obs, self._info = obs, info
        return obs, reward, terminated, truncated, info

    def disconnect(self) -> None:
        """Nothing to release: the expert is code, not a device (the verbs call it on every operator)."""


def wrap_with_expert(env: gym.Env, spec: Mapping[str, Any]) -> ExpertIntervention:
    """``env`` (a gymnasium env) with its expert as the operator, from a ``teleop/sim_operator`` config.

    Uses ``disagreement``, ``drift_patience``, ``min_takeover_steps``, ``noise`` (null: 0.05),
    ``always_active`` and ``seed``; the expert is the env config's ``env.expert``.

    Raises:
        UserError: the env config names no expert.
    """
    from robot_env.app import UserError
    from robot_env.gym_env import ExpertOperator, load_expert

    try:
        expert = load_expert(env)
    except ValueError as exc:  # no env.expert
        raise UserError(f"{exc}: the simulated operator of env=gym is the env's scripted expert; set "
                        "env.expert=<module:function> (see robot_env/gym_experts.py) or run without an "
                        "operator (~teleop)") from None
    noise = spec.get("noise")
    operator = ExpertOperator(expert, disagreement=float(spec.get("disagreement", 0.5)),
                              patience=int(spec.get("drift_patience", 3)),
                              takeover_steps=int(spec.get("min_takeover_steps", 8)),
                              noise=0.05 if noise is None else float(noise), seed=int(spec.get("seed", 0)))
    return ExpertIntervention(env, operator, always_active=bool(spec.get("always_active", False)))
