"""``SimWorld``: one MuJoCo model and its state, with a small API for arm, task and cameras.

This is the single owner of the physics. The in-process env drives it through
``MujocoArm``/``MujocoCamera``; the ROS2 sim-robot node wraps the same API:

    world = SimWorld(default_task_config("pick_cube"))
    world.reset(seed=0)                     # arm to a random home pose, objects placed
    world.set_ee_target(pos, quat_xyzw)     # TCP pose target, metres / xyzw, base frame
    world.set_gripper(width)                # metres, 0 = closed
    world.step(0.1)                         # advance physics by 0.1 s of sim time
    state = world.arm_state()               # robot_env.hardware.ArmState
    rgb = world.render("front", 128, 128)   # (128, 128, 3) uint8
    world.task_state(); world.success(); world.failure()

Control: the TCP hangs from the target on spring-dampers (compliant translation) and
follows its orientation through a stiff weld; see ``robot_env.sim.scene``.

Frames: the base frame is MuJoCo's world frame (robot base at the origin, table top at
z = 0). The TCP is gym-hil's ``pinch`` site between the fingertips; its z axis points
out of the gripper. Not thread-safe: call it from one thread (rendering needs the thread
that created the GL context).
"""

from __future__ import annotations

import dataclasses
import os
import time

import mujoco
import numpy as np

from robot_env.geometry import (
    apply_rotvec, matrix_to_quat, quat_conj, quat_error_rotvec, quat_mul, quat_normalize,
    quat_to_matrix, quat_wxyz_to_xyzw, quat_xyzw_to_wxyz, rotvec_to_quat,
)
from robot_env.hardware import ArmState, DeviceError
from robot_env.sim.scene import panda_xml, scene_xml
from robot_env.sim.tasks import default_task_config, make_sim_task
from robot_env.task import TaskConfig

#: A comfortable joint configuration with the gripper pointing down (gym-hil's home).
PANDA_HOME_JOINTS = np.array([0.0, 0.195, 0.0, -2.43, 0.0, 2.62, 0.785])
#: Largest opening of the Robotiq 2F-85, metres.
GRIPPER_MAX_WIDTH = 0.085


@dataclasses.dataclass
class SimWorldConfig:
    """Physics settings of the sim world (the hydra ``robot=sim`` group holds them).

    Attributes:
        timestep: physics step, seconds.
        compliance_stiffness: translational stiffness of the TCP target springs, N/m: a
            push of 1 cm into a wall makes about this / 100 newtons.
        compliance_damping: their damping, N·s/m (about critical for the arm's mass).
        weld_solref: (time constant s, damping ratio) of the weld from the springs to
            the flange (orientation stiffness).
        ramp_fraction: a new TCP target is approached along a straight line (rotation
            about a fixed axis, as in slerp) with a cosine speed profile over this
            fraction of each ``step`` call, so a jump of the target never jerks the arm.
        ramp_chunks: the ramp is sampled this many times (one MuJoCo call each).
        posture_gain: joint-space pull toward the home joints, N·m/rad (keeps the
            redundant elbow from drifting).
        wrench_range: (force N, torque N·m) at which the simulated wrist F/T reading
            saturates, per axis, like a real sensor's range.
        render_geoms: ``collision`` renders the arm's collision meshes (about 3x fewer
            triangles: roughly twice as fast on software EGL) or ``visual`` its detailed
            visual meshes.
        offscreen_width: largest render width, pixels.
        offscreen_height: largest render height, pixels.
    """

    timestep: float = 0.002
    compliance_stiffness: float = 10000.0
    compliance_damping: float = 600.0
    weld_solref: tuple = (0.004, 1.0)
    ramp_fraction: float = 0.6
    ramp_chunks: int = 6
    posture_gain: float = 2.0
    wrench_range: tuple = (200.0, 20.0)
    render_geoms: str = "collision"
    offscreen_width: int = 640
    offscreen_height: int = 480

    def __post_init__(self) -> None:
        self.weld_solref = tuple(float(v) for v in self.weld_solref)
        if len(self.weld_solref) != 2 or self.weld_solref[0] < 2 * self.timestep:
            raise ValueError(f"weld_solref must be (time constant >= 2 timesteps, damping ratio), "
                             f"got {self.weld_solref}")
        if self.ramp_chunks < 1:
            raise ValueError(f"ramp_chunks must be >= 1, got {self.ramp_chunks}")
        if not 0 < self.ramp_fraction <= 1:
            raise ValueError(f"ramp_fraction must be in (0, 1], got {self.ramp_fraction}")
        if not 0 < self.timestep <= 0.01:
            raise ValueError(f"timestep must be in (0, 0.01] s, got {self.timestep}")
        if self.render_geoms not in ("collision", "visual"):
            raise ValueError(f"render_geoms must be 'collision' or 'visual', got {self.render_geoms!r}")


class SimWorld:
    """The Panda, a table, the task's objects and two cameras (``front``, ``wrist``).

    Args:
        task: a ``TaskConfig`` or a sim task name (its defaults are used).
        config: physics settings.
    """

    def __init__(self, task: TaskConfig | str = "pick_cube", config: SimWorldConfig | None = None):
        self.task_config = default_task_config(task) if isinstance(task, str) else task
        self.config = config or SimWorldConfig()
        self.task = make_sim_task(self.task_config)
        xml = scene_xml(self.task.worldbody_xml(), self.config.timestep, self.config.weld_solref,
                        (self.config.offscreen_width, self.config.offscreen_height),
                        (self.config.compliance_stiffness, self.config.compliance_damping))
        self.model = mujoco.MjModel.from_xml_string(
            xml, {"panda_hilr.xml": panda_xml(self.task.tool_xml()).encode()})
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_dadr = np.array([m.jnt_dofadr[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_range = np.array([m.jnt_range[m.joint(f"joint{i}").id] for i in range(1, 8)])
        self._arm_act = np.array([m.actuator(f"actuator{i}").id for i in range(1, 8)])
        self._grip_act = m.actuator("fingers_actuator").id
        self._tcp = m.site("pinch").id
        self._mocap = m.body("ee_target").mocapid[0]
        self._jacp, self._jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        self._flange = m.body("attachment").id
        self._pads = (m.geom("left_pad1").id, m.geom("right_pad1").id)
        self._sensor = {n: m.sensor(n).adr[0] for n in ("2f85/pinch_vel", "2f85/pinch_angvel")}
        self._is_hand = np.zeros(m.nbody, dtype=bool)  # bodies at or below the flange
        for b in range(m.nbody):
            a = b
            while a > 0 and a != self._flange:
                a = m.body_parentid[a]
            self._is_hand[b] = a == self._flange
        self.task.bind(m)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._scene_option = self._make_scene_option()
        self._rng = np.random.default_rng()
        self.stamp = time.monotonic()  # when the physics state last changed
        # Fixed flange->TCP transform, for turning TCP targets into flange (mocap) targets.
        self.data.qpos[self._arm_qadr] = PANDA_HOME_JOINTS
        mujoco.mj_forward(m, self.data)
        r_flange = self.data.xmat[self._flange].reshape(3, 3)
        r_tcp = self.data.site_xmat[self._tcp].reshape(3, 3)
        self._tcp_in_flange_pos = r_flange.T @ (self.data.site_xpos[self._tcp] - self.data.xpos[self._flange])
        self._tcp_in_flange_quat = matrix_to_quat(r_flange.T @ r_tcp)
        # the weld holds the flange where it sits relative to the TCP (fixed hand geometry)
        ref = m.body("ee_flange_ref").id
        m.body_quat[ref] = quat_xyzw_to_wxyz(quat_conj(self._tcp_in_flange_quat))
        m.body_pos[ref] = -(quat_to_matrix(quat_conj(self._tcp_in_flange_quat)) @ self._tcp_in_flange_pos)
        self._target_pos = self.tcp_pos()
        self._target_quat = self.tcp_quat()
        self._gripper_width = GRIPPER_MAX_WIDTH
        self._width_calibration = self._calibrate_gripper()
        self.reset(seed=0)

    # ------------------------------------------------------------------ lifecycle
    def reset(self, seed: int | None = None) -> None:
        """New episode: arm to the task's home pose plus noise, objects re-placed.

        Args:
            seed: seeds this world's random generator (None continues the stream).
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        tc, m, d = self.task_config, self.model, self.data
        mujoco.mj_resetData(m, d)
        pos = np.asarray(tc.home_pos) + self._rng.uniform(-1, 1, 3) * np.asarray(tc.reset_pos_noise)
        quat = apply_rotvec(np.asarray(tc.home_quat), [0, 0, self._rng.uniform(-1, 1) * tc.reset_yaw_noise])
        d.qpos[self._arm_qadr] = self._solve_ik(pos, quat)
        width = self.task.reset_gripper_width
        self._gripper_width = GRIPPER_MAX_WIDTH if width is None else width
        self._set_gripper_ctrl(self._gripper_width)
        self._set_qpos_gripper_open()
        mujoco.mj_forward(m, d)
        self._target_pos, self._target_quat = self.tcp_pos(), self.tcp_quat()
        self._setpoint_pos, self._setpoint_quat = self._target_pos.copy(), self._target_quat.copy()
        self._set_mocap(self._target_pos, self._target_quat)
        self.task.reset(self, self._rng)
        mujoco.mj_forward(m, d)
        self._settle(0.3)
        self.stamp = time.monotonic()

    def close(self) -> None:
        """Free the renderers' GL contexts."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # ------------------------------------------------------------------- commands
    def set_ee_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """TCP pose target: position (3,) metres, quaternion (4,) xyzw, base frame."""
        pos, quat = np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64)
        if pos.shape != (3,) or quat.shape != (4,) or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            raise ValueError(f"bad TCP target pos={pos} quat={quat}")
        self._target_pos, self._target_quat = pos.copy(), quat_normalize(quat)

    def set_gripper(self, width: float) -> None:
        """Gripper opening target, metres (0 = closed, clipped to the task's minimum)."""
        if not np.isfinite(width):
            raise ValueError(f"bad gripper width {width}")
        self._gripper_width = float(np.clip(width, self.task.min_gripper_width, GRIPPER_MAX_WIDTH))

    def step(self, duration: float) -> None:
        """Advance physics by ``duration`` seconds (rounded to whole timesteps, >= 1).

        The TCP target ramps from the previous target to the commanded one over
        ``ramp_fraction`` of the duration (straight line, rotation about a fixed axis as
        in slerp, cosine speed profile), sampled ``ramp_chunks`` times, then holds. The
        gripper command and a weak joint posture torque are applied throughout.
        """
        m, d = self.model, self.data
        n = max(1, int(round(duration / m.opt.timestep)))
        ramp_steps = max(1, int(round(n * self.config.ramp_fraction)))
        chunk = max(1, ramp_steps // self.config.ramp_chunks)
        start_pos, start_quat = self._setpoint_pos, self._setpoint_quat
        delta_pos = self._target_pos - start_pos
        delta_rv = quat_error_rotvec(self._target_quat, start_quat)
        self._set_gripper_ctrl(self._gripper_width)
        done = 0
        while done < n:
            k = min(chunk, n - done) if done < ramp_steps else n - done
            t = min(1.0, (done + k) / ramp_steps)
            frac = 0.5 - 0.5 * np.cos(np.pi * t)  # starts and ends at rest: no jerk
            self._set_mocap(start_pos + frac * delta_pos,
                            quat_mul(rotvec_to_quat(frac * delta_rv), start_quat))
            d.ctrl[self._arm_act] = self._posture_torque()
            mujoco.mj_step(m, d, nstep=k)
            done += k
        if d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number or not np.all(np.isfinite(d.qpos)):
            raise DeviceError("sim physics diverged (non-finite accelerations); call reset()")
        self._setpoint_pos, self._setpoint_quat = self._target_pos.copy(), self._target_quat.copy()
        self.stamp = time.monotonic()

    @property
    def time(self) -> float:
        """Simulated time since reset, seconds."""
        return float(self.data.time)

    # ---------------------------------------------------------------------- state
    def tcp_pos(self) -> np.ndarray:
        """(3,) TCP position, metres, base frame."""
        return self.data.site_xpos[self._tcp].copy()

    def tcp_quat(self) -> np.ndarray:
        """(4,) TCP orientation, xyzw, base frame."""
        return matrix_to_quat(self.data.site_xmat[self._tcp].reshape(3, 3))

    def ee_target(self) -> tuple[np.ndarray, np.ndarray]:
        """The commanded TCP target (position, xyzw quaternion)."""
        return self._target_pos.copy(), self._target_quat.copy()

    def gripper_width(self) -> float:
        """Measured opening between the finger pads, metres."""
        return self._measured_width()

    def arm_state(self) -> ArmState:
        """The arm's current state, stamped with when physics last advanced."""
        d, s = self.data, self._sensor
        twist = np.concatenate([d.sensordata[s["2f85/pinch_vel"]:s["2f85/pinch_vel"] + 3],
                                d.sensordata[s["2f85/pinch_angvel"]:s["2f85/pinch_angvel"] + 3]])
        return ArmState(stamp=self.stamp, ee_pos=self.tcp_pos(), ee_quat=self.tcp_quat(),
                        joint_pos=d.qpos[self._arm_qadr].copy(), ee_twist=twist,
                        gripper_width=self._measured_width(),
                        wrench=self.external_wrench(saturate=True))

    def external_wrench(self, saturate: bool = False) -> np.ndarray:
        """(6,) contact wrench on the hand (gripper, fingers, held tool): force N and torque
        N·m about the TCP, base frame: what a wrist F/T sensor reads minus the hand's own
        weight. ``saturate`` clips each axis to ``config.wrench_range``."""
        m, d = self.model, self.data
        wrench = np.zeros(6)
        tcp = d.site_xpos[self._tcp]
        f6 = np.zeros(6)
        for i in range(d.ncon):
            con = d.contact[i]
            on1, on2 = self._is_hand[m.geom_bodyid[con.geom1]], self._is_hand[m.geom_bodyid[con.geom2]]
            if on1 == on2:  # not touching the hand, or hand touching itself
                continue
            mujoco.mj_contactForce(m, d, i, f6)
            force = con.frame.reshape(3, 3).T @ f6[:3]  # on geom2, world frame
            if on1:
                force = -force
            wrench[:3] += force
            wrench[3:] += np.cross(con.pos - tcp, force)
        if saturate:
            f_max, t_max = self.config.wrench_range
            wrench = np.clip(wrench, [-f_max] * 3 + [-t_max] * 3, [f_max] * 3 + [t_max] * 3)
        return wrench

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged task state (object poses), float64 arrays, base frame."""
        return self.task.task_state(self)

    def success(self) -> bool:
        """Whether the task is solved now."""
        return self.task.success(self)

    def failure(self) -> bool:
        """Whether the episode cannot succeed any more (object lost)."""
        return self.task.failure(self)

    # ------------------------------------------------------------------ rendering
    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        """Render camera ``camera`` (``front`` or ``wrist``) to (height, width, 3) uint8 RGB.

        Shadows, reflections, skybox and MSAA are off: this runs on software EGL.
        """
        key = (height, width)
        renderer = self._renderers.get(key)
        if renderer is None:
            try:
                renderer = mujoco.Renderer(self.model, height=height, width=width)
            except mujoco.FatalError as exc:
                raise RuntimeError(
                    "MuJoCo could not create an OpenGL context. Headless, set MUJOCO_GL=egl "
                    "in the environment before Python starts (MuJoCo picks its GL backend when "
                    f"it is first imported; MUJOCO_GL is {os.environ.get('MUJOCO_GL')!r})") from exc
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                         mujoco.mjtRndFlag.mjRND_SKYBOX):
                renderer.scene.flags[flag] = 0
            self._renderers[key] = renderer
        renderer.update_scene(self.data, camera=camera, scene_option=self._scene_option)
        return renderer.render()

    # ------------------------------------------------------------------- internals
    def _posture_torque(self) -> np.ndarray:
        """Joint torques pulling the elbow toward home, projected into the TCP's null
        space so they never push the TCP off its target (the springs would yield)."""
        m, d = self.model, self.data
        tau = (self.config.posture_gain * (PANDA_HOME_JOINTS - d.qpos[self._arm_qadr])
               - 0.5 * d.qvel[self._arm_dadr])
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._tcp)
        jac = np.vstack([self._jacp[:, self._arm_dadr], self._jacr[:, self._arm_dadr]])
        return tau - jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), jac @ tau)

    def _set_mocap(self, tcp_pos: np.ndarray, tcp_quat: np.ndarray) -> None:
        """Move the TCP target (the top of the compliance springs)."""
        self.data.mocap_pos[self._mocap] = tcp_pos
        self.data.mocap_quat[self._mocap] = quat_xyzw_to_wxyz(tcp_quat)

    def _make_scene_option(self) -> mujoco.MjvOption:
        """Which geom groups the cameras see (gym-hil: 2 = visual meshes, 3 = collision)."""
        option = mujoco.MjvOption()
        if self.config.render_geoms == "collision":
            option.geomgroup[2], option.geomgroup[3] = 0, 1
            m = self.model
            for g in np.flatnonzero(m.geom_group == 3):  # give the grey collision meshes colour
                body = m.body(m.geom_bodyid[g]).name
                m.geom_rgba[g] = (0.92, 0.92, 0.94, 1.0) if body.startswith("link") else (0.18, 0.18, 0.2, 1.0)
        return option

    def _set_gripper_ctrl(self, width: float) -> None:
        # 2F-85 actuator: 0 = open, 255 = closed; roughly linear in the opening
        self.data.ctrl[self._grip_act] = 255.0 * (1.0 - width / GRIPPER_MAX_WIDTH)

    def _set_qpos_gripper_open(self) -> None:
        pass  # mj_resetData already put the fingers at their open reference pose

    def _raw_pad_distance(self) -> float:
        a, b = self._pads
        return float(np.linalg.norm(self.data.geom_xpos[a] - self.data.geom_xpos[b]))

    def _measured_width(self) -> float:
        closed, opened = self._width_calibration
        frac = (self._raw_pad_distance() - closed) / max(opened - closed, 1e-6)
        return float(np.clip(frac, 0.0, 1.0) * GRIPPER_MAX_WIDTH)

    def _calibrate_gripper(self) -> tuple[float, float]:
        """Pad-centre distance when fully closed and fully open (model-specific)."""
        m, d = self.model, self.data
        saved = d.qpos.copy()
        out = []
        for ctrl in (255.0, 0.0):
            mujoco.mj_resetData(m, d)
            d.qpos[self._arm_qadr] = PANDA_HOME_JOINTS
            d.ctrl[self._grip_act] = ctrl
            mujoco.mj_forward(m, d)
            self._set_mocap(self.tcp_pos(), self.tcp_quat())
            mujoco.mj_step(m, d, nstep=int(0.6 / m.opt.timestep))
            out.append(self._raw_pad_distance())
        mujoco.mj_resetData(m, d)
        d.qpos[:] = saved
        return out[0], out[1]

    def _settle(self, seconds: float) -> None:
        """Let objects come to rest with the arm holding its pose."""
        self.step(seconds)

    def _solve_ik(self, pos: np.ndarray, quat: np.ndarray, iters: int = 60) -> np.ndarray:
        """Joint angles putting the TCP at (pos, quat): damped least squares from home."""
        m, d = self.model, self.data
        q = PANDA_HOME_JOINTS.copy()
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        for _ in range(iters):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = np.concatenate([pos - self.tcp_pos(), quat_error_rotvec(quat, self.tcp_quat())])
            if np.linalg.norm(err) < 1e-5:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._tcp)
            jac = np.vstack([jacp, jacr])[:, self._arm_dadr]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            dq += 0.1 * (np.eye(7) - np.linalg.pinv(jac) @ jac) @ (PANDA_HOME_JOINTS - q)
            q = np.clip(q + dq, self._arm_range[:, 0], self._arm_range[:, 1])
        return q
