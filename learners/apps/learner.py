"""``hilr learner``: receive transitions over ZMQ, train the residual (TD3/SAC) or RLPD, publish weights.

Observation and action spaces come from the demo dataset's ``meta.json`` (or ``obs_spec``
in the config): the learner never builds an environment and never touches hardware.

Examples::

    hilr learner demos=data/pick_cube_demos
    hilr learner demos=... learner.device=cuda learner.utd=4 transport.bind_host=0.0.0.0
    hilr learner --help
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def run_learner(cfg: dict, out_dir: Path) -> dict:
    """Build agent, buffers and transport from ``cfg``; resume if a checkpoint exists; train."""
    import torch

    from learners import distributed
    from learners.agent import Agent
    from learners.builders import (agent_config, build_replay, load_demo_buffer, obs_spec_from_config,
                                   obs_spec_from_dataset, transport_config)
    from learners.learner_loop import LearnerLoop, LearnerLoopConfig
    from learners.transport import TransitionReceiver, WeightPublisher
    from learners.transport.spec import transition_spec
    from robot_env.registry import config_from_dict

    from learners.cli import default_threads

    # torch's default (every core) thrashes on a small box shared with the actor and the sim
    torch.set_num_threads(int(cfg.get("torch_threads") or os.environ.get("OMP_NUM_THREADS") or default_threads()))
    from learners.agent import resolve_device

    device = distributed.init_from_env(resolve_device(str(cfg["learner"].get("device", "cpu"))))
    if cfg.get("obs_spec"):
        spec = obs_spec_from_config(cfg["obs_spec"])
    elif cfg.get("demos"):
        spec = obs_spec_from_dataset(cfg["demos"])
    else:
        raise ValueError("the learner needs the observation layout: set demos=<dataset> or obs_spec")
    extra = {}
    if cfg.get("demos"):  # the action size recorded with the demos (7 for the robot env, any for gym envs)
        from robot_env.dataset import read_meta

        space = read_meta(cfg["demos"]).get("action_space") or {}
        if space.get("shape"):
            extra["action_dim"] = int(space["shape"][0])
    acfg = agent_config(cfg["learner"], device=device, **extra)
    backbone_source = None
    if acfg.encoder.backbone_from == "base":  # the frozen camera backbones are the BC base's (same file as the actor's)
        if not cfg.get("base_policy"):
            raise ValueError("learner.encoder.backbone_from=base needs base_policy=<the actor's BC .safetensors>")
        from policies.base import load_base_policy

        backbone_source = load_base_policy(cfg["base_policy"])
    agent = Agent(spec, acfg, backbone_source=backbone_source)
    cache = None
    if acfg.cache_features:  # the frozen backbone runs once per stored frame; replay holds its features
        from learners.feature_cache import FeatureCache

        cache = FeatureCache(agent.encoder)
    replay_spec = cache.replay_spec() if cache is not None else spec
    if agent.encoder.image_keys and agent.device.type == "cpu" and cache is None:
        log.warning("image learner on CPU: each update encodes every camera image of the batch (about 1 update/s "
                    "for two 64x64 cameras on one core, `hilr bench learner`), so weights reach the actor minutes "
                    "apart; learn on a GPU box (learner.device=auto there), lower learner.encoder.image_size, or "
                    "freeze the backbone and cache its features (learner.encoder.freeze_backbone=true "
                    "learner.cache_features=true)")
    if distributed.world_size() > 1 and not cfg.get("checkpoint_dir"):
        raise ValueError("a data-parallel learner (torchrun) needs an explicit checkpoint_dir shared by its ranks")
    ckpt_dir = Path(cfg.get("checkpoint_dir") or out_dir / "checkpoints")
    if distributed.world_size() > 1 and distributed.rank() > 0:
        # data-parallel follower: no transport, no replay, no checkpoints of its own; it loads
        # the same checkpoint as rank 0 (identical weights and optimiser moments), then rank 0 feeds it
        if cfg.get("resume", True) and ckpt_dir.exists():
            folder = first_verified_checkpoint(ckpt_dir)  # the one rank 0 resumes from
            if folder is not None:
                agent.load(folder / "agent.safetensors")
        n = distributed.ShardedUpdater(agent, template_batch(replay_spec, acfg)).follow()
        return {"rank": distributed.rank(), "updates": n}
    replay = build_replay(spec, acfg, cache)
    # acks wait for checkpoints: a killed learner loses nothing (the actors re-send)
    tcfg = transport_config(cfg["transport"], ack_policy="commit")
    # every transition is checked against this layout at the socket: a misconfigured actor
    # is refused (and told why), never crashes the learner
    check = None
    if cache is not None and acfg.features_from == "actor":
        # the actor sends its backbone's features in place of images, with the backbone's digest;
        # features of another backbone are refused
        required, optional = transition_spec(replay_spec, acfg.action_dim, features=True)
        check = cache.check_transition
    else:
        required, optional = transition_spec(spec, acfg.action_dim)
    receiver = TransitionReceiver(tcfg, expected=required, optional=optional, check=check)
    publisher = WeightPublisher(tcfg)
    writer = None
    if cfg.get("tensorboard", True):
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"))
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("flag", True))
    try:
        loop = LearnerLoop(agent, replay, receiver, publisher, config_from_dict(LearnerLoopConfig, cfg["loop"]),
                           ckpt_dir, writer)
        # resume (de-duplication state included) before the sockets open
        if not (cfg.get("resume", True) and loop.resume()):
            base = None
            if cfg.get("base_policy") and acfg.mode == "residual":  # only to label the demos' base actions
                from policies.base import load_base_policy

                base = backbone_source or load_base_policy(cfg["base_policy"])  # loaded once
            n = load_demo_buffer(replay, cfg.get("demos"), acfg.scale_array(), cfg.get("max_demo_episodes"), base)
            log.info("fresh start: %d demo transitions from %s", n, cfg.get("demos"))
        elif cache is not None and cache.refresh_digest():  # the checkpoint's backbone made the stored features
            log.warning("the resumed checkpoint's camera backbone (%s) is not the one base_policy / encoder.pretrained "
                        "gives: its replay holds that backbone's features, so it stays; actors must run the same "
                        "backbone (start with a fresh checkpoint_dir to change it)", bytes(cache.digest).hex()[:12])
        if cache is not None:
            log.info("cached camera features (%s): backbone %s", acfg.features_from, bytes(cache.digest).hex()[:12])
        if distributed.world_size() > 1:  # after resume: every rank starts from the same weights
            loop.updater = distributed.ShardedUpdater(agent, template_batch(replay_spec, acfg))
        receiver.start()
        publisher.start()
        log.info("learner listening on ports %s (transitions) / %s (weights)", receiver.port, publisher.port)
        summary = loop.run(stop=lambda: stop["flag"])
        if cache is not None:  # where the stored features were made
            summary["feature_cache"] = {"features_from": acfg.features_from, "backbone_frames": cache.backbone_frames,
                                        "actor_frames": cache.passed_frames}
        return summary
    finally:
        receiver.close()  # both are no-ops when never started
        publisher.close()
        if writer is not None:
            writer.close()


def first_verified_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint folder whose content hashes check (what rank 0 resumes from)."""
    from learners import learner_checkpoint

    for folder in learner_checkpoint.candidates(ckpt_dir):
        try:
            if (folder / learner_checkpoint.MANIFEST).exists():
                learner_checkpoint.verify(folder)
            return folder
        except learner_checkpoint.CorruptCheckpoint as exc:
            log.error("data-parallel follower: %s; trying the previous checkpoint", exc)
    return None


def template_batch(spec: dict, acfg) -> dict:
    """A zero batch of the data-parallel global size: its layout is all the ranks share."""
    import numpy as np

    from learners import distributed
    from learners.replay import ReplayBuffer

    buf = ReplayBuffer(spec, 4, acfg.action_dim, acfg.n_step, acfg.gamma)
    zeros = {k: np.zeros(shape, dt) for k, (shape, dt) in spec.items()}
    buf.add({"obs": zeros, "next_obs": zeros, "action": np.zeros(acfg.action_dim, np.float32),
             "reward": 0.0, "terminated": True, "truncated": False})
    return buf.sample(acfg.batch_size * distributed.world_size())


@hydra_app("learner")
def main(cfg) -> int:
    """Entry point of ``hilr learner``."""
    from learners import distributed

    out = run_dir()
    summary = run_learner(to_container(cfg), out)
    distributed.shutdown()  # every rank leaves the process group together (not after an error: no barrier)
    if distributed.rank() > 0:
        return 0
    (out / "learner_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "receiver"}, default=str))
    return 0
