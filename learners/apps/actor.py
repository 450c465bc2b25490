"""``hilr actor``: run base + residual policy on the robot with interventions, stream transitions.

Examples::

    hilr actor base_policy=runs/train_bc/<run>/bc.safetensors             # sim, sim operator
    hilr actor robot=ros_franka camera=realsense teleop=spacemouse transport.host=<learner ip>
    hilr actor --help
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def run_actor(cfg: dict, out_dir: Path) -> dict:
    """Build env, operator, agent and transport from ``cfg`` and run the actor loop."""
    from learners.actor_loop import ActorConfig, ActorLoop
    from learners.agent import Agent
    from learners.builders import agent_config, build_env, transport_config, wrap_teleop
    from learners.transport import TransitionSender, WeightSubscriber
    from policies.base import load_base_policy
    from policies.encoders import obs_spec_from_space
    from robot_env.registry import config_from_dict
    from teleop.episode_control import build_episode_control

    env = build_env(cfg)
    env, teleop = wrap_teleop(env, cfg)
    sender = weights = keyboard = None
    try:
        env, keyboard = build_episode_control(env, cfg, teleop)
        if keyboard is not None:
            keyboard.start()
            log.info("operator keys: %s", "; ".join(keyboard.bindings.help_lines()))
        from learners.agent import resolve_device

        base = load_base_policy(cfg.get("base_policy"), device=resolve_device(str(cfg["learner"].get("device", "cpu"))),
                                action_dim=int(env.action_space.shape[0]))
        acfg = agent_config(cfg["learner"], action_dim=int(env.action_space.shape[0]))
        agent = Agent(obs_spec_from_space(env.observation_space), acfg, base)
        loop_cfg = config_from_dict(ActorConfig, cfg["actor"])
        if cfg.get("learn", True):
            tcfg = transport_config(cfg["transport"])
            outbox = cfg["transport"].get("outbox_dir") or str(out_dir / f"outbox_{loop_cfg.actor_id}")
            sender = TransitionSender(tcfg, loop_cfg.actor_id, outbox_dir=outbox).start()
            weights = WeightSubscriber(tcfg).start()
        loop = ActorLoop(env, agent, loop_cfg, sender=sender, weights=weights, run_dir=out_dir,
                         tensorboard=bool(cfg.get("tensorboard", True)))
        summary = loop.run(progress=cfg.get("progress", True))
        if loop.refused is not None:
            summary["refused"] = loop.refused
        if weights is not None:
            summary["weights"] = weights.stats()
        if sender is not None:
            flushed = sender.flush(float(cfg.get("flush_timeout_s", 30.0)))
            summary["flushed"] = flushed
            summary["transport"] = sender.stats()
        return summary
    finally:
        # The arm holds still before anything else is torn down (gymnasium envs have no arm).
        if hasattr(env.unwrapped, "arm"):
            try:
                env.unwrapped.arm.stop()
            except Exception as exc:  # noqa: BLE001 - a dead arm must not hide the original error
                log.warning("arm stop at shutdown failed: %s", exc)
        if keyboard is not None:
            keyboard.stop()  # restores the terminal
        if sender is not None:
            sender.close()
        if weights is not None:
            weights.close()
        if teleop is not None:
            teleop.disconnect()
        env.close()


@hydra_app("actor")
def main(cfg) -> int:
    """Entry point of ``hilr actor``."""
    out = run_dir()
    summary = run_actor(to_container(cfg), out)
    (out / "actor_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "transport"}, default=str))
    refused = (summary.get("weights") or {}).get("rejected") or {}
    if summary.get("weight_updates", 0) == 0 and refused.get("model_refused"):
        raise SystemExit(f"the learner's weights never fit this actor ({refused['model_refused']} messages refused): "
                         f"{summary.get('refused')}")
    if summary.get("weight_updates", 0) == 0 and refused.get("spec_mismatch"):
        raise SystemExit(f"the learner's weights never fit this actor's model ({refused['spec_mismatch']} messages "
                         f"refused: other network sizes, and the learner stated no model to adopt); start both "
                         f"with the same learner=<config> (this actor: learner.actor_hidden={cfg.learner.actor_hidden}, "
                         f"num_critics={cfg.learner.num_critics})")
    return 0
