"""MuJoCo sim backend: ``SimWorld``, the ``mujoco`` arm and camera, tasks and experts.

Importing this package registers ``ARMS["mujoco"]`` and ``CAMERAS["mujoco"]``.
"""

from robot_env.sim.tasks import SIM_TASKS, default_task_config
from robot_env.sim.world import SimWorld, SimWorldConfig
from robot_env.sim import devices  # noqa: F401  (registers ARMS["mujoco"], CAMERAS["mujoco"])

__all__ = ["SIM_TASKS", "SimWorld", "SimWorldConfig", "default_task_config"]
