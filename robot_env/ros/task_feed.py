"""Task state and success from a robot that reports them over ROS2 (the sim-robot node).

The sim robot publishes one ``std_msgs/String`` JSON report per physics tick on
``task_state_topic``::

    {"episode": 3, "success": false, "failure": false, "sim_time": 1.25,
     "task_state": {"cube_pos": [x, y, z], ...}}

and serves ``reset_service`` (``std_srvs/Trigger``) to re-randomise its scene.
:class:`RosTaskFeed` is the env's ``SuccessSource`` for it; it rides on the arm's node,
so its lifetime is the arm's. Custom ``.msg`` files cannot be built from PyPI wheels,
hence JSON on a standard type (no pickle, human-readable with ``ros2 topic echo``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from robot_env.hardware import DeviceError, StaleDataError
from robot_env.task import SuccessSource


def encode_report(episode: int, success: bool, failure: bool, sim_time: float,
                  task_state: dict[str, np.ndarray]) -> str:
    """The JSON text of one task report (arrays become lists of floats)."""
    return json.dumps({
        "episode": int(episode), "success": bool(success), "failure": bool(failure),
        "sim_time": float(sim_time),
        "task_state": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in task_state.items()},
    })


def decode_report(text: str) -> dict[str, Any]:
    """Parse a task report; ``task_state`` values become float64 arrays.

    Raises:
        ValueError: not JSON, or a key is missing or mistyped.
    """
    try:
        report = json.loads(text)
        out = {"episode": int(report["episode"]), "success": bool(report["success"]),
               "failure": bool(report["failure"]),
               "task_state": {str(k): np.asarray(v, dtype=np.float64)
                              for k, v in dict(report["task_state"]).items()}}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed task report {text[:80]!r}: {exc}") from None
    return out


class RosTaskFeed(SuccessSource):
    """``SuccessSource`` fed by the robot's task report topic; ``reset()`` calls its reset service.

    Args:
        arm: the connected-or-not :class:`~robot_env.ros.arm.RosArm` whose profile names
            the topic and service (subscriptions are made on its node when it connects).
        max_age_s: a report older than this raises ``StaleDataError``.
        reset_timeout_s: how long ``reset()`` waits for the service and a fresh report.
    """

    def __init__(self, arm: Any, max_age_s: float | None = None, reset_timeout_s: float = 10.0) -> None:
        self.arm = arm
        self.max_age_s = arm.cfg.max_state_age_s if max_age_s is None else max_age_s
        self.reset_timeout_s = reset_timeout_s
        self._lock = threading.Lock()
        self._report: tuple[float, dict[str, Any]] | None = None
        self._error: str | None = None
        self._node = None
        self._client = None

    def _attach(self) -> None:
        node = self.arm.node
        if node is None:
            raise DeviceError("RosTaskFeed: the arm is not connected")
        if node is self._node:
            return
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        from robot_env.ros import runtime

        cfg = self.arm.cfg
        node.create_subscription(String, cfg.task_state_topic, self._on_report, runtime.make_qos("reliable", 5))
        self._client = node.create_client(Trigger, cfg.reset_service) if cfg.reset_service else None
        self._node = node
        with self._lock:
            self._report, self._error = None, None

    def _on_report(self, msg: Any) -> None:
        stamp = time.monotonic()
        try:
            report = decode_report(msg.data)
        except ValueError as exc:
            with self._lock:
                self._error = str(exc)
            return
        with self._lock:
            self._report, self._error = (stamp, report), None

    def latest(self) -> dict[str, Any]:
        """The newest report (``episode``, ``success``, ``failure``, ``task_state``).

        Raises:
            StaleDataError: none yet, or older than ``max_age_s``.
            DeviceError: the newest message was malformed.
        """
        self._attach()
        with self._lock:
            report, error = self._report, self._error
        if error is not None:
            raise DeviceError(f"task report on {self.arm.cfg.task_state_topic}: {error}")
        if report is None:
            raise StaleDataError(f"no task report on {self.arm.cfg.task_state_topic} yet")
        age = time.monotonic() - report[0]
        if age > self.max_age_s:
            raise StaleDataError(f"task report on {self.arm.cfg.task_state_topic} is {age * 1e3:.0f} ms old")
        return report[1]

    def reset(self) -> None:
        """Re-randomise the sim scene and wait until a report of the new episode has arrived."""
        self._attach()
        deadline = time.monotonic() + self.reset_timeout_s
        if self._client is None:
            return
        from std_srvs.srv import Trigger

        if not self._client.wait_for_service(timeout_sec=self.reset_timeout_s):
            raise DeviceError(f"reset service {self.arm.cfg.reset_service} not available")
        future = self._client.call_async(Trigger.Request())
        while not future.done():
            if time.monotonic() > deadline:
                raise DeviceError(f"reset service {self.arm.cfg.reset_service} did not answer "
                                  f"within {self.reset_timeout_s} s")
            time.sleep(0.005)
        response = future.result()
        if not response.success:
            raise DeviceError(f"sim robot refused reset: {response.message}")
        episode = json.loads(response.message)["episode"]
        answered = time.monotonic()
        while True:  # the env's next observation must come from after the reset
            with self._lock:
                report = self._report
            if report is not None and report[1]["episode"] >= episode and report[0] > answered:
                try:
                    if self.arm.read_state().stamp > answered:
                        return
                except StaleDataError:
                    pass
            if time.monotonic() > deadline:
                raise DeviceError("no task report / arm state from the new episode after reset")
            time.sleep(0.002)

    def success(self, obs: dict[str, np.ndarray]) -> bool:
        """The robot's own success test, from the newest report."""
        return self.latest()["success"]

    def failure(self, obs: dict[str, np.ndarray]) -> bool:
        """The robot's failure test (object lost), from the newest report."""
        return self.latest()["failure"]

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged task state (object poses), float64 arrays, base frame."""
        return self.latest()["task_state"]
