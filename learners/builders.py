"""Build the actor's and learner's objects from a plain (hydra) config.

Shared by ``hilr actor``, ``hilr learner``, ``hilr eval`` and ``hilr demo`` so every process
builds the env, the operator, the agent and the transport the same way.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

ENV_KEYS = ("robot", "camera", "task", "control", "safety", "time_limit", "privileged_state", "crops_file", "env",
            "reward", "obs_keys")


def env_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a verb's config that ``robot_env.make_env`` reads."""
    return {k: cfg[k] for k in ENV_KEYS if k in cfg and cfg[k] is not None}


def build_env(cfg: Mapping[str, Any]) -> Any:
    """``make_env`` from the verb config (``robot``, ``camera``, ``task``, ``control``, ...).

    ``privileged_state: true`` (sim only) appends the sim's task state to ``obs["state"]``.
    """
    from robot_env import make_env

    return make_env(env_config(cfg))


def wrap_teleop(env: Any, cfg: Mapping[str, Any]) -> tuple[Any, Any]:
    """Wrap ``env`` with the intervention wrapper when ``cfg["teleop"]`` names a device.

    A gymnasium env (``env=gym``) with ``teleop=sim_operator`` gets its own scripted expert
    as the operator (``teleop.expert_intervention``), whatever its action size.

    Returns:
        ``(env, teleop)``; ``teleop`` is None (and ``env`` unchanged) when the config has
        ``teleop: null``. The teleoperator is connected; disconnect it when done.
    """
    spec = cfg.get("teleop")
    if not spec:
        return env, None
    from teleop.expert_intervention import is_gym_env, wrap_with_expert

    if dict(spec).get("type") == "sim_operator" and is_gym_env(env):
        wrapped = wrap_with_expert(env, dict(spec))
        return wrapped, wrapped  # the wrapper stands in for the device (its disconnect() is a no-op)
    from teleop.base import make_teleoperator
    from teleop.intervention import InterventionWrapper

    teleop = make_teleoperator(dict(spec))
    teleop.connect()
    clock = "steps" if cfg.get("sticky_clock", "wall") == "steps" else time.monotonic
    return InterventionWrapper(env, teleop, sticky_s=float(cfg.get("sticky_s", 0.5)), clock=clock), teleop


def agent_config(values: Mapping[str, Any], **overrides: Any) -> Any:
    """``AgentConfig`` from the ``learner`` config group (unknown keys raise)."""
    from learners.agent import AgentConfig
    from robot_env.registry import config_from_dict

    names = {f.name for f in dataclasses.fields(AgentConfig)}
    merged = {k: v for k, v in dict(values).items() if k in names}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown learner config key(s) {unknown}; valid: {sorted(names)}")
    merged.update(overrides)
    return config_from_dict(AgentConfig, merged)


def obs_spec_from_dataset(root: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """The observation layout recorded in a dataset's ``meta.json`` (no env needed)."""
    from robot_env.dataset import read_meta

    meta = read_meta(root)
    spaces = meta["observation_space"]
    spaces = spaces.get("spaces", spaces)
    spec = {}
    for key, box in spaces.items():
        spec[key] = (tuple(int(s) for s in box["shape"]), str(box["dtype"]))
    return spec


def obs_spec_from_config(values: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: {shape: [...], dtype: ...}}`` from config -> ObsSpec."""
    return {k: (tuple(int(s) for s in v["shape"]), str(v["dtype"])) for k, v in values.items()}


def load_demo_buffer(replay: Any, dataset: str | Path | None, scale: np.ndarray,
                     max_episodes: int | None = None, base_policy: Any = None) -> int:
    """Fill the demo buffer from a recorded dataset; returns transitions added.

    Demos recorded before the base policy existed carry no base actions: with
    ``base_policy`` (the actor's frozen base) they are relabelled by running it over the
    demo observations, so the residual label ``(action - base) / scale`` is right.
    """
    if not dataset:
        return 0
    from learners.bc import load_dataset_episodes
    from learners.replay import relabel_base_actions

    added = 0
    for ep in load_dataset_episodes(dataset, max_episodes=max_episodes, only_successful=True):
        if base_policy is not None and "base_action" not in ep:
            ep = relabel_base_actions(ep, base_policy)
        added += replay.demo.add_episode(ep, scale=scale)
    return added


def build_replay(spec: Mapping[str, Any], agent_cfg: Any, cache: Any = None) -> Any:
    """Online + demo buffers sized and discounted per the agent config.

    ``cache``: a :class:`learners.feature_cache.FeatureCache` (``learner.cache_features``): both
    buffers store its frozen-backbone features in place of camera images, computed once per
    stored frame (``spec`` is then the image layout the frames arrive in).
    """
    from learners.replay import MixedReplay, ReplayBuffer

    kw = {"action_dim": agent_cfg.action_dim, "n_step": agent_cfg.n_step, "gamma": agent_cfg.gamma}
    if cache is not None:
        spec, kw["frame_transform"] = cache.replay_spec(), cache.frame
    online = ReplayBuffer(spec, agent_cfg.buffer_capacity, seed=agent_cfg.seed, **kw)
    demo = ReplayBuffer(spec, agent_cfg.demo_capacity, seed=agent_cfg.seed + 1, **kw)
    return MixedReplay(online, demo, agent_cfg.scale_array(), demo_ratio=agent_cfg.demo_ratio)


def transport_config(values: Mapping[str, Any] | None, **overrides: Any) -> Any:
    """``TransportConfig`` from the ``transport`` group with overrides."""
    from learners.transport import TransportConfig

    return TransportConfig.from_dict({**dict(values or {}), **overrides})
