"""``hilr demo``: the whole human-in-the-loop loop on the built-in sim, one command.

1. the simulated operator records demonstrations (``teleop`` recorder, atomic episode files);
2. a deliberately small BC base policy is trained on them and evaluated;
3. ``hilr learner`` and ``hilr actor`` run as separate processes over real ZMQ on loopback:
   residual RL on the frozen BC base, with the simulated operator taking over when the
   policy drifts;
4. the final policy (base + residual) is evaluated without learning, and a report is
   written: ``report.png`` (success and intervention rates against env steps), ``report.json``.

Examples::

    hilr demo                                # state-based pick_cube, ~5 min on 2 CPU cores
    hilr demo online.total_steps=20000 task=peg_insert
    hilr demo --help
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def overrides(prefix: str, values: Any) -> list[str]:
    """Flatten a nested dict into hydra ``key=value`` overrides (``++`` so new keys are allowed)."""
    out: list[str] = []
    if isinstance(values, dict):
        for k, v in values.items():
            out += overrides(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        out.append(f"++{prefix}={json.dumps(values)}")
    return out


def group_choices() -> dict[str, str]:
    """The config-group options this run was composed from (``task=pick_cube`` ...)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if v is not None}
    except ValueError:  # not under hydra
        return {}


def record_demos(cfg: dict, out: Path) -> Path:
    """Step 1: the simulated operator records ``cfg.demos.episodes`` successful demos."""
    from learners.builders import build_env, wrap_teleop
    from robot_env.dataset import EpisodeWriter
    from teleop.recorder import record_episodes

    dataset = out / "demos"
    env = build_env(cfg)
    rec_cfg = dict(cfg, teleop={**cfg["teleop"], "always_active": True, **cfg["demos"]["operator"]})
    env, teleop = wrap_teleop(env, rec_cfg)
    try:
        writer = EpisodeWriter(dataset, fps=float(cfg["task"]["control_hz"]), task=cfg["task"]["name"],
                               observation_space=env.observation_space, action_space=env.action_space,
                               keep_only_successful=True, record_frames=False)
        stats = record_episodes(env, writer, cfg["demos"]["episodes"], progress=True, seed=cfg["seed"])
    finally:
        teleop.disconnect()
        env.close()
    log.info("recorded %d demos (%d attempts)", stats.kept, stats.attempts)
    return dataset


def train_base(cfg: dict, dataset: Path, out: Path) -> dict:
    """Step 2: train the BC base on the demos (and evaluate it in sim)."""
    from learners.apps.train_bc import run_train_bc

    bc_cfg = {"robot": cfg["robot"], "camera": cfg.get("camera") or {}, "task": cfg["task"],
              "policy": cfg["policy"], "dataset": str(dataset), "max_episodes": None, "only_successful": True,
              "privileged_state": cfg.get("privileged_state", False), "train": cfg["bc"]["train"],
              "eval": {"episodes": cfg["eval"]["episodes"], "seed": cfg["eval"]["seed"]},
              "seed": cfg["seed"], "progress": True}
    (out / "bc").mkdir(parents=True, exist_ok=True)
    return run_train_bc(bc_cfg, out / "bc")


def launch(verb: str, args: list[str], out: Path, log_name: str) -> subprocess.Popen:
    """Start ``hilr <verb> args`` as its own process, logging to ``out/<log_name>.log``."""
    cmd = [sys.executable, "-m", "learners.cli", verb, *args, f"hydra.run.dir={out / log_name}"]
    logf = open(out / f"{log_name}.log", "w")
    return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)


def read_episodes(path: Path) -> list[dict]:
    """The actor's ``episodes.jsonl`` (complete lines only)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return out


def run_online(cfg: dict, dataset: Path, base_ckpt: str, out: Path) -> dict:
    """Step 3: learner and actor processes over ZMQ; returns their summaries."""
    from tqdm import tqdm

    from learners.rollout import episode_rates

    tports = {"transitions_port": free_port(), "weights_port": free_port()}
    common = overrides("learner", cfg["learner"]) + overrides("transport", {**cfg["transport"], **tports})
    learner = launch("learner", [f"demos={dataset}", f"base_policy={base_ckpt}", *common, *overrides("loop", cfg["online"]["loop"]),
                                 f"torch_threads={cfg['online']['learner_threads']}"], out, "learner")
    choices = group_choices()
    env_over = [f"{g}={choices[g]}" for g in ("robot", "camera", "task") if g in choices]
    env_over += overrides("task", cfg["task"]) + [f"privileged_state={str(cfg.get('privileged_state', False)).lower()}"]
    actor = launch("actor", [f"base_policy={base_ckpt}", *env_over, *common,
                             *overrides("teleop", cfg["teleop"]), *overrides("actor", cfg["online"]["actor"]),
                             "progress=false"], out, "actor")
    total = cfg["online"]["actor"]["total_steps"]
    episodes_file = out / "actor" / "episodes.jsonl"
    bar = tqdm(total=total, desc="residual RL", unit="step")
    try:
        while actor.poll() is None:
            time.sleep(1.0)
            eps = read_episodes(episodes_file)
            if eps:
                success, interv = episode_rates(eps[-20:])
                bar.n = min(total, eps[-1]["env_steps"])
                bar.set_postfix(success=f"{success:.2f}", interv=f"{interv:.2f}", v=eps[-1]["policy_version"])
                bar.refresh()
            if learner.poll() not in (None, 0):  # rc 0: it went idle after the actor's last transition
                raise RuntimeError(f"the learner failed ({learner.returncode}); see {out / 'learner.log'}")
        bar.n = total
        bar.refresh()
    finally:
        bar.close()
        if actor.poll() is None:
            actor.terminate()
    if actor.returncode != 0:
        learner.terminate()
        raise RuntimeError(f"the actor failed ({actor.returncode}); see {out / 'actor.log'}")
    try:
        learner.wait(timeout=cfg["online"]["learner_exit_timeout_s"])
    except subprocess.TimeoutExpired:
        learner.terminate()  # SIGTERM: it checkpoints and exits
        learner.wait(timeout=60)
    actor_summary = json.loads((out / "actor" / "actor_summary.json").read_text())
    learner_summary = json.loads((out / "learner" / "learner_summary.json").read_text())
    return {"actor": actor_summary, "learner": learner_summary, "episodes": read_episodes(episodes_file)}


def final_eval(cfg: dict, base_ckpt: str, out: Path) -> dict:
    """Step 4: base + learned residual, deterministic, no learning."""
    from learners.apps.evaluate import evaluate_policy

    ev = dict(cfg, base_policy=base_ckpt, agent=str(out / "learner" / "checkpoints"), teleop=None,
              episodes=cfg["eval"]["episodes"], seed=cfg["eval"]["seed"], progress=True)
    return evaluate_policy(ev)


@hydra_app("demo")
def main(cfg) -> int:
    """Entry point of ``hilr demo``."""
    from learners.report import plot_training, summarize

    c = to_container(cfg)
    if (c.get("env") or {}).get("type") == "gym":
        raise SystemExit("drives the built-in robot env only; for a gymnasium env: hilr bench learn env=gym "
                         "(the same four-way study), or hilr record env=gym dataset=data/<d>; hilr train-bc env=gym "
                         "dataset=data/<d> policy=bc_state; hilr learner demos=data/<d> base_policy=<bc>; "
                         "hilr actor env=gym base_policy=<bc>")
    out = run_dir()
    t0 = time.monotonic()
    print(f"[1/4] recording {c['demos']['episodes']} demonstrations with the simulated operator")
    dataset = record_demos(c, out)
    print("[2/4] training the BC base policy")
    bc = train_base(c, dataset, out)
    print(f"      BC base success in sim: {bc['eval']['success_rate']:.0%} over {bc['eval']['episodes']} episodes")
    print("[3/4] residual RL: learner + actor processes over ZMQ, simulated interventions")
    online = run_online(c, dataset, bc["checkpoint"], out)
    print("[4/4] evaluating base + residual without learning")
    final = final_eval(c, bc["checkpoint"], out)
    report = summarize(bc, online, final, seconds=time.monotonic() - t0)
    plot_training(online["episodes"], bc["eval"]["success_rate"], final["success_rate"], out / "report.png",
                  title=f"hilr demo: {c['task']['name']} ({'images' if c.get('camera') else 'state'})")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(report["text"])
    print(f"report: {out / 'report.png'}  {out / 'report.json'}")
    return 0
