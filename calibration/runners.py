"""One runner per ``hilr calibrate <what>``: build devices from a plain config dict, run, save.

Each ``run_<what>(cfg) -> dict`` takes the resolved config (``launch/config/calibrate.yaml``
as plain dicts) and returns a JSON-able summary; ``calibration/app.py`` only dispatches.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from calibration.board import CharucoBoard, CharucoBoardConfig
from calibration.crops import have_display, preview_crop, save_preview, select_crop_console, select_crop_window, validate_crop
from calibration.drive import DriveConfig, collect_hand_eye_samples
from calibration.errors import CalibrationError
from calibration.files import MOVES_FILE, calibration_path, load_calibration, record_camera_moved, save_calibration
from calibration.guidance import generate_pose_list
from calibration.intrinsics import (
    Intrinsics, calibrate_intrinsics, compare_intrinsics, device_color_intrinsics, read_realsense_factory_intrinsics,
)
from calibration.procedures import (
    capture_views, crops_file, handeye_file, intrinsics_file, run_hand_eye, spacemouse_file, workspace_file,
)
from calibration.spacemouse import calibrate_spacemouse
from calibration.workspace import teach_workspace
from robot_env.hardware import ARMS, CAMERAS, Arm, Camera, DeviceError

log = logging.getLogger(__name__)


# --- device plumbing ------------------------------------------------------------------------
def register_backends(kind: str) -> None:
    """Import the modules that register the hardware backends (registration on demand).

    ROS2 backends are imported only when a spec asks for ``type: ros``.
    """
    import calibration.synthetic  # noqa: F401  (charuco_synthetic)
    import robot_env.cameras  # noqa: F401  (realsense, realsense_software, opencv)
    import robot_env.sim.devices  # noqa: F401  (mujoco arm and camera)

    if kind == "ros":
        import robot_env.ros  # noqa: F401  (rclpy loads on connect)


def make_arm(robot: dict) -> Arm:
    """The arm from the ``robot`` group (a registry spec); not connected."""
    register_backends(robot.get("type", ""))
    return ARMS.make(dict(robot))


def _camera_class(spec: dict) -> type:
    register_backends(spec.get("type", ""))
    return CAMERAS.entry(spec.get("type", ""))[1]


def make_camera(name: str, spec: dict, arm: Arm | None) -> Camera:
    """A camera from its registry spec, handed the arm or the sim world if it takes them."""
    spec = dict(spec)
    cls = _camera_class(spec)
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "arm" in params:
        kwargs["arm"] = arm
    if "world" in params:  # sim cameras render the arm's world
        kwargs["world"] = getattr(arm, "world", None)
        spec.setdefault("camera", name)
    if "name" in getattr(CAMERAS.entry(spec["type"])[0], "__dataclass_fields__", {}):
        spec.setdefault("name", name)  # cameras that carry their role name in messages
    return CAMERAS.make(spec, **kwargs)


def camera_serial(camera: Camera, name: str) -> str:
    """The camera's serial number (``cfg.serial``/``serial``), or ``sim-<name>`` when it has none."""
    serial = getattr(camera, "serial", None) or getattr(getattr(camera, "cfg", None), "serial", None)
    return str(serial) if serial else f"sim-{name}"


def motion_clock(arm: Arm):
    """``(clock, sleep)`` for waiting on the arm: sim time and physics steps for an in-process
    sim arm (its physics only advances when stepped), wall time otherwise."""
    import time

    world = getattr(arm, "world", None)
    if world is not None and hasattr(world, "step"):
        return (lambda: world.time), world.step
    return time.monotonic, time.sleep


def _connect(arm: Arm, cam_cfg: dict) -> None:
    arm.connect()
    if cam_cfg.get("home_first", True):
        arm.move_home()


def _camera_spec(cfg: dict, name: str) -> dict:
    """The registry spec of camera ``name`` from the ``camera`` group, or a clear error."""
    cameras = cfg.get("camera") or {}
    if name not in cameras:
        raise CalibrationError(f"camera_name={name!r} is not one of the configured cameras {sorted(cameras)}; "
                               "pick one with camera_name=<name>, or another camera group with camera=<group>")
    return cameras[name]


def _board(cfg: dict) -> CharucoBoard:
    return CharucoBoard(CharucoBoardConfig(**cfg["board"]))


def _out_dir(cfg: dict) -> Path:
    return Path(cfg["out_dir"]).expanduser()


def _pose_list(cfg: dict, arm: Arm) -> list:
    h = cfg["handeye"]
    if h.get("poses"):
        return [(np.asarray(p[:3], float), np.asarray(p[3:], float)) for p in h["poses"]]
    state = arm.read_state()
    pos = state.ee_pos if h.get("center_pos") is None else h["center_pos"]
    quat = state.ee_quat if h.get("center_quat") is None else h["center_quat"]
    return generate_pose_list(pos, quat, n_poses=h["n_poses"], tilt_deg=h["tilt_deg"], twist_deg=h["twist_deg"],
                              pivot_distance=h["pivot_distance"], jitter_m=h["jitter_m"], seed=cfg.get("seed", 0))


def _drive_cfg(cfg: dict) -> DriveConfig:
    d = dict(cfg["handeye"]["drive"])
    ws = cfg["handeye"].get("workspace_file")
    if ws:
        data = load_calibration(ws, kind="workspace").data
        d.setdefault("bounds_min", data["workspace_low"])
        d.setdefault("bounds_max", data["workspace_high"])
    return DriveConfig(**d)


# --- runners -------------------------------------------------------------------------------
def run_intrinsics(cfg: dict) -> dict:
    """Intrinsics of ``camera_name``: views from the arm's pose list (``source: arm``) or the operator."""
    name, board, icfg = cfg["camera_name"], _board(cfg), cfg["intrinsics"]
    arm = make_arm(cfg["robot"]) if icfg["source"] == "arm" or _needs_arm(cfg) else None
    camera = make_camera(name, _camera_spec(cfg, name), arm)
    try:
        if arm is not None:
            _connect(arm, cfg)
        camera.connect()
        if icfg["source"] == "arm":
            clock, sleep = motion_clock(arm)
            samples, _ = collect_hand_eye_samples(arm, camera, board, _pose_list(cfg, arm), _drive_cfg(cfg),
                                                  clock=clock, sleep=sleep)
            detections = [s.detection for s in samples]
        else:
            detections, _ = capture_views(camera, board, icfg["n_views"], min_shift_px=icfg["min_shift_px"],
                                          timeout_s=icfg["timeout_s"])
        intr = calibrate_intrinsics(detections, min_views=icfg["min_views"], max_rms_px=icfg["max_rms_px"],
                                    fix_k3=icfg["fix_k3"])
        factory = _factory_intrinsics(camera, intr)
    finally:
        camera.disconnect()
        if arm is not None:
            arm.disconnect()
    comparison = compare_intrinsics(intr, factory) if factory is not None else None
    serial = camera_serial(camera, name)
    path = save_calibration(intrinsics_file(intr, serial, name, board, comparison),
                            calibration_path(_out_dir(cfg), "intrinsics", name))
    summary = {"file": str(path), "camera": name, "serial": serial, "fx": intr.fx, "fy": intr.fy, "cx": intr.cx,
               "cy": intr.cy, "rms_px": intr.rms, "n_views": intr.n_views}
    if comparison:
        summary["factory_comparison"] = comparison
    return summary


def _needs_arm(cfg: dict) -> bool:
    cls = _camera_class(_camera_spec(cfg, cfg["camera_name"]))
    params = inspect.signature(cls.__init__).parameters
    return "arm" in params or "world" in params


def _factory_intrinsics(camera: Camera, measured: Intrinsics) -> Intrinsics | None:
    """RealSense factory intrinsics of a RealSense camera, else None (never fails the run)."""
    device = getattr(camera, "_device", None)  # RealSenseCamera keeps its pyrealsense2 device
    serial = getattr(getattr(camera, "cfg", None), "serial", None)
    if device is None and serial is None:
        return None
    w, h = measured.image_size
    try:
        return device_color_intrinsics(device, w, h) if device is not None else read_realsense_factory_intrinsics(serial, w, h)
    except (CalibrationError, RuntimeError, ImportError) as exc:
        log.warning("could not read factory intrinsics: %s", exc)
        return None


def run_handeye(cfg: dict) -> dict:
    """Hand-eye of ``camera_name`` (mounting from ``handeye.mounting``), driving the arm automatically."""
    name, board, h = cfg["camera_name"], _board(cfg), cfg["handeye"]
    arm = make_arm(cfg["robot"])
    camera = make_camera(name, _camera_spec(cfg, name), arm)
    intr_path = h.get("intrinsics_file") or calibration_path(_out_dir(cfg), "intrinsics", name)
    try:
        _connect(arm, cfg)
        camera.connect()
        serial = camera_serial(camera, name)
        intr = Intrinsics.from_dict(load_calibration(intr_path, kind="intrinsics", expected_serial=serial).data)
        clock, sleep = motion_clock(arm)
        result, samples, missed = run_hand_eye(
            arm, camera, board, intr, _pose_list(cfg, arm), h["mounting"], h["method"], h["backend"],
            _drive_cfg(cfg), min_poses=h["min_poses"], max_spread_mm=h["max_spread_mm"], clock=clock, sleep=sleep)
        if h.get("return_home", True):
            arm.move_home()
    finally:
        camera.disconnect()
        arm.disconnect()
    path = save_calibration(handeye_file(result, serial, name), calibration_path(_out_dir(cfg), "handeye", name))
    r = result.residuals
    return {"file": str(path), "camera": name, "mounting": result.mounting, "method": result.method,
            "backend": result.backend, "n_poses": result.n_poses, "missed_poses": missed,
            "matrix": np.round(result.transform, 6).tolist(), "spread_mm": r["target_spread_trans_mm"],
            "spread_deg": r["target_spread_rot_deg"], "axxb_rot_deg_rms": r["axxb_rot_deg_rms"],
            "axxb_trans_mm_rms": r["axxb_trans_mm_rms"], "warnings": result.warnings}


def run_crops(cfg: dict) -> dict:
    """Crops for every camera in ``crops.cameras``: given numbers, console entry, or a mouse window."""
    c = cfg["crops"]
    names = c.get("cameras") or list(cfg["camera"])
    arm = make_arm(cfg["robot"]) if any(_needs_arm({**cfg, "camera_name": n}) for n in names) else None
    out = _out_dir(cfg)
    crops, sizes, serials, previews = {}, {}, {}, {}
    if arm is not None:
        _connect(arm, cfg)
    try:
        for name in names:
            camera = make_camera(name, _camera_spec(cfg, name), arm)
            with camera:
                image = camera.read().color
                serials[name] = camera_serial(camera, name)
            sizes[name] = [image.shape[1], image.shape[0]]
            preview = out / f"crop_preview_{name}.png"
            if c["mode"] == "numbers":
                if name not in (c.get("values") or {}):
                    raise CalibrationError(f"crops.mode=numbers but no crops.values.{name}: [x, y, width, height]")
                crop = validate_crop(c["values"][name], (image.shape[1], image.shape[0]))
            elif c["mode"] == "console":
                crop = select_crop_console(image, preview)
            elif c["mode"] == "window":
                crop = select_crop_window(image, f"crop {name}: drag, then Enter")
            else:
                raise CalibrationError(f"crops.mode must be numbers | console | window, got {c['mode']!r}")
            crops[name] = crop
            previews[name] = str(save_preview(preview_crop(image, crop, name), preview))
            if c.get("show", True) and have_display():
                _show(f"crop {name} (any key)", previews[name])
    finally:
        if arm is not None:
            arm.disconnect()
    path = save_calibration(crops_file(crops, sizes, serials), calibration_path(out, "crops"))
    return {"file": str(path), "crops": {k: list(v) for k, v in crops.items()}, "previews": previews}


def _show(title: str, png: str) -> None:
    import cv2

    cv2.imshow(title, cv2.imread(png))
    cv2.waitKey(0)
    cv2.destroyWindow(title)


class _EnterPressed:
    """True once the operator pressed Enter on stdin (a daemon thread waits for it)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        sys.stdin.readline()
        self.event.set()

    def __call__(self) -> bool:
        return self.event.is_set()


def run_workspace(cfg: dict) -> dict:
    """Teach the workspace box: operator moves the arm (``hand``/``teleop``) or a ``tour`` of corners."""
    w = cfg["workspace"]
    arm = make_arm(cfg["robot"])
    done, step, teleop = _EnterPressed(), None, None
    try:
        _connect(arm, cfg)
        clock, sleep = motion_clock(arm)  # after connect: a sim arm builds its world there
        source = w["input"]
        if source == "auto":  # nobody can hand-guide the in-process sim arm: its dry run tours the corners
            source = "tour" if getattr(arm, "world", None) is not None else "hand"
        if source == "tour":
            # Dry run / verification: visit the given corners; the samples on the way teach the box.
            corners = [np.asarray(p, float) for p in w["tour"]]
            quat = arm.read_state().ee_quat
            targets = iter(corners)
            drive = DriveConfig(**cfg["handeye"]["drive"])

            def step() -> None:
                nonlocal targets
                target = next(targets, None)
                if target is None:
                    done.event.set()
                else:
                    from calibration.drive import move_and_wait

                    move_and_wait(arm, target, quat, drive, clock, sleep)
        elif source == "teleop":
            from teleop.base import make_teleoperator

            teleop = make_teleoperator(cfg["teleop"])
            teleop.connect()
            step = _teleop_step(arm, teleop, w["max_speed"], 1.0 / w["rate_hz"])
        elif source != "hand":
            raise CalibrationError(f"workspace.input must be auto | hand | teleop | tour, got {source!r}")
        print(f"Move the arm to every corner of the safe volume ({source}); press Enter when done "
              f"(or wait {w['max_duration_s']:.0f} s).")
        bounds = teach_workspace(arm, done, step, rate_hz=w["rate_hz"], max_duration_s=w["max_duration_s"],
                                 margin=w["margin"], min_extent=w["min_extent"], clock=clock, sleep=sleep)
    finally:
        if teleop is not None:
            teleop.disconnect()
        arm.disconnect()
    path = save_calibration(workspace_file(bounds), calibration_path(_out_dir(cfg), "workspace"))
    low, high = np.round(bounds.min, 4).tolist(), np.round(bounds.max, 4).tolist()
    print(f"safety override: safety.workspace_low='{low}' safety.workspace_high='{high}'")
    return {"file": str(path), "workspace_low": low, "workspace_high": high, "n_samples": bounds.n_samples}


def _teleop_step(arm: Arm, teleop, max_speed: float, dt: float):
    """Forward the operator's translation command to the arm as small pose steps (base frame)."""

    def step() -> None:
        state = teleop.read()
        arm_state = arm.read_state()
        delta = np.asarray(state.command[:3], float) * max_speed * dt
        arm.command_pose(arm_state.ee_pos + delta, arm_state.ee_quat)

    return step


def run_spacemouse(cfg: dict) -> dict:
    """Dead-zone and axis mapping of the SpaceMouse in ``teleop`` (read raw: identity map, no dead-zone)."""
    from teleop.base import make_teleoperator

    s = cfg["spacemouse"]
    spec = dict(cfg["teleop"])
    # Raw axes: identity map, no dead-zone, no bias (a previous calibration must not leak in).
    spec["axes"] = {**dict(spec.get("axes") or {}), "order": [0, 1, 2, 3, 4, 5], "sign": [1] * 6,
                    "deadzone": [0.0] * 6, "scale": [1] * 6, "frame": "base", "bias": [0.0] * 6}
    if "calibration_file" in spec:
        spec["calibration_file"] = None
    if s.get("replay"):  # dry run: an operator's guided session as raw HID reports, parsed by pyspacemouse
        from calibration.spacemouse import guided_session_reports

        reports = guided_session_reports(s["rest_s"], s["rate_hz"], cfg.get("seed", 0))
        spec.update(model="SpaceMouseWireless", path=None, reconnect=False, max_motion_age_s=None,
                    source={"type": "replay", "reports": [r.hex() for r in reports], "interval_s": 1.0 / s["rate_hz"]})
    device = make_teleoperator(spec)
    try:
        device.connect()
    except DeviceError as exc:
        raise CalibrationError(f"{exc} (dry run without a device: spacemouse.replay=true)") from exc
    with device:
        cal = calibrate_spacemouse(device, rest_s=s["rest_s"], threshold=s["threshold"],
                                   timeout_s=s["timeout_s"], rate_hz=s["rate_hz"])
    path = save_calibration(spacemouse_file(cal), calibration_path(_out_dir(cfg), "spacemouse"))
    print(f"use it: teleop.calibration_file={path}")
    return {"file": str(path), **cal.axis_map(), "handedness": cal.handedness}


def run_moved(cfg: dict) -> dict:
    """Record that camera ``moved.camera_serial`` moved now: older files for it will warn."""
    serial = cfg["moved"]["camera_serial"]
    if not serial:
        raise CalibrationError("set moved.camera_serial=<serial of the camera that moved>")
    when = record_camera_moved(_out_dir(cfg) / MOVES_FILE, str(serial))
    return {"file": str(_out_dir(cfg) / MOVES_FILE), "camera_serial": str(serial), "moved_at": when.isoformat()}


def run_board(cfg: dict) -> dict:
    """Write the board as a PNG to print at ``board_print.dpi`` (squares come out ``square_length`` wide)."""
    import cv2

    board, p = _board(cfg), cfg["board_print"]
    px_per_m = p["dpi"] / 0.0254
    width_px = int(round(board.config.size[0] * px_per_m))
    margin_px = int(round(p["margin_m"] * px_per_m))
    path = _out_dir(cfg) / p["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), board.image(width_px, margin_px)):
        raise CalibrationError(f"could not write {path}")
    w, h = board.config.size
    print(f"print {path} at {p['dpi']} dpi, 100 % scale (no 'fit to page'); then MEASURE a square: it should be "
          f"{board.config.square_length * 1000:.1f} mm (set board.square_length to what you measure)")
    return {"file": str(path), "dpi": p["dpi"], "board_size_mm": [1000 * w, 1000 * h]}


RUNNERS = {
    "board": run_board,
    "intrinsics": run_intrinsics,
    "handeye": run_handeye,
    "crops": run_crops,
    "workspace": run_workspace,
    "spacemouse": run_spacemouse,
    "moved": run_moved,
}
