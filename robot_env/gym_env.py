"""Any registered gymnasium env with a ``Box`` action space, adapted to the hilr contract.

``robot_env.make_env({"env": {"type": "gym", "id": "FetchReach-v4", ...}})`` builds
:class:`GymAdapter` around ``gymnasium.make(id, **kwargs)`` so that ``record``,
``train-bc``, ``actor``, ``learner``, ``eval`` and ``bench`` run on a user's simulator:

* **Observations** (a ``Box`` or a ``Dict`` of ``Box``es, nested dicts flattened with ``_``):
  every image (``uint8`` with shape ``(H, W, 3)``, or ``(3, H, W)``, transposed) is kept
  under its key; every other ``Box`` is flattened, cast to float32 and concatenated, in the
  space's key order, into ``obs["state"]``. ``state`` is absent when there is nothing but
  images. A bare image ``Box`` is kept under ``image``.
* **Actions**: ``Box(-1, 1, (A,), float32)`` of the env's own dimension A (not padded to 7),
  mapped linearly to the env's ``[low, high]`` where both bounds are finite (dims with an
  infinite bound pass through unchanged). Non-finite actions raise (``RejectNonFiniteAction``).
  Learners then need ``learner.action_dim = A`` (``GymAdapter.action_dim``).
* **Success**: ``info[success_key]`` (any key, e.g. gym-hil's ``"succeed"``; ``"auto"`` =
  ``"success"`` or ``"is_success"``)
  or, for envs without a flag, ``reward >= success_threshold``; mirrored into both
  ``info["success"]`` and ``info["is_success"]``. ``terminate_on_success`` ends the episode
  on success as the built-in tasks do (goal-conditioned envs such as Fetch never terminate).
* ``info["raw_obs"]``: the env's original observation, for scripted experts.
* **Scripted expert** (``expert: "module:function"``): see :func:`load_expert`; it serves as
  the demonstrator (``collect_episodes``) and, through :class:`ExpertOperator`, as the
  simulated operator of ``learners.inprocess.run_online``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Mapping
from typing import Any, Callable

import gymnasium as gym
import numpy as np

SUCCESS_KEYS = ("success", "is_success")


@dataclasses.dataclass
class GymEnvConfig:
    """The ``env`` config group for a gymnasium env (``launch/config/env/gym.yaml``).

    Attributes:
        type: always ``gym`` (selects this adapter in ``robot_env.make_env``).
        id: registered env id; ``"module:Id"`` imports ``module`` first (gymnasium's syntax).
        kwargs: keyword arguments of ``gymnasium.make``.
        imports: modules imported before ``make`` (to register ids).
        success_key: the ``info`` key holding the env's success flag (``succeed`` for gym-hil),
            or ``auto`` = ``success`` or ``is_success``, whichever the env sets.
        success_threshold: success when ``reward >= this`` (for envs with no flag); None = off.
        terminate_on_success: end the episode (``terminated``) on success.
        max_episode_steps: override the registered time limit; None = keep it.
        rescale_actions: map ``[-1, 1]`` to the env's finite ``[low, high]``.
        expert: ``"module:function"`` scripted expert, or None.
        expert_kwargs: keyword arguments of the expert factory.
    """

    type: str = "gym"
    id: str = "FetchReach-v4"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    imports: tuple[str, ...] = ()
    success_key: str = "auto"
    success_threshold: float | None = None
    terminate_on_success: bool = True
    max_episode_steps: int | None = None
    rescale_actions: bool = True
    expert: str | None = None
    expert_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.imports = tuple(self.imports or ())
        self.kwargs, self.expert_kwargs = dict(self.kwargs or {}), dict(self.expert_kwargs or {})
        if self.type != "gym":
            raise ValueError(f"GymEnvConfig.type must be 'gym', got {self.type!r}")
        if not isinstance(self.success_key, str) or not self.success_key:
            raise ValueError(f"success_key must be an info key (gym-hil: succeed) or 'auto', got {self.success_key!r}")
        if self.expert is not None and ":" not in self.expert:
            raise ValueError(f"expert must be 'module:function', got {self.expert!r}")


def is_image_space(space: gym.Space) -> bool:
    """uint8 ``(H, W, 3)`` or ``(3, H, W)`` Box."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and (space.shape[-1] == 3 or space.shape[0] == 3))


def _leaves(space: gym.Space, prefix: str = "") -> list[tuple[tuple[str, ...], str, gym.spaces.Box]]:
    """``(path, flat key, Box)`` for every leaf of a (nested) Dict / Box space."""
    if isinstance(space, gym.spaces.Box):
        return [((), prefix or "image", space)]
    if isinstance(space, gym.spaces.Dict):
        out = []
        for k, sub in space.spaces.items():
            for path, key, box in _leaves(sub, f"{prefix}_{k}" if prefix else k):
                out.append(((k, *path), key, box))
        return out
    raise TypeError(f"observation space {space} is not a Box or a Dict of Boxes; hilr cannot adapt it")


class GymAdapter(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The contract's flat obs dict, ``[-1, 1]`` actions and mirrored success (module docstring).

    Args:
        env: the gymnasium env (not yet reset).
        cfg: the adapter config.
    """

    def __init__(self, env: gym.Env, cfg: GymEnvConfig) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, cfg=cfg)  # lets env.spec.make() rebuild it
        gym.Wrapper.__init__(self, env)
        self.cfg = cfg
        act = env.action_space
        if not isinstance(act, gym.spaces.Box) or len(act.shape) != 1:
            raise TypeError(f"{cfg.id}: action space {act} is not a 1-D Box; hilr needs continuous actions")
        self.action_dim = int(act.shape[0])
        low, high = act.low.astype(np.float64), act.high.astype(np.float64)
        self._rescale = np.isfinite(low) & np.isfinite(high) & bool(cfg.rescale_actions)
        self._low, self._high = low, high
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
        self._leaves = _leaves(env.observation_space)
        spaces: dict[str, gym.Space] = {}
        self._state_parts: list[tuple[tuple[str, ...], int]] = []
        self._image_parts: list[tuple[tuple[str, ...], str, bool]] = []
        for path, key, box in self._leaves:
            if is_image_space(box):
                chw = box.shape[-1] != 3
                h, w = (box.shape[1], box.shape[2]) if chw else box.shape[:2]
                spaces[key] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
                self._image_parts.append((path, key, chw))
            else:
                self._state_parts.append((path, int(np.prod(box.shape))))
        if any(k == "state" for _, k, _ in self._image_parts):
            raise ValueError("an image observation is named 'state'; rename it in the env")
        dim = sum(n for _, n in self._state_parts)
        if dim:
            spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32), **spaces}
        self.observation_space = gym.spaces.Dict(spaces)

    # ---------------------------------------------------------------- conversions
    def convert_obs(self, raw: Any) -> dict[str, np.ndarray]:
        """The env's observation -> the contract's flat dict (``state`` float32, images uint8 HWC)."""

        def get(path: tuple[str, ...]) -> np.ndarray:
            v = raw
            for k in path:
                v = v[k]
            return np.asarray(v)

        out: dict[str, np.ndarray] = {}
        if self._state_parts:
            out["state"] = np.concatenate([get(p).astype(np.float32).ravel() for p, _ in self._state_parts])
        for path, key, chw in self._image_parts:
            img = get(path)
            out[key] = np.ascontiguousarray(img.transpose(1, 2, 0) if chw else img)
        return out

    def to_env_action(self, action: Any) -> np.ndarray:
        """``[-1, 1]`` action ``(A,)`` -> the env's units (rejects NaN/inf and wrong shapes)."""
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(f"action has shape {a.shape}, expected ({self.action_dim},)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"non-finite action {a}; refusing to step the env")
        a = np.clip(a, -1.0, 1.0)
        out = np.where(self._rescale, self._low + (a + 1.0) * 0.5 * (self._high - self._low), a)
        return out.astype(self.env.action_space.dtype)

    def to_normalized(self, env_action: Any) -> np.ndarray:
        """Inverse of :meth:`to_env_action` (e.g. for an expert that speaks the env's units)."""
        a = np.asarray(env_action, np.float64).reshape(self.action_dim)
        span = np.where(self._rescale, self._high - self._low, 2.0)
        lo = np.where(self._rescale, self._low, -1.0)
        return np.clip(2.0 * (a - lo) / span - 1.0, -1.0, 1.0).astype(np.float32)

    def _success(self, reward: float, info: Mapping[str, Any]) -> bool:
        keys = SUCCESS_KEYS if self.cfg.success_key == "auto" else (self.cfg.success_key,)
        flag = any(bool(np.asarray(info[k]).any()) for k in keys if k in info)
        if self.cfg.success_threshold is not None:
            flag = flag or float(reward) >= self.cfg.success_threshold
        return flag

    def _info(self, info: Mapping[str, Any], raw: Any, success: bool) -> dict[str, Any]:
        out = dict(info)
        out["success"] = out["is_success"] = bool(success)
        out["raw_obs"] = raw
        return out

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env; ``info`` carries ``success``/``is_success`` (False) and ``raw_obs``."""
        raw, info = self.env.reset(seed=seed, options=options)
        return self.convert_obs(raw), self._info(info, raw, False)

    def step(self, action: Any):
        """Step with a ``[-1, 1]`` action; success mirrored, optionally terminating."""
        raw, reward, terminated, truncated, info = self.env.step(self.to_env_action(action))
        success = self._success(reward, info)
        terminated = bool(terminated) or (success and self.cfg.terminate_on_success)
        return self.convert_obs(raw), float(reward), terminated, bool(truncated), self._info(info, raw, success)


def make_gym_env(cfg: Mapping[str, Any] | GymEnvConfig, render_mode: str | None = None) -> GymAdapter:
    """``gymnasium.make`` the configured id and wrap it in :class:`GymAdapter`."""
    from robot_env.registry import config_from_dict

    if not isinstance(cfg, GymEnvConfig):
        cfg = config_from_dict(GymEnvConfig, dict(cfg))
    for module in cfg.imports:
        importlib.import_module(module)
    kwargs = dict(cfg.kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(cfg.max_episode_steps)
    try:
        env = gym.make(cfg.id, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make gymnasium env {cfg.id!r}: {exc} (set env.imports to the module that "
                         "registers it, or use the 'module:Id' form)") from exc
    return GymAdapter(env, cfg)


# ----------------------------------------------------------------------------- experts
class GymExpert:
    """A user's expert behind the hilr expert interface: ``reset()``, ``act(obs, info) -> (A,)``
    float32 in ``[-1, 1]``.

    Args:
        policy: ``policy(obs, info) -> action`` in the env's own units (``info["raw_obs"]``
            holds the env's original observation).
        adapter: the :class:`GymAdapter` (maps the action to ``[-1, 1]``).
        reset: called at the start of every episode, or None.
    """

    def __init__(self, policy: Callable[[Any, Any], Any], adapter: GymAdapter,
                 reset: Callable[[], None] | None = None) -> None:
        self.policy, self.adapter, self._reset = policy, adapter, reset

    def reset(self) -> None:
        """Start of an episode."""
        if self._reset is not None:
            self._reset()

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        """The expert's action, normalised to ``[-1, 1]``."""
        return self.adapter.to_normalized(self.policy(obs, info))


def load_expert(env: gym.Env, spec: str | None = None, **kwargs: Any) -> GymExpert:
    """Load the ``"module:function"`` expert of a :class:`GymAdapter` env (default: its config's).

    ``function`` is either the policy itself, ``f(obs, info) -> action`` (two required
    positional parameters), or a factory (a class, or a function of keyword arguments only)
    called with ``kwargs`` (default: the config's ``expert_kwargs``) that returns an object
    with ``act(obs, info)`` and optionally ``reset()``. Actions are in the env's own units.
    """
    adapter = _find_adapter(env)
    spec = spec or adapter.cfg.expert
    if not spec:
        raise ValueError(f"no expert configured for {adapter.cfg.id!r} (env.expert: 'module:function')")
    module_name, _, attr = spec.partition(":")
    target = getattr(importlib.import_module(module_name), attr)
    kwargs = kwargs or dict(adapter.cfg.expert_kwargs)
    if not inspect.isclass(target):
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(params) >= 2:
            return GymExpert(target, adapter)
    obj = target(**kwargs)
    if not callable(getattr(obj, "act", None)):
        raise TypeError(f"expert factory {spec} returned {type(obj).__name__} without act(obs, info)")
    return GymExpert(obj.act, adapter, getattr(obj, "reset", None))


def _find_adapter(env: gym.Env) -> GymAdapter:
    e = env
    while not isinstance(e, GymAdapter):
        if not hasattr(e, "env"):
            raise TypeError("env is not (a wrapper around) a GymAdapter")
        e = e.env
    return e


class ExpertOperator:
    """A simulated operator for ``learners.inprocess.run_online`` built on any expert (any A).

    Takes over after the policy's action differs from the expert's by more than
    ``disagreement`` (L2, normalised units) for ``patience`` steps, drives for at least
    ``takeover_steps`` steps with Gaussian ``noise``, and hands back once they agree again.
    Call :meth:`reset` at every episode start.
    """

    def __init__(self, expert: Any, disagreement: float = 0.5, patience: int = 3,
                 takeover_steps: int = 8, noise: float = 0.05, seed: int = 0) -> None:
        self.expert, self.disagreement, self.patience = expert, float(disagreement), int(patience)
        self.takeover_steps, self.noise = int(takeover_steps), float(noise)
        self.rng = np.random.default_rng(seed)
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        """New episode: the policy drives."""
        self.expert.reset()
        self._drift, self._left = 0, 0

    def wrap(self, env: gym.Env) -> gym.Env:
        """``env`` wrapped so that every ``reset()`` also resets this operator."""
        return OnReset(env, self.reset)

    def __call__(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any], policy_action: np.ndarray):
        """The operator's action while it drives, else None."""
        want = np.asarray(self.expert.act(obs, info), np.float32)
        far = float(np.linalg.norm(want - np.asarray(policy_action, np.float32))) > self.disagreement
        if self._left == 0:
            self._drift = self._drift + 1 if far else 0
            if self._drift < self.patience:
                return None
            self._left, self._drift = self.takeover_steps, 0
        self._left = max(self._left - 1, 1 if far else 0)
        self.steps += 1
        return np.clip(want + self.rng.normal(0, self.noise, want.shape), -1, 1).astype(np.float32)


class OnReset(gym.Wrapper):
    """Calls ``hook()`` after every ``reset()`` (e.g. to reset a simulated operator)."""

    def __init__(self, env: gym.Env, hook: Callable[[], None]) -> None:
        super().__init__(env)
        self.hook = hook

    def reset(self, **kwargs: Any):
        """Reset the env, then call the hook."""
        out = self.env.reset(**kwargs)
        self.hook()
        return out
