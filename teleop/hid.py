"""Where SpaceMouse HID reports come from: the real hidapi device, or recorded reports.

Both sources hand back a ``pyspacemouse.SpaceMouseDevice``, so every report, real or
replayed, goes through pyspacemouse's own parser (``SpaceMouseDevice.read`` ->
``_process``) with the device model's byte layout from pyspacemouse's ``devices.toml``.
The replay source stands in for the USB device only: it duck-types
``easyhid.HIDDevice`` (``open/close/read/set_nonblocking`` and the descriptor strings),
and signals an unplugged device exactly as easyhid does, by raising ``HIDException``.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robot_env.hardware import DeviceError
from robot_env.registry import Registry


class HidSource(abc.ABC):
    """Opens a SpaceMouse as a ``pyspacemouse.SpaceMouseDevice``."""

    @abc.abstractmethod
    def open(self, model: str | None, path: str | None, axis_convention: str) -> Any:
        """Open the device; returns a ``pyspacemouse.SpaceMouseDevice`` (non-blocking reads).

        Args:
            model: pyspacemouse model name (``"SpaceMouseWireless"``), or None for the
                first supported device found.
            path: HID path (``/dev/hidraw3``); wins over ``model`` when given.
            axis_convention: a ``pyspacemouse.AxisConvention`` value (``"hid_z_up"``).

        Raises:
            DeviceError: no such device, or it cannot be opened (permissions).
        """


HID_SOURCES: Registry[HidSource] = Registry("SpaceMouse HID source")


@dataclasses.dataclass
class HidapiSourceConfig:
    """The real device through hidapi (``libhidapi-hidraw``); no options."""


@HID_SOURCES.register("hidapi", HidapiSourceConfig)
class HidapiSource(HidSource):
    """A plugged-in SpaceMouse, opened with ``pyspacemouse.open`` / ``open_by_path``."""

    def __init__(self, cfg: HidapiSourceConfig) -> None:
        self.cfg = cfg

    def open(self, model: str | None, path: str | None, axis_convention: str) -> Any:
        """See :meth:`HidSource.open`."""
        import pyspacemouse

        conv = pyspacemouse.AxisConvention(axis_convention)
        try:
            if path:
                return pyspacemouse.open_by_path(path, axis_convention=conv)
            return pyspacemouse.open(device=model, axis_convention=conv)
        except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
            raise DeviceError(
                f"cannot open SpaceMouse (model={model!r}, path={path!r}): {str(exc).rstrip('.')}. "
                "Is it plugged in (wireless: receiver plugged and mouse awake), and can you "
                "read /dev/hidraw* (udev rule: KERNEL==\"hidraw*\", ATTRS{idVendor}==\"256f\", "
                "MODE=\"0666\")? `python -m pyspacemouse.pyspacemouse_cli --list-connected` lists devices."
            ) from exc


@dataclasses.dataclass
class ReplaySourceConfig:
    """Recorded raw HID reports of a real model, fed through pyspacemouse's parser.

    Attributes:
        reports: raw reports as hex strings (``"01 5e 01 00 00 ..."``), first byte the
            report id, in the order the device sent them.
        file: alternatively a text file with one hex report per line (``#`` comments).
        unplug_at_end: after the last report, reads fail as an unplugged device does
            (``HIDException``); otherwise the device stays idle (no new reports).
        vendor_id: USB vendor id to announce; None = the model's own from devices.toml.
        product_id: USB product id to announce; None = the model's own.
        interval_s: time between reports, as the device sends them, seconds (0 = all
            at once); the first report is due at ``open()``.
    """

    reports: Sequence[str] = ()
    file: str | None = None
    unplug_at_end: bool = False
    vendor_id: int | None = None
    product_id: int | None = None
    interval_s: float = 0.0

    def __post_init__(self) -> None:
        if self.interval_s < 0:
            raise ValueError(f"interval_s must be >= 0; got {self.interval_s}")


def parse_hex_reports(lines: Sequence[str]) -> list[bytes]:
    """Hex strings (spaces allowed, ``#`` comments) -> raw report bytes."""
    out = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            out.append(bytes.fromhex(text))
    return out


class ReplayHidDevice:
    """Duck-typed ``easyhid.HIDDevice`` that yields queued raw reports.

    ``read(size)`` returns the next report padded to ``size`` bytes (easyhid returns the
    full buffer too), an empty bytearray when nothing is queued (non-blocking), and
    raises ``easyhid.HIDException`` once unplugged, as hidapi's ``hid_read() == -1`` does.
    """

    def __init__(self, reports: Sequence[bytes], vendor_id: int, product_id: int,
                 unplug_at_end: bool = False, path: str = "replay://spacemouse",
                 interval_s: float = 0.0) -> None:
        self.path = path
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.release_number = 0x0100
        self.manufacturer_string = "3Dconnexion"
        self.product_string = "SpaceMouse (replay)"
        self.serial_number = ""
        self._queue: collections.deque[bytes] = collections.deque(reports)
        self._unplug_at_end = unplug_at_end
        self._unplugged = False
        self._is_open = False
        self._lock = threading.Lock()
        self.reads = 0
        self.interval_s = interval_s
        self._next_due = 0.0

    def open(self) -> None:
        """Open the (replayed) device; fails like easyhid when unplugged."""
        from easyhid import HIDException

        if self._unplugged:
            raise HIDException("Failed to open device")
        self._is_open = True
        self._next_due = time.monotonic()

    def close(self) -> None:
        """Close the device."""
        self._is_open = False

    def set_nonblocking(self, enable: bool) -> None:
        """Accepted for compatibility; reads never block."""

    def push(self, report: bytes) -> None:
        """Queue one more raw report (first byte = report id)."""
        with self._lock:
            self._queue.append(bytes(report))

    def unplug(self) -> None:
        """From now on, reads and opens fail as with a pulled USB cable."""
        self._unplugged = True

    def replug(self) -> None:
        """The device is back (the next ``open()`` succeeds)."""
        self._unplugged = False

    def pending(self) -> int:
        """Reports not yet read."""
        with self._lock:
            return len(self._queue)

    def read(self, size: int = 64, timeout: int | None = None) -> bytearray:
        """Next report padded to ``size`` bytes, or empty when none is queued."""
        from easyhid import HIDException

        if not self._is_open:
            raise HIDException("HIDDevice not open")
        with self._lock:
            self.reads += 1
            if not self._queue and self._unplug_at_end:
                self._unplugged = True
            if self._unplugged:
                raise HIDException("Failed to read from HID device: -1")
            now = time.monotonic()
            if not self._queue or now < self._next_due:
                return bytearray()
            self._next_due = max(self._next_due + self.interval_s, now - self.interval_s)
            report = self._queue.popleft()
        return bytearray(report[:size].ljust(size, b"\x00"))


@HID_SOURCES.register("replay", ReplaySourceConfig)
class ReplaySource(HidSource):
    """Replays recorded reports of a real model; the device object stays reachable
    as ``self.device`` so a test (or a demo) can push more reports or unplug it."""

    def __init__(self, cfg: ReplaySourceConfig) -> None:
        self.cfg = cfg
        self.device: ReplayHidDevice | None = None

    def _reports(self) -> list[bytes]:
        lines = list(self.cfg.reports)
        if self.cfg.file:
            lines += Path(self.cfg.file).read_text().splitlines()
        return parse_hex_reports(lines)

    def open(self, model: str | None, path: str | None, axis_convention: str) -> Any:
        """See :meth:`HidSource.open`; ``model`` is required (it selects the byte layout)."""
        import pyspacemouse
        from easyhid import HIDException

        specs = pyspacemouse.get_device_specs()
        if model not in specs:
            raise DeviceError(f"replay needs a known model; got {model!r}, known: {sorted(specs)}")
        spec = specs[model]
        if self.device is None:
            self.device = ReplayHidDevice(
                self._reports(),
                self.cfg.vendor_id if self.cfg.vendor_id is not None else spec.vendor_id,
                self.cfg.product_id if self.cfg.product_id is not None else spec.product_id,
                unplug_at_end=self.cfg.unplug_at_end,
                path=path or f"replay://{model}",
                interval_s=self.cfg.interval_s,
            )
        if (self.device.vendor_id, self.device.product_id) != (spec.vendor_id, spec.product_id):
            raise DeviceError(
                f"HID device {self.device.vendor_id:#06x}:{self.device.product_id:#06x} is not "
                f"a {model} ({spec.vendor_id:#06x}:{spec.product_id:#06x})"
            )
        info = pyspacemouse.apply_axis_convention(spec, pyspacemouse.AxisConvention(axis_convention))
        mouse = pyspacemouse.SpaceMouseDevice(info=info, device=self.device)
        try:
            mouse.open()
        except (RuntimeError, HIDException) as exc:
            raise DeviceError(f"cannot open replayed {model}: {exc}") from exc
        self.device.set_nonblocking(True)
        return mouse
