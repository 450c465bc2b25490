"""``hilr bench reward``: the real-robot reward path, proven in sim without privileged success.

The operator's first session on a real arm, played in sim, with the sim's own success hidden
from everything that learns:

1. **record**: episodes with the sim camera through the recorder's own writer
   (``robot_env.dataset.EpisodeWriter``): noisy-expert episodes and episodes of the BC base (its
   failures are the hard negatives). Success frames are the ends of successful episodes,
   failure frames the rest, as ``hilr record`` writes them.
2. **train-reward**: the image classifier on those frames (``learners.reward_training``).
3. **audit**: ``audit_episodes`` episodes of the BC base on held-out reset seeds with
   ``reward=classifier``: the classifier decides success; the sim's success is only recorded
   beside it. Precision and recall per step and per episode, and the false-positive count.
4. **learn**: residual RL with the simulated operator (``residual_hil``) whose training env
   gets its reward only from the classifier, evaluated on the study's fixed reset seeds with
   the sim's ground truth, paired against the base (95 % interval on the difference).

The policy is state-based (privileged object pose, like the ``pick_cube/state`` study; a
camera only feeds the classifier: ``obs_keys=[state]``), so it fits a CPU. Every stage writes
its result under ``out_dir`` and a restarted run skips what is done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class RewardStudyConfig:
    """Settings of ``hilr bench reward`` (the ``reward_study`` node of bench.yaml).

    Attributes:
        task: sim task.
        seed: the study seed (demos, BC base and RL init as in ``hilr bench learn``'s seed).
        camera: the sim camera that feeds the classifier.
        image_size: its image size, pixels square.
        record_expert: noisy-expert episodes recorded for the classifier.
        record_base: BC-base episodes recorded too (hard negatives).
        success_hold: after a successful episode, this many more steps with the same policy are
            recorded as extra frames labelled by the sim's success (the success state held, as
            hil-serl's success recording collects many positives per attempt).
        clf_steps: classifier gradient steps.
        threshold: classifier probability threshold.
        consecutive: positive frames in a row for a success.
        audit_episodes: audited episodes of the base (held-out reset seeds ``audit_seed + i``).
        audit_seed: first audit reset seed.
        env_steps: online env steps of the learning run (0: no learning run).
        eval_every: env steps between evaluations.
        eval_episodes: episodes per evaluation point (the study's fixed reset seeds).
        process_steps: env steps of the three-process run (``hilr sim-robot`` + ``hilr learner`` +
            ``hilr actor reward=classifier``, real time over ROS2 and ZMQ; 0: not run).
        process_eval_every: env steps between the three-process run's evaluated checkpoints.
        process_ros_eval_episodes: also evaluate the base and the final checkpoint over ROS2 as
            they were trained (``hilr sim-robot`` + ``hilr eval robot=ros_sim``, real time), this
            many episodes each (0: not).
        ros_eval_seed: the sim robot's ``node.seed`` (and the eval's reset seed) of that evaluation.
        process_timeout_s: the three-process run fails when its actor has not finished by then, s.
        ros_domain_id: ROS_DOMAIN_ID of the three-process run (kept apart from other ROS2 work).
        out_dir: where everything goes (resumable).
    """

    task: str = "pick_cube"
    seed: int = 0
    camera: str = "front"
    image_size: int = 64
    record_expert: int = 40
    record_base: int = 40
    success_hold: int = 10
    clf_steps: int = 400
    threshold: float = 0.75
    consecutive: int = 2
    audit_episodes: int = 100
    audit_seed: int = 70000
    env_steps: int = 20000
    eval_every: int = 5000
    eval_episodes: int = 100
    process_steps: int = 0
    process_eval_every: int = 2500
    process_ros_eval_episodes: int = 0
    ros_eval_seed: int = 50000
    process_timeout_s: float = 5400.0
    ros_domain_id: int = 77
    out_dir: str = "docs/results/reward_study"


def _camera_env(cfg: RewardStudyConfig, reward: Mapping[str, Any] | None, policy_only: bool) -> Any:
    from robot_env import make_env

    env_cfg: dict[str, Any] = {
        "task": {"name": cfg.task, "image_size": [cfg.image_size, cfg.image_size]},
        "camera": {cfg.camera: {"type": "mujoco"}}, "privileged_state": True}
    if reward is not None:
        env_cfg["reward"] = dict(reward)
    if policy_only:
        env_cfg["obs_keys"] = ["state"]
    return make_env(env_cfg)


def classifier_reward(cfg: RewardStudyConfig, checkpoint: Path) -> dict[str, Any]:
    """The ``reward`` config of the study's classifier (the sim's success audited, the object pose
    kept for the state-based policy)."""
    return {"type": "classifier", "checkpoint": str(checkpoint), "threshold": cfg.threshold,
            "consecutive": cfg.consecutive, "audit": True, "expose_task_state": True}


def record(cfg: RewardStudyConfig, root: Path, base: Any) -> dict[str, Any]:
    """Stage 1: record expert and base episodes (all kept; frames for the classifier)."""
    from learners.inprocess import executed_action
    from robot_env.dataset import EpisodeWriter
    from robot_env.sim.experts import make_expert

    env = _camera_env(cfg, None, policy_only=False)
    try:
        writer = EpisodeWriter(root, fps=env.unwrapped.task.control_hz, task=cfg.task,
                               observation_space=env.observation_space, action_space=env.action_space,
                               crops=env.unwrapped.crops)
        expert = make_expert(env.unwrapped.task, noise=0.3, seed=cfg.seed + 17)
        counts = {"expert": [0, 0], "base": [0, 0]}
        for who, n, policy, reset in (("expert", cfg.record_expert, expert.act, expert.reset),
                                      ("base", cfg.record_base, lambda o, _: base.act(o), base.reset)):
            for i in range(n):
                obs, info = env.reset(seed=900_000 + (0 if who == "expert" else 50_000) + i)
                reset()
                writer.begin(obs)
                done, success = False, False
                while not done:
                    action = policy(obs, info)
                    obs, reward, terminated, truncated, info = env.step(action)
                    writer.add(executed_action(info, action), obs, reward, terminated, truncated, info)
                    success = success or bool(info.get("success"))
                    done = terminated or truncated
                writer.end(success)
                counts[who][0 if success else 1] += 1
                held, labels = [], []
                for _ in range(cfg.success_hold if success else 0):  # keep going in the success state
                    obs, _, _, _, info = env.step(policy(obs, info))
                    held.append(obs)
                    labels.append(bool(info.get("success")))
                if held:
                    writer.add_frames(held, labels)
        return {"episodes": counts, "success_frames": None}
    finally:
        env.close()


def audit(cfg: RewardStudyConfig, checkpoint: Path, base: Any) -> dict[str, Any]:
    """Stage 3: the base acting with ``reward=classifier``; the classifier against the sim's truth."""
    from learners.episode_stats import audit_counts, reward_audit

    env = _camera_env(cfg, classifier_reward(cfg, checkpoint), policy_only=True)
    episodes, latencies = [], []
    try:
        for i in range(cfg.audit_episodes):
            obs, _ = env.reset(seed=cfg.audit_seed + i)
            base.reset()
            ep: dict[str, Any] = {"success": False, "reward_source": "none", "length": 0}
            done = False
            while not done:
                obs, reward, terminated, truncated, info = env.step(base.act(obs))
                audit_counts(ep, info)
                latencies.append(float(info["classifier_latency_ms"]))
                ep["length"] += 1
                if info.get("success"):
                    ep.update(success=True, reward_source="classifier")
                done = terminated or truncated
            episodes.append(ep)
    finally:
        env.close()
    out = reward_audit(episodes)["classifier_audit"]
    out["false_positive_episodes"] = out["episode_fp"]
    out["privileged_success_rate"] = float(np.mean([bool(e.get("privileged_success")) for e in episodes]))
    out["classifier_success_rate"] = float(np.mean([e["success"] for e in episodes]))
    out["latency_ms_p50"], out["latency_ms_p99"] = (float(np.percentile(latencies, q)) for q in (50, 99))
    return out


def run_study(cfg: RewardStudyConfig, progress: bool = True) -> dict[str, Any]:
    """All four stages (each skipped when its result file exists); returns the summary."""
    import torch

    from learners import bench_learn as bl
    from learners.reward_training import RewardTrainConfig, train_reward_classifier
    from policies.reward import RewardClassifierConfig
    from robot_env.dataset import list_frames, load_frames, read_meta

    torch.set_num_threads(1)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    variant = f"{cfg.task}/state"
    study = bl.variant_study(bl.study_config({}), variant)
    study = dataclasses.replace(study, env_steps=max(1, cfg.env_steps), eval_every=cfg.eval_every,
                                eval_episodes=cfg.eval_episodes)
    log.info("bench reward: BC base of seed %d (as in hilr bench learn)", cfg.seed)
    torch.manual_seed(cfg.seed)
    env = bl.make_variant_env(variant)
    try:
        demos = bl.collect_demos(env, cfg.task, study.demos, study.expert_noise, cfg.seed)
        base = bl.train_base(demos, study, cfg.seed, images=False)
        base_eval_path = out / f"base_eval_seed{cfg.seed}.json"
        if base_eval_path.exists():
            base_eval = json.loads(base_eval_path.read_text())
        else:
            base_eval = bl.evaluate_paired(env, base.act, study, base.reset)
            bl._write_json(base_eval_path, base_eval)
    finally:
        env.close()
    result: dict[str, Any] = {"config": dataclasses.asdict(cfg), "base": {"success_rate": base_eval["success_rate"]}}

    data = out / "dataset"
    recorded = len(list_frames(data)) if (data / "frames").exists() else 0
    if recorded < cfg.record_expert + cfg.record_base:
        log.info("bench reward: recording %d expert + %d base episodes with the %s camera",
                 cfg.record_expert, cfg.record_base, cfg.camera)
        import shutil

        shutil.rmtree(data, ignore_errors=True)  # a partial recording is redone whole (seeds are fixed)
        record(cfg, data, base)
    frames = load_frames(data)
    result["frames"] = {"total": int(len(frames["label"])), "success": int(frames["label"].sum())}

    ckpt = out / "reward_classifier.safetensors"
    clf_path = out / "classifier.json"
    if not clf_path.exists():
        log.info("bench reward: training the classifier (%d steps)", cfg.clf_steps)
        mcfg = RewardClassifierConfig(threshold=cfg.threshold, encoder={"image_size": cfg.image_size})
        _, metrics = train_reward_classifier(frames, mcfg, RewardTrainConfig(steps=cfg.clf_steps, seed=cfg.seed),
                                             out, progress=progress,
                                             extra_meta={"crops": read_meta(data).get("crops") or {}})
        bl._write_json(clf_path, {k: metrics[k] for k in ("train", "val", "seconds", "frames", "success_frames")})
    result["classifier"] = json.loads(clf_path.read_text())

    audit_path = out / "audit.json"
    if not audit_path.exists():
        log.info("bench reward: auditing the classifier on %d base episodes", cfg.audit_episodes)
        bl._write_json(audit_path, audit(cfg, ckpt, base))
    result["audit"] = json.loads(audit_path.read_text())

    learn_path = out / f"learn_seed{cfg.seed}.json"
    if cfg.env_steps and not learn_path.exists():
        log.info("bench reward: residual_hil learning from the classifier's reward, %d env steps", cfg.env_steps)
        run = bl.run_method("residual_hil", variant, study, cfg.seed, base, bl.label_base_actions(demos, base),
                            base_eval, train_env=lambda: _camera_env(cfg, classifier_reward(cfg, ckpt), True))
        bl._write_json(learn_path, run)
    if learn_path.exists():
        run = json.loads(learn_path.read_text())
        diff = bl.paired_difference([run], [base_eval["successes"]])
        result["learn"] = {"curve": run["curve"], "paired_difference_to_base": diff,
                           "intervention_steps": run["intervention_steps"], "updates": run["updates"],
                           "seconds": run["seconds"], "base_mismatch_episodes": run.get("base_mismatch_episodes", 0)}
    proc_path = out / f"processes_seed{cfg.seed}.json"
    if cfg.process_steps and not proc_path.exists():
        from learners.bench_reward_hil import run_processes

        run_processes(cfg, out, base, demos, ckpt, study, base_eval, progress=progress)
    ros_path = out / f"processes_seed{cfg.seed}_ros_eval.json"
    if cfg.process_ros_eval_episodes and proc_path.exists() and not ros_path.exists():
        from learners.bench_reward_hil import evaluate_over_ros

        evaluate_over_ros(cfg, out)
    if proc_path.exists():
        run = json.loads(proc_path.read_text())
        result["processes"] = {k: run[k] for k in ("curve", "paired_difference_to_base", "env_steps", "wall_s",
                                                    "final_updates", "actor") if k in run}
        if ros_path.exists():
            ros = json.loads(ros_path.read_text())
            result["processes"]["over_ros"] = {k: ros[k] for k in ("episodes", "base", "final", "paired_difference")}
    result["seconds"] = time.monotonic() - t0
    bl._write_json(out / f"reward_study_seed{cfg.seed}.json", result)
    return result


def run(cfg: dict) -> dict:
    """``hilr bench reward [reward_study.env_steps=...]``: the summary JSON (also in ``out_dir``)."""
    from robot_env.registry import config_from_dict

    values = {k: v for k, v in dict(cfg.get("reward_study") or {}).items() if v is not None}
    return run_study(config_from_dict(RewardStudyConfig, values), progress=bool(cfg.get("progress", True)))
