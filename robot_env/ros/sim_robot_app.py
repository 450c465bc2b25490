"""``hilr sim-robot``: run the MuJoCo sim robot as a ROS2 node (config: launch/config/sim_robot.yaml)."""

from __future__ import annotations

import json
import logging
import signal

from robot_env.app import hydra_app, to_container

log = logging.getLogger(__name__)


def physics_config(overrides: dict | None) -> dict:
    """SimWorldConfig values: the in-process sim's ``robot/sim.yaml`` plus ``overrides``.

    Reading the same file as ``robot=sim`` keeps the ROS2 sim robot and the in-process sim
    physically identical unless the operator asks otherwise.
    """
    import dataclasses

    import yaml

    from robot_env.app import config_dir
    from robot_env.sim import SimWorldConfig

    path = config_dir() / "robot" / "sim.yaml"
    base = yaml.safe_load(path.read_text()) if path.is_file() else {}
    names = {f.name for f in dataclasses.fields(SimWorldConfig)}
    return {**{k: v for k, v in (base or {}).items() if k in names}, **dict(overrides or {})}


def build_node(cfg: dict):
    """The :class:`SimRobotNode` described by a resolved ``sim_robot`` config (plain dict)."""
    from robot_env.factory import task_config
    from robot_env.registry import config_from_dict
    from robot_env.ros.arm_config import RosArmConfig
    from robot_env.ros.sim_robot_node import SimRobotConfig, SimRobotNode
    from robot_env.sim import SimWorld, SimWorldConfig

    robot = dict(cfg["robot"])
    if robot.pop("type", "ros") != "ros":
        raise ValueError("sim-robot serves a ROS2 profile: use robot=ros_sim (type: ros)")
    arm = config_from_dict(RosArmConfig, robot)
    if not (arm.task_state_topic and arm.reset_service and arm.estop_topic and arm.ee_twist_topic
            and arm.wrench_topic and arm.gripper_state_topic):
        raise ValueError("the sim robot needs a profile naming every state topic, the task topic, "
                         "the reset service and the e-stop topic (robot=ros_sim)")
    task = task_config(cfg.get("task"))
    cameras = {}
    for name, spec in (cfg.get("camera") or {}).items():
        if spec.get("type") != "ros":
            raise ValueError(f"camera {name!r}: sim-robot publishes ROS2 cameras only (camera=ros_sim)")
        cameras[name] = {"topic": spec["topic"], "camera": name,
                         "height": spec.get("height", task.image_size[0]),
                         "width": spec.get("width", task.image_size[1])}
    world = SimWorld(task, config_from_dict(SimWorldConfig, physics_config(cfg.get("physics"))))
    return SimRobotNode(world, arm, cameras, config_from_dict(SimRobotConfig, cfg.get("node") or {}))


@hydra_app("sim_robot")
def main(cfg) -> int:
    """Serve the sim robot until Ctrl-C (or ``node.duration_s``); log counters at the end."""
    node = build_node(to_container(cfg))
    # Ctrl-C / `ros2 launch` shutdown (SIGINT, then SIGTERM): finish the tick, then stop cleanly
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: node.stop())
    stats = node.run()
    log.info("sim robot stopped: %s", json.dumps(stats))
    print(json.dumps(stats))
    return 0
