"""``hilr bench learn``: does residual RL with interventions beat the alternatives?

Four methods, trained in process (:func:`learners.inprocess.run_online`) on the same demos
and the same deliberately imperfect BC base, over several seeds:

1. ``bc``: the BC base alone (nothing learned online);
2. ``rlpd``: SAC from scratch with the demos in a 50/50 demo buffer (hil-serl's RLPD);
3. ``residual``: frozen BC base + TD3 residual (ResFiT), no interventions;
4. ``residual_hil``: the same with the simulated operator (``teleop.sim_operator``) taking
   over when the policy drifts or stalls; its steps go to both buffers.

Optional extra methods (``extra_methods``) are ablations of the residual recipe used to pick
its defaults (``residual_sac``, ``residual_nstep1``, ``residual_scale02``, ``residual_utd2``,
``residual_actor_lr3e-4``).

Each *variant* is a task with state observations (proprio + the sim's privileged task
state, :class:`learners.sim_obs.PrivilegedState`) or with two 128x128 cameras + proprio.
Per (variant, seed): expert demos (noisy scripted expert, successful episodes only) ->
BC base with few gradient steps -> each method; deterministic evaluations every
``eval_every`` env steps give success rate against env steps.

``quick=true`` runs a < 10-minute CPU subset and prints a table against the committed
reference numbers (``docs/results/learn_quick_reference.json``) so a regression shows.
The full study writes ``docs/results/learn_full.json`` and plots there.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
QUICK_REFERENCE = RESULTS / "learn_quick_reference.json"
METHODS = ("bc", "rlpd", "residual", "residual_hil")

# method -> (learner config file, overrides of it, uses the simulated operator)
METHOD_SPECS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "rlpd": ("rlpd", {}, False),
    "residual": ("residual_td3_cpu", {}, False),
    "residual_hil": ("residual_td3_cpu", {}, True),
    "residual_sac": ("residual_sac", {}, False),
    "residual_sac_hil": ("residual_sac", {}, True),
    "residual_nstep1": ("residual_td3_cpu", {"n_step": 1}, False),
    "residual_scale01": ("residual_td3_cpu", {"residual_scale": 0.1}, False),
    "residual_scale02": ("residual_td3_cpu", {"residual_scale": 0.2}, False),
    "residual_utd2": ("residual_td3_cpu", {"utd": 2}, False),
    "residual_actor_lr3e-4": ("residual_td3_cpu", {"actor_lr": 3e-4}, False),
}


@dataclasses.dataclass
class StudyConfig:
    """Settings of one study (``quick`` and ``full`` presets below; override with ``learn: {...}``).

    Attributes:
        variants: ``"<task>/<obs>"`` with obs ``state`` (privileged state) or ``image``
            (two sim cameras + proprio).
        seeds: number of seeds (demos, BC init, RL init and env resets all depend on it).
        methods: the compared methods (see the module docstring).
        extra_methods: ablations of the residual recipe (``METHOD_SPECS`` names).
        demos: successful expert demonstrations per seed, shared by all methods.
        expert_noise: action-noise std of the scripted demonstrator (imperfect demos).
        bc_steps: BC gradient steps (few on purpose: an imperfect base).
        bc_hidden: BC MLP widths.
        bc_chunk: BC action chunk size H (executed receding, H/2 actions per chunk).
        per_task: overrides of ``demos``/``expert_noise``/``bc_steps``/``bc_chunk``/``env_steps``/
            ``eval_every``/``eval_episodes`` keyed by variant (``pick_cube/image``) or task (``peg_insert``).
        env_steps: online env steps per learning run.
        eval_every: env steps between deterministic evaluations.
        eval_episodes: episodes per evaluation (fixed reset seeds).
        learning_starts: online transitions before the first update.
        agent: overrides applied to every learner config (CPU-sized networks, short warm-ups).
        operator_skill: the simulated operator's skill in [0, 1].
        image_size: camera images (height = width), pixels, for ``image`` variants.
        tolerance: quick mode: a drop of final success larger than this vs the reference
            is flagged as a regression (absolute success rate).
    """

    variants: tuple[str, ...] = ("pick_cube/state", "peg_insert/state", "pick_cube/image")
    seeds: int = 3
    methods: tuple[str, ...] = METHODS
    extra_methods: tuple[str, ...] = ()
    demos: int = 10
    expert_noise: float = 0.3
    bc_steps: int = 300
    bc_hidden: tuple[int, ...] = (128, 128)
    bc_chunk: int = 4
    per_task: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    env_steps: int = 3000
    eval_every: int = 500
    eval_episodes: int = 10
    learning_starts: int = 200
    agent: dict[str, Any] = dataclasses.field(default_factory=lambda: {
        "actor_hidden": [128, 128], "critic_hidden": [128, 128], "num_critics": 5,
        "batch_size": 128, "warmup_steps": 200, "critic_warmup_updates": 200, "device": "cpu",
        "encoder": {"channels": 16, "latent_dim": 32, "image_size": 64}})
    operator_skill: float = 0.8
    image_size: int = 128
    tolerance: float = 0.2

    def __post_init__(self) -> None:
        self.variants, self.methods = tuple(self.variants), tuple(self.methods)
        self.extra_methods, self.bc_hidden = tuple(self.extra_methods), tuple(self.bc_hidden)
        for m in self.methods + self.extra_methods:
            if m != "bc" and m not in METHOD_SPECS:
                raise ValueError(f"unknown method {m!r}; choose from {['bc', *METHOD_SPECS]}")
        for v in self.variants:
            task, _, obs = v.partition("/")
            if obs not in ("state", "image"):
                raise ValueError(f"variant {v!r}: expected '<task>/state' or '<task>/image'")
        if self.seeds < 1 or self.env_steps < 1 or self.eval_every < 1:
            raise ValueError("seeds, env_steps and eval_every must be >= 1")


PER_VARIANT_KEYS = ("demos", "expert_noise", "bc_steps", "bc_chunk", "bc_hidden", "env_steps", "eval_every",
                    "eval_episodes")


def variant_study(study: StudyConfig, variant: str) -> StudyConfig:
    """``study`` with the ``per_task`` overrides of ``variant`` (task-level first, then variant-level)."""
    task = variant.partition("/")[0]
    values = {**study.per_task.get(task, {}), **study.per_task.get(variant, {})}
    unknown = sorted(set(values) - set(PER_VARIANT_KEYS))
    if unknown:
        raise ValueError(f"per_task keys {unknown} are not per-variant settings {PER_VARIANT_KEYS}")
    return dataclasses.replace(study, **values)


QUICK = dict(variants=("pick_cube/state",), seeds=2, env_steps=600, eval_every=200, eval_episodes=10)
FULL: dict[str, Any] = {"per_task": {
    # 2 mm clearance: a 300-step BC base never inserts; 6000 steps on 20 near-perfect demos gives ~30 %
    "peg_insert": {"demos": 20, "expert_noise": 0.02, "bc_steps": 6000, "bc_chunk": 1, "bc_hidden": (256, 256)},
    "pick_cube/image": {"bc_steps": 600, "env_steps": 400, "eval_every": 200},
}, "env_steps": 1000, "eval_every": 250, "eval_episodes": 8}


def study_config(cfg: Mapping[str, Any]) -> StudyConfig:
    """The preset named by ``cfg["quick"]`` with ``cfg["learn"]`` overrides."""
    from robot_env.registry import config_from_dict

    preset = dict(QUICK if cfg.get("quick") else FULL)
    preset.update({k: v for k, v in dict(cfg.get("learn") or {}).items() if v is not None})
    return config_from_dict(StudyConfig, preset)


# ----------------------------------------------------------------------------- pieces
def make_variant_env(variant: str, image_size: int = 128) -> Any:
    """The sim env of ``"<task>/<obs>"``: privileged state, or two cameras + proprio."""
    from learners.sim_obs import PrivilegedState
    from robot_env import make_env

    task, _, obs = variant.partition("/")
    if obs == "state":
        return PrivilegedState(make_env({"task": {"name": task}, "camera": None}))
    cams = {name: {"type": "mujoco", "height": image_size, "width": image_size} for name in ("front", "wrist")}
    return make_env({"task": {"name": task, "image_size": [image_size, image_size]}, "camera": cams})


class OperatorOnReset:
    """``run_online``'s ``operator(obs, info, policy_action)`` built on a :class:`SimulatedOperator`.

    The operator is reset through :meth:`wrap` (a wrapper on the training env that calls
    ``operator.reset()`` at every env reset). Counts the steps it drives in ``steps``.
    """

    def __init__(self, task: str, skill: float, seed: int) -> None:
        from teleop.sim_operator import SimOperatorConfig, SimulatedOperator

        self.op = SimulatedOperator(SimOperatorConfig(task=task, skill=skill, seed=seed))
        self.op.connect()
        self.steps = 0

    def wrap(self, env: Any) -> Any:
        """Bind to ``env`` (action scales) and return it wrapped so resets reset the operator."""
        import gymnasium as gym

        self.op.bind_env(env)
        op = self.op

        class _ResetOperator(gym.Wrapper):
            def reset(self, **kwargs: Any):
                out = self.env.reset(**kwargs)
                op.reset()
                return out

        return _ResetOperator(env)

    def __call__(self, obs: Mapping[str, np.ndarray], info: dict[str, Any], policy_action: np.ndarray):
        """The operator's 7-D action while it is in control, else None."""
        self.op.observe(obs, info, policy_action)
        st = self.op.read()
        if not st.is_active:
            return None
        self.steps += 1
        grip = st.gripper if st.gripper is not None else float(policy_action[6])
        return np.concatenate([st.command, [grip]]).astype(np.float32)


def collect_demos(env: Any, task: str, n: int, noise: float, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` successful episodes of the noisy scripted expert (reset seeds from ``seed``)."""
    from learners.rollout import collect_episodes
    from robot_env.sim.experts import make_expert

    expert = make_expert(env.unwrapped.task, noise=noise, seed=seed)
    return collect_episodes(env, expert.act, n, seed=seed * 1000, reset=expert.reset, only_successful=True)


def train_base(demos: list[dict[str, np.ndarray]], study: StudyConfig, seed: int, images: bool) -> Any:
    """An imperfect BC base (few steps) as a :class:`policies.bc.BCBasePolicy`."""
    from learners.bc import BCTrainConfig, train_bc
    from policies.bc import BCBasePolicy, BCConfig
    from policies.encoders import EncoderConfig

    enc = EncoderConfig(**study.agent.get("encoder", {})) if images else EncoderConfig()
    h = study.bc_chunk
    pcfg = BCConfig(hidden=study.bc_hidden, chunk_size=h, execution="receding", execute_steps=max(1, h // 2), encoder=enc)
    tcfg = BCTrainConfig(steps=study.bc_steps, batch_size=128, lr=1e-3, val_fraction=0.0,
                         val_every=max(study.bc_steps, 1), augment=images, seed=seed)
    model, _ = train_bc(demos, pcfg, tcfg, None, progress=False)
    return BCBasePolicy(model)


def label_base_actions(demos: list[dict[str, np.ndarray]], base: Any) -> list[dict[str, np.ndarray]]:
    """Demos with ``base_action``: what the base would have proposed at each demo frame."""
    out = []
    for ep in demos:
        keys = [k[4:] for k in ep if k.startswith("obs/")]
        base.reset()
        acts = [base.act({k: ep[f"obs/{k}"][t] for k in keys}) for t in range(len(ep["action"]))]
        out.append({**ep, "base_action": np.asarray(acts, np.float32)})
    base.reset()
    return out


def learner_values(name: str, study: StudyConfig, seed: int, files: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """The learner config of method ``name``: its yaml (or the snapshot ``files[name]`` taken at the
    start of the study, so an edit of the yaml mid-study cannot mix recipes) + method and study overrides."""
    from omegaconf import OmegaConf

    file, overrides, _ = METHOD_SPECS[name]
    if files is not None and file in files:
        values = copy.deepcopy(files[file])
    else:
        values = OmegaConf.to_container(OmegaConf.load(REPO / "launch" / "config" / "learner" / f"{file}.yaml"))
    agent = copy.deepcopy(study.agent)
    enc = agent.pop("encoder", {})
    values.update(agent)
    values["encoder"] = {**values.get("encoder", {}), **enc}
    values.update(overrides)
    values["seed"] = seed
    return values


def run_method(name: str, variant: str, study: StudyConfig, seed: int, base: Any,
               demos: list[dict[str, np.ndarray]], base_eval: dict[str, Any],
               files: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """Train one method on one seed; returns its curve and counters."""
    from learners.agent import Agent
    from learners.builders import agent_config, build_replay
    from learners.inprocess import run_online
    from learners.rollout import evaluate
    from policies.encoders import obs_spec_from_space

    if name == "bc":
        points = list(range(0, study.env_steps + 1, study.eval_every))
        return {"curve": [[s, base_eval["success_rate"]] for s in points], "intervention_steps": 0,
                "seconds": 0.0, "updates": 0}
    _, _, with_operator = METHOD_SPECS[name]
    task = variant.partition("/")[0]
    env = make_variant_env(variant, study.image_size)
    eval_env = make_variant_env(variant, study.image_size)
    try:
        spec = obs_spec_from_space(env.observation_space)
        acfg = agent_config(learner_values(name, study, seed, files))
        agent = Agent(spec, acfg, base)
        replay = build_replay(spec, acfg)
        scale = acfg.scale_array()
        for ep in demos:
            replay.demo.add_episode(ep if acfg.mode != "rlpd" else {k: v for k, v in ep.items() if k != "base_action"},
                                    scale=scale)
        operator = None
        if with_operator:
            operator = OperatorOnReset(task, study.operator_skill, seed)
            env = operator.wrap(env)
        start = evaluate(eval_env, lambda o: agent.act(o, deterministic=True)[0], study.eval_episodes, reset=agent.reset)
        res = run_online(env, agent, replay, study.env_steps, learning_starts=study.learning_starts,
                         eval_env=eval_env, eval_every=study.eval_every, eval_episodes=study.eval_episodes,
                         operator=operator, seed=seed * 7919)
        return {"curve": [[0, start["success_rate"]]] + res["curve"], "intervention_steps": res["intervention_steps"],
                "seconds": res["seconds"], "updates": res["updates"], "episodes": res["episodes"],
                "train_success_rate": res["train_success_rate"]}
    finally:
        env.close()
        eval_env.close()


# ----------------------------------------------------------------------------- the study
def steps_to(curve: list[list[float]], level: float = 0.9) -> int | None:
    """First env step whose evaluated success rate is >= ``level`` (None: never)."""
    return next((int(s) for s, r in curve if r >= level), None)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean/std/min/max of the seeds' curves, final success, steps to 90 %, intervention steps."""
    steps = [s for s, _ in runs[0]["curve"]]
    rates = np.array([[r for _, r in run["curve"]] for run in runs], float)
    mean = rates.mean(0)
    return {
        "steps": steps, "mean": mean.round(4).tolist(), "std": rates.std(0).round(4).tolist(),
        "min": rates.min(0).tolist(), "max": rates.max(0).tolist(),
        "final_mean": float(mean[-1]), "final_std": float(rates[:, -1].std()),
        "steps_to_90_mean_curve": steps_to([[s, r] for s, r in zip(steps, mean)]),
        "steps_to_90_per_seed": [steps_to(run["curve"]) for run in runs],
        "intervention_steps_mean": float(np.mean([run["intervention_steps"] for run in runs])),
        "seconds_mean": float(np.mean([run["seconds"] for run in runs])),
    }


def run_study(study: StudyConfig, progress: bool = True) -> dict[str, Any]:
    """Every variant x seed x method; returns ``{"config", "results": {variant: {method: summary}}}``."""
    import torch
    from tqdm import tqdm

    from learners.rollout import evaluate

    torch.set_num_threads(1)
    from omegaconf import OmegaConf

    methods = list(study.methods) + list(study.extra_methods)
    files = {METHOD_SPECS[m][0]: OmegaConf.to_container(OmegaConf.load(
        REPO / "launch" / "config" / "learner" / f"{METHOD_SPECS[m][0]}.yaml")) for m in methods if m != "bc"}
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    total = len(study.variants) * study.seeds * len(methods)
    bar = tqdm(total=total, desc="bench learn", disable=not progress)
    for variant in study.variants:
        task, _, obs = variant.partition("/")
        vs = variant_study(study, variant)
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
        bases = []
        for seed in range(study.seeds):
            torch.manual_seed(seed)
            env = make_variant_env(variant, study.image_size)
            try:
                demos = collect_demos(env, task, vs.demos, vs.expert_noise, seed)
                base = train_base(demos, vs, seed, images=obs == "image")
                base_eval = evaluate(env, base.act, vs.eval_episodes, reset=base.reset)
            finally:
                env.close()
            bases.append(base_eval["success_rate"])
            demos = label_base_actions(demos, base)
            for m in methods:
                bar.set_postfix_str(f"{variant} seed {seed} {m}")
                runs[m].append(run_method(m, variant, vs, seed, base, demos, base_eval, files))
                bar.update(1)
        results[variant] = {m: summarise(r) for m, r in runs.items()}
        results[variant]["_base_success_per_seed"] = bases
        results[variant]["_settings"] = {k: getattr(vs, k) for k in PER_VARIANT_KEYS}
    bar.close()
    return {"config": dataclasses.asdict(study), "learner_files": files, "results": results,
            "seconds": time.monotonic() - t0}


def run(cfg: dict) -> dict:
    """``hilr bench learn [quick=true] [learn.seeds=5 ...]``: run, write JSON + plots, print a table.

    Writes to ``docs/results/`` (full study, or ``learn.out_dir``) or the run directory (quick).
    Returns the summary (final success per variant/method, and the regression check in quick mode).
    """
    from learners import bench_learn_report as report
    from robot_env.app import run_dir

    quick = bool(cfg.get("quick", False))
    learn = {k: v for k, v in dict(cfg.get("learn") or {}).items() if v is not None}
    out_dir = Path(learn.pop("out_dir", None) or (run_dir() if quick else RESULTS))
    name = learn.pop("name", None) or ("learn_quick" if quick else "learn_full")
    study = study_config({"quick": quick, "learn": learn})
    result = run_study(study, progress=cfg.get("progress", True))
    result["quick"] = quick
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    plots = report.plot(result, out_dir / f"{name}.png")
    reference = None
    ref_path = Path(cfg.get("reference") or QUICK_REFERENCE)
    if quick and ref_path.exists():
        reference = json.loads(ref_path.read_text())
    rows = report.table_rows(result, reference, study.tolerance)
    print(report.format_table(rows, with_reference=reference is not None))
    regressions = [r for r in rows if r.get("regression")]
    return {"benchmark": "learn", "quick": quick, "json": str(out_dir / f"{name}.json"), "plots": plots,
            "seconds": round(result["seconds"], 1), "rows": rows, "regressions": len(regressions),
            "reference": str(ref_path) if reference is not None else None}
