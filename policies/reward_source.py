"""The trained image success classifier as the env's success source (``reward=classifier``).

On a real arm there is no privileged simulator state: success comes from
:class:`~policies.reward.RewardClassifier` run on the same frames the policy sees, in the
actor process, within the control period. Selected in any verb that builds an env::

    hilr actor reward=classifier reward.checkpoint=runs/train_reward/<run>/reward_classifier.safetensors

A step counts as success once the probability exceeds the threshold on ``consecutive``
frames in a row. Every step's probability goes into ``info["success_probability"]`` (and
from there into the streamed transitions), so false positives can be audited later. When
the robot has a privileged success of its own (the in-process sim, the ROS2 sim robot), it
is never used as reward: it is only recorded beside the classifier's decision
(``info["privileged_success"]``) to measure precision and recall.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robot_env.task import SUCCESS_SOURCES, SuccessSource


class RewardMismatchError(ValueError):
    """The classifier was trained on other cameras, image sizes or crops than the env has."""


@dataclasses.dataclass
class ClassifierRewardConfig:
    """The ``reward`` config group with ``type: classifier``.

    Attributes:
        checkpoint: ``reward_classifier.safetensors`` written by ``hilr train-reward``.
        threshold: P(success) above which a frame is positive; None = the checkpoint's.
        consecutive: positive frames in a row needed before a step counts as success (1 = the
            first positive frame; 2-3 suppresses single-frame false positives).
        device: torch device of the classifier (``cpu`` keeps the GPU for the policy).
        audit: record the robot's privileged success beside the classifier's decision when the
            robot has one (sims only), for precision and recall; never used as reward.
        expose_task_state: sims only: keep the sim's object pose in ``info["task_state"]``, for
            the simulated operator (who sees the scene, as a person would) and for
            ``privileged_state=true`` observations; success stays hidden either way. A real
            robot has no task state, so this changes nothing there.
    """

    checkpoint: str | None = None
    threshold: float | None = None
    consecutive: int = 1
    device: str = "cpu"
    audit: bool = True
    expose_task_state: bool = True

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ValueError("reward=classifier needs reward.checkpoint=<reward_classifier.safetensors> "
                             "(written by `hilr train-reward`)")
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"reward.threshold must be in (0, 1), got {self.threshold}")
        if int(self.consecutive) < 1:
            raise ValueError(f"reward.consecutive must be >= 1, got {self.consecutive}")


@SUCCESS_SOURCES.register("classifier", ClassifierRewardConfig)
class ClassifierSuccess(SuccessSource):
    """Success = the reward classifier's probability above threshold on ``consecutive`` frames.

    Args:
        cfg: the config.
        privileged: the robot's own success source (sim) or None (real robot). Its ``reset()``
            still runs (the ROS2 sim robot resets its scene there); its success is only audited.
    """

    def __init__(self, cfg: ClassifierRewardConfig, privileged: SuccessSource | None = None) -> None:
        from policies.checkpoint import CheckpointError, read_metadata
        from policies.reward import load_reward_classifier

        self.cfg = cfg
        path = Path(cfg.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"reward.checkpoint {path} does not exist (train one with `hilr train-reward`)")
        try:
            self.meta = read_metadata(path)
            self.model = load_reward_classifier(path, cfg.device, threshold=cfg.threshold)
        except CheckpointError as exc:
            raise CheckpointError(f"reward.checkpoint: {exc}") from None
        self.threshold = float(self.model.cfg.threshold)
        self.privileged = privileged
        self._run = 0
        self._p = float("nan")
        self._truth: bool | None = None
        self._latency_ms = 0.0
        self._at_reset = False

    @property
    def camera_keys(self) -> list[str]:
        """Observation keys the classifier reads (cameras, and ``state`` if trained with it)."""
        return list(self.model.spec)

    def check_fits(self, observation_space: Any, crops: Mapping[str, Any] | None = None) -> None:
        """Refuse an env whose cameras, image sizes or crops differ from the training data's.

        Raises:
            RewardMismatchError: naming the first mismatch.
        """
        spaces = getattr(observation_space, "spaces", {})
        src = self.cfg.checkpoint
        for key, (shape, _) in self.model.spec.items():
            if key not in spaces:
                raise RewardMismatchError(
                    f"reward classifier {src} reads camera {key!r}, which this env does not have "
                    f"(cameras: {sorted(k for k in spaces if k != 'state')})")
            have = tuple(spaces[key].shape)
            if key != "state" and have != tuple(shape):
                raise RewardMismatchError(
                    f"reward classifier {src} was trained on {key!r} images of {tuple(shape)} (H, W, C); "
                    f"this env gives {have}: set task.image_size={list(shape[:2])} or retrain")
        trained = self.meta.get("crops")
        if trained is not None:
            env_crops = {k: [round(float(v), 4) for v in c] for k, c in dict(crops or {}).items()}
            for key in self.model.spec:
                if key == "state":
                    continue
                want = [round(float(v), 4) for v in trained.get(key, [0.0, 0.0, 1.0, 1.0])]
                have = env_crops.get(key, [0.0, 0.0, 1.0, 1.0])
                if want != have:
                    raise RewardMismatchError(
                        f"reward classifier {src} was trained on camera {key!r} cropped to {want} "
                        f"(x0, y0, x1, y1), this env crops it to {have}: use the same crops_file or retrain")

    def reset(self) -> None:
        """New episode: forget the run of positive frames; reset the robot's own source (sim scene)."""
        self._run, self._p, self._truth = 0, float("nan"), None
        self._at_reset = True  # the reset observation is scored but never counts towards success
        if self.privileged is not None:
            self.privileged.reset()

    def success(self, obs: dict[str, np.ndarray]) -> bool:
        """Classifier decision on the newest frames (and the audit of the privileged one)."""
        t0 = time.perf_counter()
        self._p = self.model.success_probability(obs)
        self._latency_ms = (time.perf_counter() - t0) * 1e3
        at_reset, self._at_reset = self._at_reset, False
        self._run = self._run + 1 if self._p > self.threshold and not at_reset else 0
        if self.cfg.audit and self.privileged is not None:
            self._truth = bool(self.privileged.success(obs))
        return self._run >= self.cfg.consecutive

    def task_state(self) -> dict[str, np.ndarray]:
        """The sim's object pose with ``expose_task_state`` (sims); empty on a real robot."""
        if self.cfg.expose_task_state and self.privileged is not None:
            return self.privileged.task_state()
        return {}

    def info(self) -> dict[str, Any]:
        """``success_probability``, ``reward_source``, ``classifier_success`` (its decision),
        ``classifier_latency_ms`` and, when audited, ``privileged_success``."""
        out: dict[str, Any] = {"success_probability": self._p, "reward_source": "classifier",
                               "classifier_success": self._run >= self.cfg.consecutive,
                               "classifier_latency_ms": self._latency_ms}
        if self._truth is not None:
            out["privileged_success"] = self._truth
        return out
