"""``hilr train-bc``: train the BC base policy from a recorded dataset, then evaluate it in sim.

Examples::

    hilr train-bc dataset=data/pick_cube_demos                      # images+state from a recording
    hilr train-bc dataset=null expert_demos.episodes=20 privileged_state=true camera=none  # scripted demos, state-based
    hilr train-bc env=gym dataset=data/fetch_reach_demos policy=bc_state   # a gymnasium env's recording
    hilr train-bc --help

Writes ``bc_best.safetensors`` (lowest validation loss), ``bc_last.safetensors`` and
``train_bc.json`` (losses, eval success rate) into the run directory; prints the JSON summary last.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def build_sim_env(cfg: dict[str, Any]) -> Any:
    """The evaluation env: ``env=gym``'s gymnasium env, else the one named by
    ``robot``/``camera``/``task`` (+ ``privileged_state``), free-running."""
    from learners.builders import build_env

    return build_env({**cfg, "camera": cfg.get("camera") or {}, "control": {"mode": "free_running"}})


def expert_episodes(env: Any, cfg: dict[str, Any]) -> list:
    """Scripted-expert demonstrations collected in ``env`` (successful episodes only)."""
    from learners.rollout import collect_episodes

    e = cfg["expert_demos"]
    if (cfg.get("env") or {}).get("type") == "gym":  # the env's own `module:function` expert
        from robot_env.gym_env import load_expert

        expert = load_expert(env)
    else:
        from robot_env.sim.experts import make_expert

        expert = make_expert(cfg["task"]["name"], noise=e["noise"], speed=e["speed"], seed=cfg["seed"])
    return collect_episodes(env, expert.act, e["episodes"], seed=cfg["seed"], reset=expert.reset, only_successful=True)


def run_train_bc(cfg: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Load (or collect) episodes, train, save checkpoints, evaluate in sim."""
    from learners.bc import BCTrainConfig, load_dataset_episodes, train_bc
    from learners.rollout import evaluate
    from policies.bc import BCBasePolicy, BCConfig
    from robot_env.registry import config_from_dict

    import torch

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))  # 2 threads on a busy 2-core box can be 10x slower than 1
    env = None
    if cfg.get("dataset"):
        episodes = load_dataset_episodes(cfg["dataset"], cfg.get("max_episodes"), cfg.get("only_successful", True))
    else:
        env = build_sim_env(cfg)
        episodes = expert_episodes(env, cfg)
    log.info("training BC on %d episodes (%d frames)", len(episodes), sum(len(e["action"]) for e in episodes))
    policy_cfg = config_from_dict(BCConfig, cfg["policy"])
    train_cfg = config_from_dict(BCTrainConfig, {**cfg["train"], "seed": cfg["seed"]})
    model, metrics = train_bc(episodes, policy_cfg, train_cfg, out_dir, progress=cfg.get("progress", True))
    summary: dict[str, Any] = {"checkpoint": str(out_dir / "bc_best.safetensors"), "episodes": len(episodes),
                               "best_val_loss": metrics["best_val_loss"], "train_seconds": metrics["seconds"],
                               "frames": metrics["frames"], "val_loss": metrics["val_loss"]}
    ev = cfg.get("eval") or {}
    if ev.get("episodes", 0) > 0:
        env = env or build_sim_env(cfg)
        policy = BCBasePolicy(model, train_cfg.device)
        env_spec = {k: tuple(s.shape) for k, s in env.observation_space.spaces.items()}
        want = {k: tuple(s) for k, (s, _) in model.spec.items()}
        if any(env_spec.get(k) != s for k, s in want.items()):
            raise SystemExit(f"eval env observations {env_spec} do not match the dataset's {want}; "
                             "set camera=/privileged_state= like the recording, or eval.episodes=0")
        res = evaluate(env, policy.act, ev["episodes"], seed=ev.get("seed", 10_000), reset=policy.reset)
        summary["eval"] = {k: res[k] for k in ("success_rate", "ci95", "mean_steps", "episodes")}
        log.info("BC success rate in sim: %.2f (95%% CI %s) over %d episodes",
                 res["success_rate"], res["ci95"], res["episodes"])
    if env is not None:
        env.close()
    return summary


@hydra_app("train_bc")
def main(cfg) -> int:
    """Entry point of ``hilr train-bc``."""
    out = run_dir()
    c = to_container(cfg)
    summary = run_train_bc(c, Path(c.get("out_dir") or out))
    (out / "train_bc.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0
