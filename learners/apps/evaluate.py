"""``hilr eval``: N episodes without learning: success rate (95 % CI), intervention rate, cycle time.

Examples::

    hilr eval base_policy=<bc.safetensors>                          # the BC base alone
    hilr eval base_policy=<bc.safetensors> agent=<run>/checkpoints   # base + learned residual
    hilr eval episodes=50 task=peg_insert ...
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def resolve_agent_checkpoint(path: str | Path) -> Path:
    """An ``agent.safetensors`` file, or the newest one under a learner checkpoint folder."""
    p = Path(path)
    if p.is_file():
        return p
    latest = p / "LATEST"
    if latest.exists():
        return p / latest.read_text().strip() / "agent.safetensors"
    if (p / "agent.safetensors").exists():
        return p / "agent.safetensors"
    raise FileNotFoundError(f"no agent checkpoint at {p} (a file, a checkpoint folder, or a folder with LATEST)")


def evaluate_policy(cfg: dict, out_dir: Path | None = None) -> dict:
    """Run ``cfg["episodes"]`` deterministic episodes; returns the actor summary."""
    from learners.actor_loop import ActorConfig, ActorLoop
    from learners.agent import Agent
    from learners.builders import agent_config, build_env, wrap_teleop
    from policies.base import load_base_policy
    from policies.encoders import obs_spec_from_space

    env = build_env(cfg)
    env, teleop = wrap_teleop(env, cfg)
    try:
        base = load_base_policy(cfg.get("base_policy"), action_dim=int(env.action_space.shape[0]))
        checkpoint = None
        if cfg.get("agent"):
            path = resolve_agent_checkpoint(cfg["agent"])
            agent = Agent.from_checkpoint(path, base_policy=base, device="cpu")
            checkpoint = {"path": str(path.resolve()), "updates": agent.num_updates}
            log.info("residual from %s (%d critic updates)", checkpoint["path"], agent.num_updates)
        else:  # the base policy alone
            agent = Agent(obs_spec_from_space(env.observation_space), agent_config(cfg["learner"], mode="bc", action_dim=int(env.action_space.shape[0])), base)
        loop = ActorLoop(env, agent, ActorConfig(actor_id="eval", total_steps=0, episodes=int(cfg["episodes"]),
                                                 deterministic=True, seed=int(cfg["seed"]), log_every_episodes=0),
                         run_dir=out_dir, tensorboard=bool(cfg.get("tensorboard", True)))
        summary = loop.run(progress=cfg.get("progress", True))
        summary.pop("policy_version", None)  # weights from a learner: none here, the checkpoint says what ran
        summary["agent_checkpoint"] = checkpoint
        return summary
    finally:
        if teleop is not None:
            teleop.disconnect()
        env.close()


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted, or ``n/a`` (e.g. no episode finished)."""
    return "n/a" if value is None else format(value, spec)


@hydra_app("eval")
def main(cfg) -> int:
    """Entry point of ``hilr eval``."""
    out = run_dir()
    summary = evaluate_policy(to_container(cfg), out)
    (out / "eval_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lo, hi = summary["success_ci95"]
    ckpt = summary["agent_checkpoint"]
    what = "the base alone" if ckpt is None else f"base + residual after {ckpt['updates']} updates ({ckpt['path']})"
    print(f"success {summary['success_rate']:.1%} (95% CI {lo:.1%}-{hi:.1%}) over {summary['episodes']} episodes of "
          f"{what}; cycle time {fmt(summary['cycle_time_s'], '.2f')} s; intervention rate "
          f"{fmt(summary['intervention_rate'], '.1%')}")
    print(json.dumps(summary))
    return 0
