"""3Dconnexion SpaceMouse over HID (pyspacemouse), with a reader thread.

The top complaint against hil-serl's SpaceMouse input is that it silently reads all
zeros (wrong device, no permission, unplugged receiver). Here:

* opening fails loudly with what to check (model, path, udev permissions);
* an unplugged device (hidapi read error) makes ``read()`` raise ``DeviceError``: either
  for good, or, with ``reconnect: true``, until the reader thread reopens it. It never
  reads as "no input";
* ``reports_received`` counts parsed reports; a device that sent nothing since connect
  is flagged in the log after ``silent_warn_s`` (the wrong HID interface looks like that).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_env.hardware import DeviceError
from teleop.base import (TELEOPERATORS, AxisMapConfig, Teleoperator, TeleopState,
                         axes_from_calibration, map_axes)
from teleop.hid import HID_SOURCES

log = logging.getLogger(__name__)

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
LABEL_ROLES = ("success_button", "failure_button", "pause_button", "confirm_button")


@dataclasses.dataclass
class SpaceMouseConfig:
    """SpaceMouse settings (see launch/config/teleop/spacemouse.yaml for the comments).

    Attributes:
        model: pyspacemouse model name (``SpaceMouseWireless``, ``SpaceNavigator``, ...);
            None = first supported device found.
        path: HID path such as ``/dev/hidraw3``; wins over ``model``.
        axis_convention: pyspacemouse axis convention (``hid_z_up``: x right, y away
            from the user, z up, right-handed).
        axes: per-axis scale, sign, dead-zone, order, bias and frame.
        calibration_file: a ``hilr calibrate spacemouse`` YAML; when set, its order, sign,
            dead-zone and bias replace those of ``axes``.
        close_button: button name that closes the gripper (rising edge).
        open_button: button name that opens the gripper.
        intervention_button: button name that means "I am intervening" while held;
            None = holding the close or open button for ``hold_s`` does it.
        hold_s: press-and-hold time after which a gripper button also counts as an
            intervention hold, seconds.
        success_button: button (or chord ``"A+B"``, all held together) that labels the running
            episode successful in ``hilr actor``; None = none (use the keyboard).
        failure_button: same, labels it failed.
        pause_button: same, toggles pause (the arm holds).
        confirm_button: same, confirms the scene is reset (starts the next episode).
        poll_hz: reader-thread poll rate of the non-blocking HID reads, Hz.
        reconnect: on unplug, keep retrying to reopen instead of failing for good.
        reconnect_interval_s: pause between reopen attempts, seconds.
        silent_warn_s: warn if no report arrived this long after connect, seconds.
        max_motion_age_s: a deflected cap keeps sending reports; non-zero axes older
            than this mean a stalled stream and read as zero (the arm holds), seconds;
            None disables the check.
        source: where reports come from: ``{"type": "hidapi"}`` (the device) or
            ``{"type": "replay", "reports": [...]}`` (recorded reports, tests).
    """

    model: str | None = None
    path: str | None = None
    axis_convention: str = "hid_z_up"
    axes: Any = dataclasses.field(default_factory=AxisMapConfig)
    calibration_file: str | None = None
    close_button: str = "LEFT"
    open_button: str = "RIGHT"
    intervention_button: str | None = None
    hold_s: float = 0.3
    success_button: str | None = None
    failure_button: str | None = None
    pause_button: str | None = None
    confirm_button: str | None = None
    poll_hz: float = 250.0
    reconnect: bool = False
    reconnect_interval_s: float = 0.5
    silent_warn_s: float = 5.0
    max_motion_age_s: float | None = 0.5
    source: Any = dataclasses.field(default_factory=lambda: {"type": "hidapi"})

    def __post_init__(self) -> None:
        if isinstance(self.axes, Mapping):
            self.axes = AxisMapConfig(**dict(self.axes))
        if self.calibration_file:
            self.axes = axes_from_calibration(self.calibration_file, self.axes)
        if self.poll_hz <= 0 or self.hold_s < 0 or self.reconnect_interval_s <= 0:
            raise ValueError("poll_hz and reconnect_interval_s must be > 0, hold_s >= 0")


@TELEOPERATORS.register("spacemouse", SpaceMouseConfig)
class SpaceMouse(Teleoperator):
    """A SpaceMouse read by a background thread through pyspacemouse.

    Args:
        cfg: the config.
        clock: monotonic clock (injectable for tests), seconds.
    """

    def __init__(self, cfg: SpaceMouseConfig, clock=time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.source = HID_SOURCES.make(cfg.source)
        self._mouse: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._raw = np.zeros(6)
        self._buttons: tuple[int, ...] = ()
        self._stamp = 0.0
        self._press_start: dict[str, float] = {}
        self._label_events: list[Any] = []  # EpisodeEvent on the rising edge of a label button/chord
        self._chords_held: set[str] = set()
        self._gripper: float | None = None
        self.reports_received = 0
        self.reconnects = 0
        self._connected_at = 0.0
        self._warned_silent = False
        self._warned_stale = False

    # -- lifecycle -------------------------------------------------------------------
    @property
    def hid_device(self) -> Any:
        """The underlying HID device object (the replay device in tests), or None."""
        return getattr(self.source, "device", None) or (
            self._mouse._device if self._mouse is not None else None)

    @property
    def is_connected(self) -> bool:
        """True while the reader thread runs and the device has not failed."""
        return self._thread is not None and self._error is None

    def _open(self) -> None:
        mouse = self.source.open(self.cfg.model, self.cfg.path, self.cfg.axis_convention)
        names = list(mouse.info.button_names)
        for role in ("close_button", "open_button", "intervention_button") + LABEL_ROLES:
            spec = getattr(self.cfg, role)
            for name in (spec.split("+") if spec else []):
                if names and name not in names:
                    mouse.close()
                    raise DeviceError(f"{role}={spec!r}: {name!r} is not a button of {mouse.name}; buttons: {names}")
        self._mouse = mouse

    def connect(self) -> None:
        """Open the device and start the reader thread. Raises ``DeviceError`` on failure."""
        if self._thread is not None:
            return
        self._open()
        self._error = None
        self._stop.clear()
        self._connected_at = self.clock()
        self._stamp = self._connected_at
        self._thread = threading.Thread(target=self._reader, name="spacemouse-reader", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        """Stop the reader thread and close the device. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        if self._mouse is not None:
            try:
                self._mouse.close()
            except Exception:  # closing a vanished device may fail; nothing left to do
                pass
        self._mouse = None

    # -- reader thread -----------------------------------------------------------------
    def _reader(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # a bug must not leave a stale command behind: read() raises
            with self._lock:
                self._error = f"SpaceMouse reader thread died: {exc!r}"
            log.exception("SpaceMouse reader thread died")

    def _read_loop(self) -> None:
        from easyhid import HIDException

        period = 1.0 / self.cfg.poll_hz
        last_t = None
        while not self._stop.is_set():
            try:
                # Drain every queued report (two-channel models send translation and
                # rotation separately), then publish the newest state once.
                fresh = False
                for _ in range(64):
                    state = self._mouse.read()
                    if state.t == last_t or state.t < 0:
                        break
                    last_t, fresh = state.t, True
                    raw = np.array([getattr(state, a) for a in AXES], dtype=np.float64)
                    buttons = tuple(int(b) for b in state.buttons)
                    with self._lock:
                        self._raw, self._buttons = raw, buttons
                        self._stamp = self.clock()
                        self.reports_received += 1
                        self._update_buttons(self._mouse.info.button_names)
            except (HIDException, OSError, RuntimeError) as exc:
                if not self._handle_failure(exc):
                    return
                last_t = None
                continue
            if (not fresh and not self._warned_silent and self.reports_received == 0
                    and self.clock() - self._connected_at > self.cfg.silent_warn_s):
                self._warned_silent = True
                log.warning("SpaceMouse %s sent no report in %.0f s since connect: touch it; if "
                            "it still reads nothing, the wrong HID interface/model is open",
                            self._mouse.name, self.cfg.silent_warn_s)
            self._stop.wait(period)

    def _handle_failure(self, exc: Exception) -> bool:
        """Record an unplug; reopen when configured. Returns False to end the thread."""
        with self._lock:
            self._error = f"SpaceMouse read failed ({exc}): device unplugged or receiver lost"
            self._raw = np.zeros(6)
            self._buttons = ()
        log.error("%s", self._error)
        try:
            self._mouse.close()
        except Exception:
            pass
        if not self.cfg.reconnect:
            return False
        while not self._stop.wait(self.cfg.reconnect_interval_s):
            try:
                self._open()
            except DeviceError:
                continue
            with self._lock:
                self._error = None
                self.reconnects += 1
            log.warning("SpaceMouse reconnected (%d)", self.reconnects)
            return True
        return False

    def _update_buttons(self, names: tuple[str, ...]) -> None:
        now = self.clock()
        pressed = {n for n, b in zip(names, self._buttons) if b}
        for name in (self.cfg.close_button, self.cfg.open_button, self.cfg.intervention_button):
            if name is None:
                continue
            if name in pressed and name not in self._press_start:
                self._press_start[name] = now
                if name == self.cfg.close_button:
                    self._gripper = 1.0
                elif name == self.cfg.open_button:
                    self._gripper = -1.0
            elif name not in pressed:
                self._press_start.pop(name, None)
        from teleop.keyboard import EpisodeEvent

        # rising edge of a label button / chord -> one event; a chord that fires swallows the
        # single-button labels inside it ("LEFT+RIGHT" = success never also fires RIGHT = failure)
        roles = sorted((r for r in LABEL_ROLES if getattr(self.cfg, r)), key=lambda r: -len(getattr(self.cfg, r).split("+")))
        consumed: set[str] = set()
        for role in roles:
            spec = getattr(self.cfg, role)
            parts = set(spec.split("+"))
            held = parts <= pressed
            if held and spec not in self._chords_held and not parts <= consumed:
                self._label_events.append(EpisodeEvent(role[:-len("_button")]))
                consumed |= parts
            (self._chords_held.add if held else self._chords_held.discard)(spec)

    def poll(self) -> list[Any]:
        """Label events (``teleop.keyboard.EpisodeEvent``) from the label buttons since the last
        poll, oldest first; the same interface as the keyboard's, so ``hilr actor`` reads both."""
        with self._lock:
            out, self._label_events = self._label_events, []
        return out

    # -- public API ----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the latched gripper command (the next episode starts from the policy's)."""
        with self._lock:
            self._gripper = None

    def read(self) -> TeleopState:
        """Newest state.

        Raises:
            DeviceError: not connected, or the device was unplugged (while reconnecting
                too). Zeros are only ever returned for a live device at rest.
        """
        if self._thread is None:
            raise DeviceError("SpaceMouse is not connected; call connect() first")
        with self._lock:
            if self._error is not None:
                raise DeviceError(self._error)
            if not self._thread.is_alive():
                raise DeviceError("SpaceMouse reader thread is not running")
            raw, buttons, stamp = self._raw.copy(), self._buttons, self._stamp
            press = dict(self._press_start)
            gripper = self._gripper
        now = self.clock()
        max_age = self.cfg.max_motion_age_s
        if max_age is not None and now - stamp > max_age and np.any(raw != 0):
            if not self._warned_stale:
                log.warning("SpaceMouse: cap deflected but no report for %.2f s; reading zero",
                            now - stamp)
                self._warned_stale = True
            raw = np.zeros(6)
        else:
            self._warned_stale = False
        command, moved = map_axes(raw, self.cfg.axes)
        if self.cfg.intervention_button is not None:
            held = self.cfg.intervention_button in press
        else:
            held = any(now - t0 >= self.cfg.hold_s for t0 in press.values())
        return TeleopState(
            stamp=stamp,
            command=command,
            gripper=gripper,
            buttons=buttons,
            intervention_button=held,
            is_active=moved or held or bool(press),
            frame=self.cfg.axes.frame,
        )
