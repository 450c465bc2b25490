"""Simulated tasks: their objects, randomised resets, privileged state and success.

A ``SimTask`` contributes MJCF to the scene, places its objects at ``reset`` and judges
``success`` from simulator state. It never moves the arm itself (``SimWorld`` does, from
the ``TaskConfig``), so the same task runs in process and behind the ROS2 sim node.

Every task's ``task_state()`` is a dict of float64 numpy arrays (metres, xyzw, base
frame); it is privileged: only sim provides it, and only experts/tests may read it.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from robot_env.geometry import quat_wxyz_to_xyzw, quat_xyzw_to_wxyz, rotvec_to_quat
from robot_env.registry import Registry
from robot_env.sim.scene import FIXTURE_CONTACT, TOOL_CONTACT
from robot_env.task import TaskConfig

if TYPE_CHECKING:
    from robot_env.sim.world import SimWorld

SIM_TASKS: Registry = Registry("sim task")


def _yaw_quat(yaw: float) -> np.ndarray:
    return rotvec_to_quat(np.array([0.0, 0.0, yaw]))


class SimTask(abc.ABC):
    """Base of simulated tasks. ``cfg`` is the task's own dataclass (``TaskConfig.sim``)."""

    #: Default ``TaskConfig`` for this task (the hydra yaml mirrors it).
    DEFAULTS: TaskConfig = TaskConfig()

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def worldbody_xml(self) -> str:
        """MJCF of the task's objects, placed in ``<worldbody>``."""
        return ""

    def tool_xml(self) -> str:
        """MJCF of bodies rigidly held by the gripper at the TCP (``tool`` body)."""
        return ""

    def bind(self, model: mujoco.MjModel) -> None:
        """Look up ids in the compiled model (called once)."""

    #: Narrowest gripper opening the task allows, metres (peg held: never crush it).
    min_gripper_width: float = 0.0
    #: Gripper opening at reset, metres (None = fully open).
    reset_gripper_width: float | None = None

    @abc.abstractmethod
    def reset(self, world: SimWorld, rng: np.random.Generator) -> None:
        """Place the objects (the arm is already at its reset pose)."""

    @abc.abstractmethod
    def task_state(self, world: SimWorld) -> dict[str, np.ndarray]:
        """Privileged object state, float64 arrays, base frame."""

    @abc.abstractmethod
    def success(self, world: SimWorld) -> bool:
        """Whether the task is solved in the current physics state."""

    def failure(self, world: SimWorld) -> bool:
        """Whether the episode cannot succeed any more."""
        return False


# ---------------------------------------------------------------------------- reach
@dataclasses.dataclass
class ReachConfig:
    """Reach: bring the TCP within ``success_radius`` of a random target.

    Attributes:
        target_low: (3,) lower corner of the target box, metres, base frame.
        target_high: (3,) upper corner of the target box, metres.
        success_radius: TCP-to-target distance counted as reached, metres.
        min_distance: the target is at least this far from the TCP at reset, metres.
    """

    target_low: tuple = (0.32, -0.22, 0.05)
    target_high: tuple = (0.62, 0.22, 0.32)
    success_radius: float = 0.02
    min_distance: float = 0.1


@SIM_TASKS.register("reach", ReachConfig)
class ReachTask(SimTask):
    """Move the TCP to a randomly placed target (a green sphere, no collision)."""

    DEFAULTS = TaskConfig(name="reach", episode_steps=50, max_rotation=0.1)

    def worldbody_xml(self) -> str:
        """The task's objects (MJCF)."""
        return ('<body name="reach_target" mocap="true" pos="0.5 0 0.2"><geom type="sphere" '
                'size="0.015" rgba="0.1 0.9 0.2 0.8" contype="0" conaffinity="0"/></body>')

    def bind(self, model: mujoco.MjModel) -> None:
        """Cache ids of the task's bodies/joints/sites."""
        self._mocap = model.body("reach_target").mocapid[0]

    def reset(self, world: SimWorld, rng: np.random.Generator) -> None:
        """Draw new object poses from ``rng`` (seeded by ``SimWorld.reset``)."""
        for _ in range(100):  # rejection sampling; the box is much larger than the ball
            target = rng.uniform(self.cfg.target_low, self.cfg.target_high)
            if np.linalg.norm(target - world.tcp_pos()) >= self.cfg.min_distance:
                break
        world.data.mocap_pos[self._mocap] = target

    def task_state(self, world: SimWorld) -> dict[str, np.ndarray]:
        """Privileged object state, float64, metres / xyzw, base frame."""
        return {"target_pos": world.data.mocap_pos[self._mocap].copy()}

    def success(self, world: SimWorld) -> bool:
        """The success test in the docstring of this task's config."""
        dist = np.linalg.norm(world.tcp_pos() - world.data.mocap_pos[self._mocap])
        return bool(dist < self.cfg.success_radius)


# ------------------------------------------------------------------------ pick_cube
@dataclasses.dataclass
class PickCubeConfig:
    """Pick up a cube and lift it.

    Attributes:
        cube_half_size: half edge of the cube, metres.
        cube_mass: kg.
        xy_low: (2,) lower corner of the cube's random position, metres.
        xy_high: (2,) upper corner, metres.
        yaw_range: cube yaw drawn from +- this, radians.
        lift_height: lift above the resting height counted as success, metres.
    """

    cube_half_size: float = 0.02
    cube_mass: float = 0.05
    xy_low: tuple = (0.38, -0.12)
    xy_high: tuple = (0.55, 0.12)
    yaw_range: float = 0.6
    lift_height: float = 0.08


@SIM_TASKS.register("pick_cube", PickCubeConfig)
class PickCubeTask(SimTask):
    """Grasp a randomly placed, randomly yawed cube and lift it ``lift_height``."""

    DEFAULTS = TaskConfig(name="pick_cube", episode_steps=100)

    def worldbody_xml(self) -> str:
        """The task's objects (MJCF)."""
        h = self.cfg.cube_half_size
        return (f'<body name="cube" pos="0.5 0 {h}"><freejoint name="cube"/>'
                f'<geom name="cube" type="box" size="{h} {h} {h}" mass="{self.cfg.cube_mass}" '
                'rgba="0.8 0.2 0.2 1" friction="1.2 0.01 0.0002" condim="4"/></body>')

    def bind(self, model: mujoco.MjModel) -> None:
        """Cache ids of the task's bodies/joints/sites."""
        self._qadr = model.jnt_qposadr[model.joint("cube").id]
        self._body = model.body("cube").id

    def reset(self, world: SimWorld, rng: np.random.Generator) -> None:
        """Draw new object poses from ``rng`` (seeded by ``SimWorld.reset``)."""
        xy = rng.uniform(self.cfg.xy_low, self.cfg.xy_high)
        yaw = rng.uniform(-self.cfg.yaw_range, self.cfg.yaw_range)
        q = world.data.qpos
        q[self._qadr:self._qadr + 3] = (xy[0], xy[1], self.cfg.cube_half_size)
        q[self._qadr + 3:self._qadr + 7] = quat_xyzw_to_wxyz(_yaw_quat(yaw))

    def task_state(self, world: SimWorld) -> dict[str, np.ndarray]:
        """Privileged object state, float64, metres / xyzw, base frame."""
        return {
            "cube_pos": world.data.xpos[self._body].copy(),
            "cube_quat": quat_wxyz_to_xyzw(world.data.xquat[self._body]),
            "cube_half_size": np.array([self.cfg.cube_half_size]),
        }

    def success(self, world: SimWorld) -> bool:
        """The success test in the docstring of this task's config."""
        lifted = world.data.xpos[self._body][2] > self.cfg.cube_half_size + self.cfg.lift_height
        near = np.linalg.norm(world.data.xpos[self._body] - world.tcp_pos()) < 0.06
        return bool(lifted and near)

    def failure(self, world: SimWorld) -> bool:
        """The cube fell off the table."""
        return bool(world.data.xpos[self._body][2] < -0.01)  # fell off the table


# ----------------------------------------------------------------------- peg_insert
@dataclasses.dataclass
class PegInsertConfig:
    """Insert a square peg, held by the gripper, into a square hole.

    Attributes:
        peg_half_size: half side of the peg's square section, metres.
        peg_length: metres; the peg's top 2 cm sit between the fingers.
        clearance: gap between peg and hole wall on each side, metres.
        hole_depth: metres.
        xy_low: (2,) lower corner of the hole's random position, metres.
        xy_high: (2,) upper corner, metres.
        yaw_range: hole yaw drawn from +- this, radians (the peg must be turned to fit).
        success_depth: peg tip below the hole's rim counted as inserted, metres.
    """

    peg_half_size: float = 0.012
    peg_length: float = 0.08
    clearance: float = 0.002
    hole_depth: float = 0.04
    xy_low: tuple = (0.4, -0.12)
    xy_high: tuple = (0.55, 0.12)
    yaw_range: float = 0.3
    success_depth: float = 0.03


@SIM_TASKS.register("peg_insert", PegInsertConfig)
class PegInsertTask(SimTask):
    """Contact-rich insertion with a few millimetres of clearance; the hole is yawed."""

    DEFAULTS = TaskConfig(name="peg_insert", episode_steps=120, max_translation=0.02,
                          max_rotation=0.1, home_pos=(0.47, 0.0, 0.22),
                          workspace_low=(0.3, -0.25, 0.02))

    @property
    def min_gripper_width(self) -> float:  # type: ignore[override]
        """The gripper never closes narrower than the peg, metres."""
        return 2 * self.cfg.peg_half_size

    @property
    def reset_gripper_width(self) -> float:  # type: ignore[override]
        """The gripper starts closed on the peg, metres."""
        return 2 * self.cfg.peg_half_size

    def tool_xml(self) -> str:
        """The peg, rigidly held at the TCP, and a site at its tip."""
        c = self.cfg
        z = c.peg_length / 2 - 0.02  # peg centre along the tool axis
        return (f'<geom name="peg" type="box" size="{c.peg_half_size} {c.peg_half_size} '
                f'{c.peg_length / 2}" pos="0 0 {z}" mass="0.02" rgba="0.2 0.4 0.9 1" '
                f'{TOOL_CONTACT} friction="0.4 0.005 0.0001"/>'
                f'<site name="peg_tip" pos="0 0 {z + c.peg_length / 2}" size="0.002"/>')

    def worldbody_xml(self) -> str:
        """The task's objects (MJCF)."""
        c = self.cfg
        inner = c.peg_half_size + c.clearance
        wall = 0.02
        off = inner + wall / 2
        h = c.hole_depth / 2
        ext = inner + wall
        walls = "".join(
            f'<geom type="box" size="{sx} {sy} {h}" pos="{px} {py} {h}" rgba="0.55 0.55 0.6 1" '
            f'{FIXTURE_CONTACT} friction="0.4 0.005 0.0001"/>'
            for sx, sy, px, py in [(wall / 2, ext, off, 0), (wall / 2, ext, -off, 0),
                                   (inner, wall / 2, 0, off), (inner, wall / 2, 0, -off)])
        return f'<body name="hole" mocap="true" pos="0.5 0 0">{walls}</body>'

    def bind(self, model: mujoco.MjModel) -> None:
        """Cache ids of the task's bodies/joints/sites."""
        self._mocap = model.body("hole").mocapid[0]
        self._tip = model.site("peg_tip").id

    def reset(self, world: SimWorld, rng: np.random.Generator) -> None:
        """Draw new object poses from ``rng`` (seeded by ``SimWorld.reset``)."""
        xy = rng.uniform(self.cfg.xy_low, self.cfg.xy_high)
        yaw = rng.uniform(-self.cfg.yaw_range, self.cfg.yaw_range)
        world.data.mocap_pos[self._mocap] = (xy[0], xy[1], 0.0)
        world.data.mocap_quat[self._mocap] = quat_xyzw_to_wxyz(_yaw_quat(yaw))

    def task_state(self, world: SimWorld) -> dict[str, np.ndarray]:
        """Privileged object state, float64, metres / xyzw, base frame."""
        rim = world.data.mocap_pos[self._mocap] + np.array([0.0, 0.0, self.cfg.hole_depth])
        return {
            "hole_pos": rim,  # centre of the hole's opening
            "hole_quat": quat_wxyz_to_xyzw(world.data.mocap_quat[self._mocap]),
            "peg_tip_pos": world.data.site_xpos[self._tip].copy(),
        }

    def success(self, world: SimWorld) -> bool:
        """The success test in the docstring of this task's config."""
        rim = world.data.mocap_pos[self._mocap] + np.array([0.0, 0.0, self.cfg.hole_depth])
        tip = world.data.site_xpos[self._tip]
        inside = np.linalg.norm(tip[:2] - rim[:2]) < self.cfg.clearance + 0.004
        return bool(inside and tip[2] < rim[2] - self.cfg.success_depth)


def make_sim_task(task: TaskConfig) -> SimTask:
    """The ``SimTask`` named ``task.name`` with its parameters from ``task.sim``."""
    return SIM_TASKS.make({"type": task.name, **task.sim})


def default_task_config(name: str, **overrides) -> TaskConfig:
    """The default ``TaskConfig`` of sim task ``name`` (what the hydra yaml holds)."""
    _, cls = SIM_TASKS.entry(name)
    return dataclasses.replace(cls.DEFAULTS, **overrides)
