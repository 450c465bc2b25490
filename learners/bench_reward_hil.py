"""``hilr bench reward``'s process stage: the real-robot session's three processes, in sim.

``hilr sim-robot`` (the MuJoCo arm and camera behind ROS2 topics), ``hilr learner`` (ZMQ) and
``hilr actor robot=ros_sim camera=ros_sim reward=classifier`` run as separate processes, exactly
as the README's "first session on a real robot" starts them on a robot PC. The actor's reward
comes only from the image classifier (the sim robot's own success is audited beside it, never
used); the simulated operator intervenes. Afterwards each learner checkpoint nearest to an
evaluation point is evaluated with the sim's ground truth on the study's fixed reset seeds, paired
against the same BC base (``base_eval_seed<k>.json``), in process.

Everything lives under ``<out_dir>/processes_seed<k>/`` (the base checkpoint, the demo dataset,
the three run directories, logs); the result goes to ``<out_dir>/processes_seed<k>.json``, and a
finished seed is skipped on restart. A run whose processes finished but whose evaluation did
not is only evaluated; a run that died part-way is redone whole (the learner's checkpoints of an
unfinished run are not a result).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
# recipe keys not passed as overrides by learner_overrides (the seed goes on the command lines by itself)
_SKIP_KEYS = ("seed",)


def free_port() -> int:
    """A TCP port nobody listens on now (the study workers may hold the defaults)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_demos(root: Path, demos: list[dict[str, np.ndarray]], task: str) -> int:
    """The in-memory demos of ``<task>/state`` as a recorded dataset (``hilr learner demos=``),
    through the recorder's writer."""
    from learners import bench_learn as bl
    from robot_env.dataset import EpisodeWriter

    shutil.rmtree(root, ignore_errors=True)
    env = bl.make_variant_env(f"{task}/state")
    try:
        writer = EpisodeWriter(root, fps=env.unwrapped.task.control_hz, task=task,
                               observation_space=env.observation_space, action_space=env.action_space,
                               record_frames=False)
    finally:
        env.close()
    keys = [k[4:] for k in demos[0] if k.startswith("obs/")]
    for ep in demos:
        writer.begin({k: ep[f"obs/{k}"][0] for k in keys})
        for t in range(len(ep["action"])):
            writer.add(ep["action"][t], {k: ep[f"obs/{k}"][t + 1] for k in keys}, float(ep["reward"][t]),
                       bool(ep["terminated"][t]), bool(ep["truncated"][t]), {"success": bool(ep["success"][t])})
        writer.end(bool(ep["episode_success"]))
    return writer.num_episodes


def learner_overrides(values: Mapping[str, Any]) -> list[str]:
    """``learner.<key>=<value>`` hydra overrides reproducing ``values`` (the study's recipe) on top
    of the shipped ``residual_td3_cpu`` yaml."""
    from omegaconf import OmegaConf

    shipped = OmegaConf.to_container(OmegaConf.load(REPO / "launch" / "config" / "learner" / "residual_td3_cpu.yaml"))
    out = []
    for k, v in values.items():
        if k in _SKIP_KEYS or shipped.get(k) == v:
            continue
        if isinstance(v, dict):
            for kk, vv in v.items():
                if (shipped.get(k) or {}).get(kk) != vv:
                    out.append(f"++learner.{k}.{kk}={json.dumps(vv)}")
        else:
            out.append(f"++learner.{k}={json.dumps(v)}")
    return out


def _popen(args: list[str], log_path: Path, env: Mapping[str, str]) -> subprocess.Popen:
    f = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, "-m", "learners.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                            env=dict(env), cwd=REPO)


def _stop(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _tail(path: Path, n: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def checkpoints_by_env_steps(checkpoint_dir: Path) -> list[tuple[int, int, Path]]:
    """``(env_steps, updates, folder)`` of every learner checkpoint (``step_<updates>_<env steps>``,
    ``_r<n>`` appended to a repeated name: an idle learner checkpoints the same counts again), in
    order of writing."""
    out = []
    for p in checkpoint_dir.glob("step_*"):
        m = re.fullmatch(r"step_(\d+)_(\d+)(?:_r(\d+))?", p.name)
        if m and (p / "agent.safetensors").exists():
            out.append((int(m.group(2)), int(m.group(1)), int(m.group(3) or 0), p))
    return [(steps, updates, p) for steps, updates, _, p in sorted(out)]


def run_processes(cfg: Any, out: Path, base: Any, demos: list[dict[str, np.ndarray]],
                  checkpoint: Path, study: Any, base_eval: Mapping[str, Any], progress: bool = True) -> dict[str, Any]:
    """One seed of the three-process run; returns (and writes) its result. A run whose processes
    finished (actor summary and a checkpoint of every step) is evaluated, not run again."""
    from learners import bench_learn as bl
    from robot_env.dataset import list_episodes

    seed = cfg.seed
    work = out / f"processes_seed{seed}"
    base_path, demo_dir = work / "base.safetensors", work / "demos"
    values = bl.learner_values("residual_hil", study, seed)
    recipe = learner_overrides(values)
    ports = (f"transport.transitions_port={free_port()}", f"transport.weights_port={free_port()}")
    sim_cmd = ["sim-robot", f"hydra.run.dir={work / 'sim'}", f"task={cfg.task}", "~camera.wrist", f"node.seed={seed}"]
    learner_cmd = ["learner", f"hydra.run.dir={work / 'learner'}", f"demos={demo_dir}", f"base_policy={base_path}",
                   f"++learner.seed={seed}", *recipe, f"loop.learning_starts={study.learning_starts}",
                   "loop.checkpoint_every_s=20", "loop.keep_checkpoints=100000", "loop.idle_exit_s=20",
                   "resume=false", "torch_threads=1", *ports]
    actor_cmd = ["actor", f"hydra.run.dir={work / 'actor'}", "robot=ros_sim", "camera=ros_sim", "~camera.wrist",
                 f"task={cfg.task}", f"task.image_size=[{cfg.image_size},{cfg.image_size}]",
                 "privileged_state=true", "+obs_keys=[state]", f"base_policy={base_path}",
                 "reward=classifier", f"reward.checkpoint={checkpoint}", f"reward.threshold={cfg.threshold}",
                 f"reward.consecutive={cfg.consecutive}", f"teleop.skill={study.operator_skill}",
                 f"teleop.seed={seed}", f"++learner.seed={seed}", *recipe, f"actor.total_steps={cfg.process_steps}",
                 f"actor.seed={seed * 1000}", "actor.log_every_episodes=25", "labels.keyboard=false",
                 "progress=false", "flush_timeout_s=120", *ports]
    if finished_run(work, cfg.process_steps):  # the processes finished earlier; only the evaluation was lost
        log.info("bench reward: the 3-process run in %s is complete; evaluating its checkpoints", work)
    else:
        _run_three(cfg, work, base, demos, sim_cmd, learner_cmd, actor_cmd)
    summary = json.loads((work / "actor" / "actor_summary.json").read_text())
    checkpoints = checkpoints_by_env_steps(work / "learner" / "checkpoints")
    curve, successes, points = evaluate_checkpoints(checkpoints, base, study, cfg, base_eval, progress)
    diff = bl.paired_difference([{"successes": successes}], [base_eval["successes"]])
    result = {"env_steps": cfg.process_steps, "wall_s": _log_span_s(work), "demos": len(list_episodes(demo_dir)),
              "curve": curve, "successes": successes, "evaluated_checkpoints": points,
              "paired_difference_to_base": diff,
              "final_updates": checkpoints[-1][1], "learner_env_steps": checkpoints[-1][0],
              "learner_resumed_env_steps": _resumed_env_steps(work / "learner.log"),
              "actor": {k: summary.get(k) for k in ("episodes", "successes", "success_rate", "intervention_rate",
                                                     "reward_sources", "disagreements", "classifier_audit",
                                                     "weight_updates", "env_steps")
                        if k in summary},
              "control_overruns": _overruns(work / "actor" / "episodes.jsonl"),
              "commands": {name: " ".join(["hilr", *c]) for name, c in
                           (("sim_robot", sim_cmd), ("learner", learner_cmd), ("actor", actor_cmd))}}
    bl._write_json(out / f"processes_seed{seed}.json", result)
    return result


def _overruns(episodes_jsonl: Path) -> dict[str, int]:
    """Control-period overruns of the actor's episodes (a CPU-starved box misses its 100 ms)."""
    eps = [json.loads(line) for line in episodes_jsonl.read_text().splitlines() if line.strip()] \
        if episodes_jsonl.exists() else []
    per = [int(e.get("overruns", 0)) for e in eps]
    return {"total": sum(per), "episodes_with_overruns": sum(1 for n in per if n), "episodes": len(per)}


def _resumed_env_steps(learner_log: Path) -> int:
    """Transitions the learner found in its checkpoint folder at start (0 for a clean run; a
    learner of an aborted earlier start of the same run can leave some)."""
    m = re.search(r"resumed from \S+: (\d+) env steps", learner_log.read_text(errors="replace")) if learner_log.exists() else None
    return int(m.group(1)) if m else 0


def finished_run(work: Path, steps: int) -> bool:
    """The actor finished its steps (its summary exists) and the learner checkpointed all of them."""
    ckpts = checkpoints_by_env_steps(work / "learner" / "checkpoints") if (work / "learner").exists() else []
    return (work / "actor" / "actor_summary.json").exists() and bool(ckpts) and ckpts[-1][0] >= steps


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")


def _log_span_s(work: Path) -> float | None:
    """Seconds from the sim robot's first log line to the actor's last one (the run's wall time)."""
    import datetime as dt

    def stamps(path: Path) -> list[float]:
        out = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            m = _STAMP.match(line)
            if m:
                out.append(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000)
        return out

    first, last = stamps(work / "sim.log"), stamps(work / "actor.log")
    return round(last[-1] - first[0], 1) if first and last else None


def _run_three(cfg: Any, work: Path, base: Any, demos: list[dict[str, np.ndarray]], sim_cmd: list[str],
               learner_cmd: list[str], actor_cmd: list[str]) -> None:
    """Start the sim robot and the learner, run the actor to its step count, let the learner
    checkpoint and exit; any process failing raises with the tail of its log."""
    from policies.bc import save_bc_policy

    shutil.rmtree(work, ignore_errors=True)  # an unfinished run is redone whole
    work.mkdir(parents=True)
    save_bc_policy(work / "base.safetensors", base.model)
    n_demos = write_demos(work / "demos", demos, cfg.task)
    env = {**os.environ, "ROS_DOMAIN_ID": str(cfg.ros_domain_id), "PYTHONUNBUFFERED": "1"}
    log.info("bench reward: 3 processes (sim-robot, learner, actor), %d env steps, %d demos, ROS_DOMAIN_ID=%d",
             cfg.process_steps, n_demos, cfg.ros_domain_id)
    sim = _popen(sim_cmd, work / "sim.log", env)
    learner = _popen(learner_cmd, work / "learner.log", env)
    actor = None
    try:
        time.sleep(5.0)  # the node and the learner bind first (the actor would wait for them anyway)
        actor = _popen(actor_cmd, work / "actor.log", env)
        deadline = time.monotonic() + cfg.process_timeout_s
        while actor.poll() is None:
            for name, p, logfile in (("sim-robot", sim, "sim.log"), ("learner", learner, "learner.log")):
                if p.poll() is not None:
                    _stop(actor)
                    raise RuntimeError(f"{name} exited ({p.returncode}) during the run:\n{_tail(work / logfile)}")
            if time.monotonic() > deadline:
                _stop(actor)
                raise RuntimeError(f"the actor did not finish {cfg.process_steps} steps in {cfg.process_timeout_s} s")
            time.sleep(2.0)
        if actor.returncode != 0:
            raise RuntimeError(f"the actor exited {actor.returncode}:\n{_tail(work / 'actor.log')}")
        try:  # the learner checkpoints and exits on its own once the actor has gone quiet (idle_exit_s)
            learner.wait(timeout=300)
        except subprocess.TimeoutExpired:
            _stop(learner)
    finally:  # Ctrl-C included: no process of this run outlives it (one would write into the next run's folder)
        for p in (actor, learner, sim):
            if p is not None:
                _stop(p)
    if not finished_run(work, cfg.process_steps):
        raise RuntimeError(f"the learner did not checkpoint all {cfg.process_steps} steps:\n{_tail(work / 'learner.log')}")


def evaluate_checkpoints(checkpoints: list[tuple[int, int, Path]], base: Any, study: Any, cfg: Any,
                         base_eval: Mapping[str, Any], progress: bool) -> tuple[list, list, list]:
    """The checkpoint nearest each ``process_eval_every`` point (and the last), evaluated with the sim's
    ground truth on the study's reset seeds; point 0 is the base's own evaluation."""
    from learners import bench_learn as bl
    from learners.agent import Agent

    curve, successes, points = [[0, base_eval["success_rate"]]], [list(base_eval["successes"])], []
    targets = list(range(cfg.process_eval_every, cfg.process_steps + 1, cfg.process_eval_every))
    if not targets or targets[-1] != cfg.process_steps:
        targets.append(cfg.process_steps)
    chosen: list[tuple[int, int, Path]] = []
    for t in targets:
        best = min(checkpoints, key=lambda c: abs(c[0] - t))
        if best not in chosen:
            chosen.append(best)
    env = bl.make_variant_env(f"{cfg.task}/state")
    try:
        for env_steps, updates, folder in chosen:
            agent = Agent.from_checkpoint(folder / "agent.safetensors", base_policy=base, device="cpu")
            res = bl.evaluate_paired(env, lambda o: agent.act(o, deterministic=True)[0], study, agent.reset)
            log.info("bench reward: checkpoint at %d env steps (%d updates): success %.2f",
                     env_steps, updates, res["success_rate"])
            curve.append([env_steps, res["success_rate"]])
            successes.append(res["successes"])
            points.append({"env_steps": env_steps, "updates": updates, "folder": folder.name})
    finally:
        env.close()
    return curve, successes, points


def evaluate_over_ros(cfg: Any, out: Path, base_eval_episodes: int | None = None) -> dict[str, Any]:
    """The base and the run's final checkpoint, each over ``process_ros_eval_episodes`` episodes
    the way they were trained: ``hilr sim-robot`` + ``hilr eval robot=ros_sim``, real time, the
    sim robot's own success as ground truth. Each evaluation starts a fresh sim robot with the
    same ``node.seed``, so both see the same scenes in the same order (paired)."""
    from learners import bench_learn as bl

    seed, n = cfg.seed, int(cfg.process_ros_eval_episodes)
    work = out / f"processes_seed{seed}"
    final = checkpoints_by_env_steps(work / "learner" / "checkpoints")[-1]
    env = {**os.environ, "ROS_DOMAIN_ID": str(cfg.ros_domain_id), "PYTHONUNBUFFERED": "1"}
    outcomes: dict[str, list[bool]] = {}
    commands: dict[str, str] = {}
    for name, agent in (("base", None), ("final", final[2])):
        run = work / f"ros_eval_{name}"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        sim = _popen(["sim-robot", f"hydra.run.dir={run / 'sim'}", f"task={cfg.task}", "~camera.wrist",
                      f"node.seed={cfg.ros_eval_seed}"], run / "sim.log", env)
        cmd = ["eval", f"hydra.run.dir={run / 'eval'}", "robot=ros_sim", "camera=none", f"task={cfg.task}",
               "privileged_state=true", f"base_policy={work / 'base.safetensors'}", f"episodes={n}",
               f"seed={cfg.ros_eval_seed}", "progress=false", "tensorboard=false",
               *([f"agent={agent / 'agent.safetensors'}"] if agent is not None else [])]
        try:
            time.sleep(3.0)
            ev = _popen(cmd, run / "eval.log", env)
            try:
                ev.wait(timeout=cfg.process_timeout_s)
            except subprocess.TimeoutExpired:
                _stop(ev)
                raise RuntimeError(f"hilr eval over ROS did not finish {n} episodes in {cfg.process_timeout_s} s") from None
            if ev.returncode != 0:
                raise RuntimeError(f"hilr eval over ROS exited {ev.returncode}:\n{_tail(run / 'eval.log')}")
        finally:
            _stop(sim)
        eps = [json.loads(line) for line in (run / "eval" / "episodes.jsonl").read_text().splitlines() if line.strip()]
        outcomes[name] = [bool(e["success"]) for e in eps][:n]
        commands[name] = " ".join(["hilr", *cmd])
        log.info("bench reward: over ROS, %s: success %.2f over %d episodes", name, np.mean(outcomes[name]), n)
    d = np.asarray(outcomes["final"], float) - np.asarray(outcomes["base"], float)
    result = {"episodes": n, "node_seed": cfg.ros_eval_seed, "final_checkpoint": final[2].name,
              "final_env_steps": final[0], "base": float(np.mean(outcomes["base"])),
              "final": float(np.mean(outcomes["final"])), "paired_difference": bl.paired_interval(d),
              "successes": outcomes, "commands": commands}
    bl._write_json(out / f"processes_seed{seed}_ros_eval.json", result)
    return result
