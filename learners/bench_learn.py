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

Evaluation is paired: every evaluation point of every method, and the base, run the same
``eval_episodes`` fixed reset seeds, and the per-episode outcomes are kept, so the report gives
the difference to the base with a 95 % interval over (seed, episode) pairs. In sim the study
also reports the oracle ceiling and how often the critic prefers the oracle's correction
(:mod:`learners.bench_learn_diag`).

The study is resumable: each (variant, seed, method) run writes
``<out_dir>/runs/<variant>/seed<k>/<method>.json`` when it finishes, and a restarted study skips
the runs whose file exists, so a long study can span several sessions.

``quick=true`` runs a short CPU subset (10-26 min on 2 cores) and prints a table against the committed
reference numbers (``docs/results/learn_quick_reference.json``) so a regression shows.
The full study writes ``docs/results/learn_full.json`` and plots there.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from robot_env.atomic import atomic_write

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
QUICK_REFERENCE = RESULTS / "learn_quick_reference.json"
METHODS = ("bc", "residual_hil", "residual", "rlpd")  # run in this order: the key comparison lands first

# method -> (learner config file, overrides of it, uses the simulated operator)
METHOD_SPECS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "rlpd": ("rlpd", {}, False),
    "residual": ("residual_td3_cpu", {}, False),
    "residual_hil": ("residual_td3_cpu", {}, True),
    "residual_sac": ("residual_sac", {}, False),
    "residual_sac_hil": ("residual_sac", {}, True),
    "residual_nstep1": ("residual_td3_cpu", {"n_step": 1}, False),
    "residual_hil_scale02": ("residual_td3_cpu", {"residual_scale": 0.2}, True),
    "residual_nogate": ("residual_td3_cpu", {"gate": False}, False),
    "residual_hil_nogate": ("residual_td3_cpu", {"gate": False}, True),
    "residual_hil_nobc": ("residual_td3_cpu", {"bc_weight": 0.0}, True),
    # the gate on evaluation/deployment actions only: training rollouts execute the residual's own actions
    "residual_gate_eval": ("residual_td3_cpu", {"gate_explore": False}, False),
    "residual_hil_gate_eval": ("residual_td3_cpu", {"gate_explore": False}, True),
    # the gate on the ensemble's mean advantage (no lower-bound margin)
    "residual_hil_kappa0": ("residual_td3_cpu", {"gate_kappa": 0.0}, True),
    # the recipe before the safety/HIL terms (for comparison): scale 0.2, i.i.d. sigma 0.1, L2 0.02
    "residual_v1": ("residual_td3_cpu", {"residual_scale": 0.2, "warmup_steps": 300, "warmup_noise": 1.0,
                                         "explore_sigma": 0.1, "residual_l2": 0.02, "normalize_state": False,
                                         "explore_hold": 1, "bc_weight": 0.0, "actor_pessimism": 0.0,
                                         "normalize_q": False, "gate": False}, False),
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
            ``eval_every``/``eval_episodes`` keyed by variant (``pick_cube/image``) or task (``peg_insert``),
            and ``agent`` (merged into ``agent``: ``pick_cube/image`` freezes the BC base's conv trunk
            and caches its features, ``IMAGE_AGENT``).
        env_steps: online env steps per learning run.
        eval_every: env steps between deterministic evaluations.
        eval_episodes: episodes per evaluation, on the reset seeds ``eval_seed + i`` (the same
            for the base and every method and point: paired comparisons).
        eval_seed: first evaluation reset seed.
        diagnostics: sim only: oracle ceiling and the critic's oracle-vs-base ranking.
        first_seed: run seeds ``first_seed .. seeds - 1`` only (another worker runs the others).
        report_only: run nothing; summarise the run files that exist (seeds with every method
            finished), e.g. while a long study is still running in another process.
        gym_env: the ``env`` config group of a gymnasium env (``robot_env.gym_env.GymEnvConfig``)
            for the variant ``gym/state``: any user simulator, its ``expert`` as demonstrator and
            (through ``ExpertOperator``) as the simulated operator.
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
    env_steps: int = 50_000
    eval_every: int = 10_000
    eval_episodes: int = 100
    eval_seed: int = 50_000
    learning_starts: int = 200
    # CPU sizes (2 cores): 2 x 128 critics, 5 heads, batch 128 ran ~300 updates/s, so 50k env steps
    # x 3 seeds x 3 learning methods x 2 tasks fit a few hours in the background; the recipe
    # itself (warm-ups, lr, exploration, BC weight, gate) is the shipped learner yaml's.
    agent: dict[str, Any] = dataclasses.field(default_factory=lambda: {
        "actor_hidden": [128, 128], "critic_hidden": [128, 128], "num_critics": 5,
        "batch_size": 128, "device": "cpu",
        "encoder": {"channels": 16, "latent_dim": 32, "image_size": 64}})
    diagnostics: bool = True
    report_only: bool = False
    first_seed: int = 0
    gym_env: dict[str, Any] = dataclasses.field(default_factory=dict)
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


#: a seed's BC base checkpoint in its run folder (next to base.json; not committed: see .gitignore)
BASE_FILE = "base_policy.safetensors"

PER_VARIANT_KEYS = ("demos", "expert_noise", "bc_steps", "bc_chunk", "bc_hidden", "env_steps", "eval_every",
                    "eval_episodes", "agent")


def variant_study(study: StudyConfig, variant: str) -> StudyConfig:
    """``study`` with the ``per_task`` overrides of ``variant`` (task-level first, then variant-level)."""
    task = variant.partition("/")[0]
    values = {**study.per_task.get(task, {}), **study.per_task.get(variant, {})}
    unknown = sorted(set(values) - set(PER_VARIANT_KEYS))
    if unknown:
        raise ValueError(f"per_task keys {unknown} are not per-variant settings {PER_VARIANT_KEYS}")
    if "agent" in values:  # merged into the study's agent overrides (the encoder node too), not replacing them
        agent = {**study.agent, **values["agent"]}
        agent["encoder"] = {**study.agent.get("encoder", {}), **values["agent"].get("encoder", {})}
        values["agent"] = agent
    return dataclasses.replace(study, **values)


# images on a CPU: the residual's critic and actor see each camera through the BC base's own conv
# trunk, frozen, its features cached in replay once per frame (`learner.cache_features`)
IMAGE_AGENT = {"cache_features": True, "encoder": {"freeze_backbone": True, "backbone_from": "base"}}
# 4000 steps: the first 2000 are the recipe's held-noise warm-up, the next 2000 show the residual acting
QUICK = dict(variants=("pick_cube/state",), seeds=2, methods=("bc", "residual", "residual_hil"), env_steps=4000,
             eval_every=2000, eval_episodes=20, diagnostics=False,
             per_task={"pick_cube/image": {"agent": IMAGE_AGENT}})
FULL: dict[str, Any] = {"variants": ("pick_cube/state", "peg_insert/state", "pick_cube/image"), "per_task": {
    # 2 mm clearance: a 300-step BC base never inserts; 6000 steps on 20 near-perfect demos gives ~30 %
    "peg_insert": {"demos": 20, "expert_noise": 0.02, "bc_steps": 6000, "bc_chunk": 1, "bc_hidden": (256, 256)},
    "pick_cube/image": {"bc_steps": 600, "env_steps": 20000, "eval_every": 5000, "agent": IMAGE_AGENT},
}}


def study_config(cfg: Mapping[str, Any]) -> StudyConfig:
    """The preset named by ``cfg["quick"]`` with ``cfg["learn"]`` overrides."""
    from robot_env.registry import config_from_dict

    preset = dict(QUICK if cfg.get("quick") else FULL)
    preset.update({k: v for k, v in dict(cfg.get("learn") or {}).items() if v is not None})
    return config_from_dict(StudyConfig, preset)


# ----------------------------------------------------------------------------- pieces
def is_gym(variant: str) -> bool:
    """``gym/state``: the study's configured gymnasium env instead of a built-in task."""
    return variant.partition("/")[0] == "gym"


def make_variant_env(variant: str, image_size: int = 128, gym_env: Mapping[str, Any] | None = None) -> Any:
    """The sim env of ``"<task>/<obs>"``: privileged state, or two cameras + proprio; ``gym/state``
    builds the gymnasium env of ``gym_env`` (its own observations)."""
    from learners.sim_obs import PrivilegedState
    from robot_env import make_env

    if is_gym(variant):
        if not gym_env:
            raise ValueError("variant 'gym/state' needs a gymnasium env: hilr bench learn env=gym env.id=<id> env.expert=...")
        return make_env({"env": dict(gym_env)})
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
    """``n`` successful episodes of the noisy scripted expert (reset seeds from ``seed``); for a
    gymnasium env, of its configured ``env.expert`` (its imperfection is the expert's own)."""
    from learners.rollout import collect_episodes
    from robot_env.sim.experts import make_expert

    if task == "gym":
        from robot_env.gym_env import load_expert

        expert = load_expert(env)
    else:
        expert = make_expert(env.unwrapped.task, noise=noise, seed=seed)
    return collect_episodes(env, expert.act, n, seed=seed * 1000, reset=expert.reset, only_successful=True)


def train_base(demos: list[dict[str, np.ndarray]], study: StudyConfig, seed: int, images: bool) -> Any:
    """An imperfect BC base (few steps) as a :class:`policies.bc.BCBasePolicy`."""
    from learners.bc import BCTrainConfig, train_bc
    from policies.bc import BCBasePolicy, BCConfig
    from policies.encoders import EncoderConfig

    # BC trains its own encoder: the agent's frozen-backbone settings are the residual's, not the base's
    bc_enc = {k: v for k, v in study.agent.get("encoder", {}).items() if k not in ("freeze_backbone", "backbone_from")}
    enc = EncoderConfig(**bc_enc) if images else EncoderConfig()
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


def evaluate_paired(env: Any, act: Any, study: StudyConfig, reset: Any) -> dict[str, Any]:
    """Deterministic evaluation on the study's fixed reset seeds (per-episode outcomes kept)."""
    from learners.rollout import evaluate

    res = evaluate(env, act, study.eval_episodes, seed=study.eval_seed, reset=reset)
    return {"success_rate": res["success_rate"], "successes": [bool(x) for x in res["successes"]]}


def run_method(name: str, variant: str, study: StudyConfig, seed: int, base: Any,
               demos: list[dict[str, np.ndarray]], base_eval: dict[str, Any],
               files: Mapping[str, dict] | None = None, probes: dict[str, Any] | None = None,
               train_env: Callable[[], Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one method on one seed; returns its curve (with per-episode outcomes), counters and diagnostics.

    ``train_env`` builds the env it practises in (default: the variant's, like the evaluation
    env); ``hilr bench reward`` passes one whose reward comes from the image classifier, while
    the evaluation keeps the sim's ground truth."""
    from learners.agent import Agent
    from learners.bench_learn_diag import critic_prefers_oracle
    from learners.builders import agent_config, build_replay
    from learners.inprocess import run_online
    from policies.encoders import obs_spec_from_space

    if name == "bc":
        points = list(range(0, study.env_steps + 1, study.eval_every))
        return {"curve": [[s, base_eval["success_rate"]] for s in points],
                "successes": [base_eval["successes"]] * len(points), "intervention_steps": 0,
                "seconds": 0.0, "updates": 0}
    _, _, with_operator = METHOD_SPECS[name]
    task = variant.partition("/")[0]
    env = train_env() if train_env is not None else make_variant_env(variant, study.image_size, study.gym_env)
    eval_env = make_variant_env(variant, study.image_size, study.gym_env)
    try:
        spec = obs_spec_from_space(env.observation_space)
        acfg = agent_config(learner_values(name, study, seed, files), action_dim=int(env.action_space.shape[0]))
        agent = Agent(spec, acfg, base)
        cache = None
        if acfg.cache_features:  # the frozen backbone runs once per stored frame, as in `hilr learner`
            from learners.feature_cache import FeatureCache

            cache = FeatureCache(agent.encoder)
        replay = build_replay(spec, acfg, cache)
        scale = acfg.scale_array()
        for ep in demos:
            replay.demo.add_episode(ep if acfg.mode != "rlpd" else {k: v for k, v in ep.items() if k != "base_action"},
                                    scale=scale)
        operator = None
        if with_operator and is_gym(variant):
            from robot_env.gym_env import ExpertOperator, load_expert

            operator = ExpertOperator(load_expert(env), seed=seed)
            env = operator.wrap(env)
        elif with_operator:
            operator = OperatorOnReset(task, study.operator_skill, seed)
            env = operator.wrap(env)
        act = lambda o: agent.act(o, deterministic=True)[0]  # noqa: E731
        t_start = time.monotonic()
        start = evaluate_paired(eval_env, act, study, agent.reset)
        successes, diagnostics = [start["successes"]], []
        # an untrained residual is zero, so its step-0 outcomes are the base's, episode for episode;
        # if not, this run practises on another base than the one base.json evaluated
        mismatch = base_mismatch(start["successes"], base_eval["successes"]) if acfg.mode == "residual" else 0
        if mismatch:
            log.warning("%s seed %d %s: the step-0 evaluation differs from base.json's on %d of %d episodes: "
                        "this run's BC base is not the one base.json evaluated", variant, seed, name, mismatch,
                        len(start["successes"]))

        def on_eval(step: int, res: dict[str, Any]) -> None:
            successes.append([bool(x) for x in res["successes"]])
            m = agent_metrics_snapshot(agent)
            if probes is not None and acfg.mode == "residual":
                m["critic_prefers_oracle"] = critic_prefers_oracle(agent, probes)
            diagnostics.append({"step": step, **m})
            log.info("%s seed %d %s: %d env steps, success %.2f (base %.2f), %d updates, %.0f s",
                     variant, seed, name, step, res["success_rate"], base_eval["success_rate"], agent.num_updates,
                     time.monotonic() - t_start)

        res = run_online(env, agent, replay, study.env_steps, learning_starts=study.learning_starts,
                         eval_env=eval_env, eval_every=study.eval_every, eval_episodes=study.eval_episodes,
                         operator=operator, seed=seed * 7919, eval_seed=study.eval_seed, on_eval=on_eval,
                         progress=f"{variant} seed {seed} {name}" if progress else False)
        return {"curve": [[0, start["success_rate"]]] + res["curve"], "successes": successes,
                "intervention_steps": res["intervention_steps"], "seconds": res["seconds"], "updates": res["updates"],
                "episodes": res["episodes"], "train_success_rate": res["train_success_rate"],
                "base_mismatch_episodes": int(mismatch),
                "diagnostics": diagnostics, "learner": dataclasses.asdict(acfg)}
    finally:
        env.close()
        eval_env.close()


def base_mismatch(step0: Sequence[bool], base: Sequence[bool]) -> int:
    """Episodes on which a residual run's step-0 evaluation and its base's disagree (an untrained
    residual is zero, so they must not); evaluations of different lengths disagree on all of them."""
    if len(step0) != len(base):
        return max(len(step0), len(base))
    return sum(bool(a) != bool(b) for a, b in zip(step0, base))


def agent_metrics_snapshot(agent: Any) -> dict[str, Any]:
    """The agent's counters and gate statistics at an evaluation point."""
    gate = agent.gate_stats
    total = gate["open"] + gate["closed"]
    return {"updates": agent.num_updates, "actor_updates": agent.num_actor_updates,
            "gate_open_rate": gate["open"] / total if total else None}


# ----------------------------------------------------------------------------- the study
def steps_to(curve: list[list[float]], level: float = 0.9) -> int | None:
    """First env step whose evaluated success rate is >= ``level`` (None: never)."""
    return next((int(s) for s, r in curve if r >= level), None)


def paired_difference(method_runs: list[dict[str, Any]], base_runs: list[list[bool]]) -> list[dict[str, float]]:
    """Per evaluation point: mean of (method - base) over every (seed, episode) pair, with a 95 % interval.

    Both sides ran the same reset seeds, so each pair differs only by the policy.
    """
    return [paired_interval(np.concatenate([np.asarray(run["successes"][j], float) - np.asarray(b, float)
                                            for run, b in zip(method_runs, base_runs)]))
            for j in range(len(method_runs[0]["successes"]))]


def paired_interval(d: np.ndarray) -> dict[str, float]:
    """Mean of the per-episode differences ``d`` with a 95 % normal interval, and their count."""
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": round(float(d.mean()), 4), "lo": round(float(d.mean() - half), 4),
            "hi": round(float(d.mean() + half), 4), "n": int(len(d))}


def paired_between_methods(runs: Mapping[str, list[dict[str, Any] | None]],
                           pairs: tuple[tuple[str, str], ...] = (
                               ("residual_hil", "residual"), ("residual_hil", "rlpd"), ("residual", "rlpd"),
                               # ablations against the shipped recipe (only where both ran)
                               ("residual_hil_nogate", "residual_hil"), ("residual_hil_gate_eval", "residual_hil"),
                               ("residual_hil_nogate", "residual_hil_gate_eval"), ("residual_nogate", "residual"),
                               ("residual_hil_nobc", "residual_hil"),
                               # what interventions buy with the gate off on both sides
                               ("residual_hil_nogate", "residual_nogate"))) -> dict[str, Any]:
    """``a - b`` per evaluation point over the seeds where both methods finished: every method ran
    the same reset seeds, so each episode pair differs only by the method (95 % interval)."""
    out: dict[str, Any] = {}
    for a, b in pairs:
        both = [(ra, rb) for ra, rb in zip(runs.get(a, []), runs.get(b, [])) if ra is not None and rb is not None]
        if not both:
            continue
        n_points = min(min(len(ra["successes"]), len(rb["successes"])) for ra, rb in both)
        steps = [int(s) for s, _ in both[0][0]["curve"][:n_points]]
        diff = [{"step": steps[j], **paired_interval(np.concatenate(
            [np.asarray(ra["successes"][j], float) - np.asarray(rb["successes"][j], float) for ra, rb in both]))}
            for j in range(n_points)]
        out[f"{a}-{b}"] = {"seeds": len(both), "per_point": diff}
    return out


def summarise(runs: list[dict[str, Any]], base_runs: list[list[bool]] | None = None) -> dict[str, Any]:
    """Mean/std/min/max of the seeds' curves, final success, steps to 90 %, intervention steps and,
    with the base's per-episode outcomes, the paired difference to the base at every point."""
    steps = [s for s, _ in runs[0]["curve"]]
    rates = np.array([[r for _, r in run["curve"]] for run in runs], float)
    mean = rates.mean(0)
    out = {
        "steps": steps, "mean": mean.round(4).tolist(), "std": rates.std(0).round(4).tolist(),
        "min": rates.min(0).tolist(), "max": rates.max(0).tolist(),
        "final_mean": float(mean[-1]), "final_std": float(rates[:, -1].std()),
        "steps_to_90_mean_curve": steps_to([[s, r] for s, r in zip(steps, mean)]),
        "steps_to_90_per_seed": [steps_to(run["curve"]) for run in runs],
        "intervention_steps_mean": float(np.mean([run["intervention_steps"] for run in runs])),
        "seconds_mean": float(np.mean([run["seconds"] for run in runs])),
    }
    if base_runs is not None and all("successes" in r for r in runs):
        out["vs_base"] = paired_difference(runs, base_runs)
    diags = [r.get("diagnostics") for r in runs if r.get("diagnostics")]
    if diags:
        out["diagnostics"] = diags
    return out


def _write_json(path: Path, value: Any) -> None:
    """Atomic JSON write (a killed study never leaves a half-written run file)."""
    atomic_write(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def base_settings(vs: StudyConfig, images: bool) -> dict[str, Any]:
    """What a seed's BC base depends on besides the seed (stored in its checkpoint, checked on load)."""
    out = {k: getattr(vs, k) for k in ("demos", "expert_noise", "bc_steps", "bc_chunk", "bc_hidden")}
    if images:
        out.update(image_size=vs.image_size, encoder={k: v for k, v in vs.agent.get("encoder", {}).items()
                                                      if k not in ("freeze_backbone", "backbone_from")})
    return out


def _seed_setup(variant: str, vs: StudyConfig, seed: int, scale: np.ndarray,
                evaluate: bool = True, base_file: Path | None = None,
                known_base: dict[str, Any] | None = None) -> tuple[Any, list, dict[str, Any], Any]:
    """Demos, BC base, its paired evaluation, and (sim) the oracle ceiling and probe states of one seed.

    ``evaluate=False`` (a resumed seed whose ``base.json`` holds them) skips the base's and the
    oracle's evaluations; the probe states come from seeded resets, so they are the same.
    ``base_file``: the seed's BC base checkpoint; loaded when it exists (so every worker and every
    later session, whatever code it runs, practises on the base that ``base.json`` evaluated),
    else trained and written there; a base trained for a seed whose ``base.json`` already exists
    (``evaluate=False``) is evaluated and written only if it reproduces ``base.json``'s outcomes
    (``known_base``) episode for episode.

    Raises:
        ValueError: ``base_file`` was trained with other BC settings than ``vs``'s.
    """
    import torch

    from learners.bench_learn_diag import oracle_ceiling, probe_states
    from policies.bc import load_bc_policy, save_bc_policy
    from policies.checkpoint import read_metadata

    task, _, obs = variant.partition("/")
    torch.manual_seed(seed)
    # as the checkpoint's JSON header holds them (tuples as lists), to compare with what it saved
    settings = json.loads(json.dumps({"variant": variant, "seed": seed, **base_settings(vs, obs == "image")}))
    env = make_variant_env(variant, vs.image_size, vs.gym_env)
    try:
        demos = collect_demos(env, task, vs.demos, vs.expert_noise, seed)
        info: dict[str, Any] = {}
        if base_file is not None and base_file.exists():
            meta = read_metadata(base_file)
            saved = {k: meta.get(k) for k in settings}
            if saved != settings:
                diff = ", ".join(f"{k} {saved[k]!r} there, {settings[k]!r} here" for k in settings if saved[k] != settings[k])
                raise ValueError(f"{base_file} is the BC base of other settings ({diff}); delete it and the "
                                 f"seed's base.json and runs to start the seed afresh")
            base = load_bc_policy(base_file)
        else:
            base = train_base(demos, vs, seed, images=obs == "image")
            if base_file is not None:
                reproduced = True
                if not evaluate and known_base is not None:  # base.json came from an earlier base: same one?
                    info["base"] = evaluate_paired(env, base.act, vs, base.reset)
                    reproduced = info["base"]["successes"] == known_base["successes"]
                    if not reproduced:
                        log.warning("%s seed %d: the retrained BC base does not reproduce base.json's outcomes "
                                    "(%.2f against %.2f): not saved; its residual runs will be flagged",
                                    variant, seed, info["base"]["success_rate"], known_base["success_rate"])
                if base_file.exists():  # a concurrent worker saved its own first: every worker practises on that one
                    base = load_bc_policy(base_file)
                elif reproduced:
                    save_bc_policy(base_file, base.model, settings)
        if evaluate:
            info["base"] = evaluate_paired(env, base.act, vs, base.reset)
        probes = None
        if vs.diagnostics and not is_gym(variant):  # the oracle needs a built-in task's expert
            if evaluate:
                info["oracle"] = oracle_ceiling(env, base, env.unwrapped.task, scale, vs.eval_episodes, vs.eval_seed)
            probes = probe_states(env, base, env.unwrapped.task, scale, 5, vs.eval_seed + 10_000)
            info["probe_states"] = len(probes["obs"])
    finally:
        env.close()
    return base, label_base_actions(demos, base), info, probes


def run_study(study: StudyConfig, progress: bool = True, runs_dir: Path | None = None) -> dict[str, Any]:
    """Every variant x seed x method; returns ``{"config", "results": {variant: {method: summary}}}``.

    With ``runs_dir`` each finished run is written to ``runs_dir/<variant>/seed<k>/<method>.json``
    and existing files are reused instead of re-run (resumable across sessions).
    """
    import torch
    from omegaconf import OmegaConf
    from tqdm import tqdm

    torch.set_num_threads(1)
    methods = list(study.methods) + list(study.extra_methods)
    files = {METHOD_SPECS[m][0]: OmegaConf.to_container(OmegaConf.load(
        REPO / "launch" / "config" / "learner" / f"{METHOD_SPECS[m][0]}.yaml")) for m in methods if m != "bc"}
    residual_scale = agent_scale(files, study)
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    bar = tqdm(total=len(study.variants) * study.seeds * len(methods), desc="bench learn", disable=not progress)
    try:  # the bar ends its line even when a run fails, so the error prints on its own line
        for variant in study.variants:
            vs = variant_study(study, variant)
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            seeds_info, seed_ids = [], []
            for seed in range(study.first_seed if not study.report_only else 0, study.seeds):
                folder = runs_dir / variant.replace("/", "_") / f"seed{seed}" if runs_dir else None
                todo = [m for m in methods if folder is None or not (folder / f"{m}.json").exists()]
                if study.report_only and (folder is None or not (folder / "base.json").exists()):
                    bar.update(len(methods))
                    continue
                base = probes = demos = None
                known = json.loads((folder / "base.json").read_text()) if folder and (folder / "base.json").exists() else None
                info = known  # base.json is never rewritten: runs refer to it
                if not study.report_only and (todo or known is None):
                    base, demos, info, probes = _seed_setup(variant, vs, seed, residual_scale, evaluate=known is None,
                                                            base_file=folder / BASE_FILE if folder is not None else None,
                                                            known_base=known["base"] if known else None)
                    if known is not None:
                        info = known
                    elif folder is not None and (folder / "base.json").exists():  # another worker wrote it meanwhile
                        info = json.loads((folder / "base.json").read_text())
                    elif folder is not None:
                        _write_json(folder / "base.json", info)
                seeds_info.append(info)
                seed_ids.append(seed)
                for m in methods:
                    bar.set_postfix_str(f"{variant} seed {seed} {m}")
                    path = folder / f"{m}.json" if folder is not None else None
                    if path is not None and path.exists():
                        run = json.loads(path.read_text())
                    elif study.report_only or (path is not None and not claim(path)):
                        runs[m].append(None)  # another worker is running it: its file will be there for the report
                        bar.update(1)
                        continue
                    else:
                        try:
                            run = run_method(m, variant, vs, seed, base, demos, info["base"], files, probes,
                                             progress=progress)
                        finally:
                            if path is not None:
                                path.with_suffix(".running").unlink(missing_ok=True)
                        if path is not None:
                            _write_json(path, run)
                    runs[m].append(run)
                    bar.update(1)
            if not seeds_info:
                continue
            base_runs = [i["base"]["successes"] for i in seeds_info]
            results[variant] = {}
            for m, r in runs.items():  # each method over the seeds it has finished (others: still running)
                done = [i for i, run in enumerate(r) if run is not None]
                if done:
                    results[variant][m] = {**summarise([r[i] for i in done], [base_runs[i] for i in done]),
                                           "seeds": [seed_ids[i] for i in done]}
            results[variant]["_paired"] = paired_between_methods(runs)
            results[variant]["_seeds"] = len(seeds_info)
            results[variant]["_base_success_per_seed"] = [i["base"]["success_rate"] for i in seeds_info]
            if all("oracle" in i for i in seeds_info):
                results[variant]["_oracle_ceiling_per_seed"] = [i["oracle"]["success_rate"] for i in seeds_info]
            results[variant]["_settings"] = {k: getattr(vs, k) for k in PER_VARIANT_KEYS}
    finally:
        bar.close()
    return {"config": dataclasses.asdict(study), "learner_files": files, "results": results,
            "seconds": time.monotonic() - t0}


def methods_on_disk(runs_dir: Path, methods: Sequence[str]) -> tuple[str, ...]:
    """The methods not in ``methods`` with at least one finished run file under ``runs_dir``, in
    :data:`METHOD_SPECS` order (ablations, and a main method left out of ``methods``): what a report
    of the whole study includes (``learn.extra_methods=[]`` reports only ``methods``)."""
    found = {p.stem for p in runs_dir.glob("*/seed*/*.json")} if runs_dir.is_dir() else set()
    return tuple(m for m in METHOD_SPECS if m in found and m not in methods)


def claim(path: Path) -> bool:
    """Mark the run ``path`` as taken by this process (``<method>.running`` holds its pid); False when a
    live process already holds it, so parallel workers on one study never run the same thing twice."""
    marker = path.with_suffix(".running")
    path.parent.mkdir(parents=True, exist_ok=True)
    if marker.exists():
        try:
            os.kill(int(marker.read_text().strip() or 0), 0)
            return False
        except (ValueError, ProcessLookupError, PermissionError):
            pass  # a dead worker's marker: take the run over
    marker.write_text(str(os.getpid()))
    return True


def agent_scale(files: Mapping[str, dict], study: StudyConfig) -> np.ndarray:
    """The residual scale ``(7,)`` of the study's residual recipe (for the oracle ceiling)."""
    from learners.builders import agent_config

    from omegaconf import OmegaConf

    # always the study's residual recipe, whichever methods this worker runs (a worker running
    # only rlpd must write the same oracle ceiling into base.json as one running the residuals)
    name = "residual_td3_cpu"
    values = dict(files[name]) if name in files else OmegaConf.to_container(OmegaConf.load(
        REPO / "launch" / "config" / "learner" / f"{name}.yaml"))
    values.update({k: v for k, v in study.agent.items() if k != "encoder"})
    return agent_config(values, mode="residual").scale_array()


def run(cfg: dict) -> dict:
    """``hilr bench learn [quick=true] [learn.seeds=5 ...]``: run, write JSON + plots, print a table.

    Writes to ``docs/results/`` (full study, or ``learn.out_dir``) or the run directory (quick).
    The full study keeps one file per finished run under ``<out_dir>/runs/`` and skips them when
    restarted. Returns the summary (final success per variant/method, and the regression check in
    quick mode).
    """
    from learners import bench_learn_report as report
    from robot_env.app import run_dir

    quick = bool(cfg.get("quick", False))
    learn = {k: v for k, v in dict(cfg.get("learn") or {}).items() if v is not None}
    out_dir = Path(learn.pop("out_dir", None) or (run_dir() if quick else RESULTS))
    name = learn.pop("name", None) or ("learn_quick" if quick else "learn_full")
    env_group = dict(cfg.get("env") or {})
    if env_group.get("type") == "gym":  # hilr bench learn env=gym env.id=... : the user's simulator
        learn = {"variants": ["gym/state"], **learn, "gym_env": env_group}
    runs_dir = out_dir / "runs" / name

    def config(learn: dict[str, Any], quick: bool) -> StudyConfig:
        study = study_config({"quick": quick, "learn": learn})
        if study.report_only and "extra_methods" not in learn:  # a report covers every method with a run file
            study = dataclasses.replace(study, extra_methods=methods_on_disk(runs_dir, study.methods))
        return study

    study = config(learn, quick)
    result = run_study(study, progress=cfg.get("progress", True), runs_dir=runs_dir)
    committed = not quick and out_dir == RESULTS and name == "learn_full"
    if committed and not study.report_only and set(learn) - {"progress"}:
        # a worker ran a share (some variants, methods or seeds): the committed report is the whole
        # study's, summarised from every run file there, never just this worker's share
        study = config({"report_only": True}, False)
        result = run_study(study, progress=False, runs_dir=runs_dir)
    result["quick"] = quick
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / f"{name}.json", result)
    plots = report.plot(result, out_dir / f"{name}.png")
    reference = None
    ref_path = Path(cfg.get("reference") or QUICK_REFERENCE)
    if quick and ref_path.exists():
        reference = json.loads(ref_path.read_text())
    rows = report.table_rows(result, reference, study.tolerance)
    print(report.format_table(rows, with_reference=reference is not None))
    if committed:  # the committed study: refresh its docs tables
        report.update_markdown([REPO / "README.md", REPO / "docs" / "sections" / "benchmarks.md"],
                               report.format_table(rows, with_reference=False), report.run_rows(out_dir / "runs" / name))
    regressions = [r for r in rows if r.get("regression")]
    return {"benchmark": "learn", "quick": quick, "json": str(out_dir / f"{name}.json"), "plots": plots,
            "seconds": round(result["seconds"], 1), "rows": rows, "regressions": len(regressions),
            "reference": str(ref_path) if reference is not None else None}
