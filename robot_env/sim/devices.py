"""The MuJoCo arm and camera: ``ARMS["mujoco"]`` and ``CAMERAS["mujoco"]``.

Both are thin views of one shared ``SimWorld``; pass it as ``world=`` (the env factory
does). An arm built without a world makes its own on ``connect()``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robot_env.hardware import ARMS, CAMERAS, Arm, ArmState, Camera, DeviceError, Frame
from robot_env.sim.world import GRIPPER_MAX_WIDTH, SimWorld, SimWorldConfig
from robot_env.task import SuccessSource


@dataclasses.dataclass
class MujocoArmConfig(SimWorldConfig):
    """Sim arm: the physics settings of ``SimWorldConfig`` plus, for a standalone arm,
    the task whose scene it builds.

    Attributes:
        task: sim task name used only when no ``world`` is passed in.
        home_timeout_s: sim seconds ``move_home`` may take before it gives up.
    """

    task: str = "pick_cube"
    home_timeout_s: float = 3.0

    def world_config(self) -> SimWorldConfig:
        """The ``SimWorldConfig`` part of this config."""
        names = {f.name for f in dataclasses.fields(SimWorldConfig)}
        return SimWorldConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


@ARMS.register("mujoco", MujocoArmConfig)
class MujocoArm(Arm):
    """The simulated Panda with a Robotiq 2F-85, driven through a compliant TCP-pose target.

    Commands only set targets; physics advances when the owner of the world calls
    ``world.step(dt)`` (the env in process, the ROS2 node's timer otherwise).
    """

    gripper_max_width = GRIPPER_MAX_WIDTH

    def __init__(self, config: MujocoArmConfig, world: SimWorld | None = None) -> None:
        self.config = config
        self.world = world
        self._connected = False

    def connect(self) -> None:
        """Build the world if none was given. Idempotent."""
        if self.world is None:
            self.world = SimWorld(self.config.task, self.config.world_config())
        self._connected = True

    def disconnect(self) -> None:
        """Mark disconnected (the world belongs to whoever made it)."""
        self._connected = False


    def read_state(self) -> ArmState:
        """Current state, stamped with the ``time.monotonic()`` of the last physics step."""
        self._require_connected()
        return self.world.arm_state()

    def command_pose(self, ee_pos: np.ndarray, ee_quat: np.ndarray) -> None:
        """TCP pose target: metres, xyzw, base frame."""
        self._require_connected()
        self.world.set_ee_target(ee_pos, ee_quat)

    def command_gripper(self, width: float) -> None:
        """Gripper opening target, metres, 0 = closed."""
        self._require_connected()
        self.world.set_gripper(width)

    def move_home(self, pos: np.ndarray | None = None, quat: np.ndarray | None = None) -> None:
        """Drive the TCP to the task's home pose (or ``pos``/``quat``), stepping physics until it is reached."""
        self._require_connected()
        tc = self.world.task_config
        home_pos = np.asarray(tc.home_pos if pos is None else pos, float)
        home_quat = np.asarray(tc.home_quat if quat is None else quat, float)
        self.world.set_ee_target(home_pos, home_quat)
        deadline = self.world.time + self.config.home_timeout_s
        while np.linalg.norm(self.world.tcp_pos() - home_pos) > 0.005:
            if self.world.time > deadline:
                raise DeviceError(f"sim arm did not reach home within {self.config.home_timeout_s} s")
            self.world.step(0.05)

    def stop(self) -> None:
        """Hold the current pose."""
        self._require_connected()
        self.world.set_ee_target(self.world.tcp_pos(), self.world.tcp_quat())


@dataclasses.dataclass
class MujocoCameraConfig:
    """A camera of the sim world.

    Attributes:
        camera: MuJoCo camera name in the scene (``front`` or ``wrist``).
        height: image height, pixels.
        width: image width, pixels.
    """

    camera: str = "front"
    height: int = 128
    width: int = 128

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"camera size must be positive, got {self.height}x{self.width}")


@CAMERAS.register("mujoco", MujocoCameraConfig)
class MujocoCamera(Camera):
    """Offscreen (EGL) render of a sim camera; every ``read()`` renders the current state."""

    def __init__(self, config: MujocoCameraConfig, world: SimWorld | None = None) -> None:
        self.config = config
        self.world = world
        self.shape = (config.height, config.width)
        self._connected = False

    def connect(self) -> None:
        """Check the camera exists in the world."""
        if self.world is None:
            raise DeviceError("MujocoCamera needs world=<SimWorld> (the env factory passes it)")
        import mujoco

        if mujoco.mj_name2id(self.world.model, mujoco.mjtObj.mjOBJ_CAMERA, self.config.camera) < 0:
            raise DeviceError(f"no camera {self.config.camera!r} in the sim scene")
        self._connected = True

    def disconnect(self) -> None:
        """Mark disconnected."""
        self._connected = False


    def read(self) -> Frame:
        """Render now: (height, width, 3) uint8 RGB, stamped with the physics stamp."""
        self._require_connected()
        color = self.world.render(self.config.camera, self.config.height, self.config.width)
        return Frame(stamp=self.world.stamp, color=color, device_stamp=self.world.time)


class SimSuccess(SuccessSource):
    """Success, failure and privileged ``task_state`` read from the sim world."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    def success(self, obs: dict[str, np.ndarray]) -> bool:
        """The sim task's own success test."""
        return self.world.success()

    def failure(self, obs: dict[str, np.ndarray]) -> bool:
        """The sim task's failure test (object lost)."""
        return self.world.failure()

    def task_state(self) -> dict[str, np.ndarray]:
        """Object poses etc. (privileged; sim only)."""
        return self.world.task_state()
