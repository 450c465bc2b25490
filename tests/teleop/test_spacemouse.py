"""SpaceMouse: raw HID reports of real models through pyspacemouse's own parser."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from robot_env.hardware import DeviceError
from teleop.base import AxisMapConfig, map_axes, tool_to_base
from teleop.spacemouse import SpaceMouse, SpaceMouseConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def wireless_motion(x=0, y=0, z=0, rx=0, ry=0, rz=0) -> bytes:
    """SpaceMouse Wireless (256f:c62e) report 1: six little-endian int16 counts (+-350 full)."""
    return b"\x01" + struct.pack("<6h", x, y, z, rx, ry, rz)


def navigator_reports(x=0, y=0, z=0, rx=0, ry=0, rz=0) -> list[bytes]:
    """SpaceNavigator (046d:c626): report 1 translation, report 2 rotation."""
    return [b"\x01" + struct.pack("<3h", x, y, z), b"\x02" + struct.pack("<3h", rx, ry, rz)]


def buttons(mask: int) -> bytes:
    """Button report 3: bit 0 = left, bit 1 = right."""
    return bytes([3, mask, 0])


def wait_drained(sm: SpaceMouse, timeout: float = 2.0) -> None:
    dev = sm.hid_device
    deadline = time.monotonic() + timeout
    while dev.pending() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(3.0 / sm.cfg.poll_hz)  # the last report is parsed and published


def make(model="SpaceMouseWireless", reports=(), **kw) -> SpaceMouse:
    cfg = SpaceMouseConfig(model=model, poll_hz=500.0,
                           source={"type": "replay", "reports": [r.hex() for r in reports]}, **kw)
    return SpaceMouse(cfg)


def test_wireless_axes_parsed_by_pyspacemouse():
    with make(reports=[wireless_motion(x=175, y=-350, z=350, rz=-70)]) as sm:
        wait_drained(sm)
        st = sm.read()
    assert sm.reports_received == 1
    dz = 0.05
    # hid_z_up: x = +HID x, y = -HID y, z = -HID z, yaw = -HID rz (pyspacemouse's convention)
    expected = [(0.5 - dz) / (1 - dz), 1.0, -1.0, 0.0, 0.0, (0.2 - dz) / (1 - dz)]
    np.testing.assert_allclose(st.command, expected, atol=1e-6)
    assert st.is_active and st.gripper is None and st.command.dtype == np.float32


def test_navigator_two_channel_reports_and_deadzone():
    reports = navigator_reports(x=10, ry=-8)  # ~0.03 of full scale: inside the dead-zone
    with make(model="SpaceNavigator", reports=reports) as sm:
        wait_drained(sm)
        st = sm.read()
        assert sm.reports_received == 2
        assert not st.is_active and np.all(st.command == 0)
        for r in navigator_reports(y=350, rx=350):
            sm.hid_device.push(r)
        wait_drained(sm)
        st = sm.read()
    assert st.is_active
    assert st.command[1] == pytest.approx(-1.0) and st.command[3] == pytest.approx(1.0)


def test_scale_sign_order_from_config():
    axes = AxisMapConfig(scale=(0.5, 1, 1, 1, 1, 1), sign=(-1, 1, 1, 1, 1, 1),
                         deadzone=(0.0,) * 6, order=(1, 0, 2, 3, 4, 5))
    with make(reports=[wireless_motion(y=-350)], axes=axes) as sm:
        wait_drained(sm)
        st = sm.read()
    # device y (away, +1 in hid_z_up) feeds command x, flipped and halved
    np.testing.assert_allclose(st.command, [-0.5, 0, 0, 0, 0, 0], atol=1e-6)


def test_buttons_close_open_gripper_and_hold_is_intervention():
    with make(reports=[buttons(0b01)], hold_s=0.15) as sm:
        wait_drained(sm)
        st = sm.read()
        assert st.gripper == 1.0 and st.is_active and not st.intervention_button
        time.sleep(0.2)
        assert sm.read().intervention_button  # held past hold_s
        sm.hid_device.push(buttons(0))
        wait_drained(sm)
        st = sm.read()
        assert st.gripper == 1.0 and not st.is_active  # latched, released
        sm.hid_device.push(buttons(0b10))
        sm.hid_device.push(buttons(0))
        wait_drained(sm)
        assert sm.read().gripper == -1.0
        sm.reset()
        assert sm.read().gripper is None


def test_unplug_raises_never_zeros():
    with make(reports=[wireless_motion(x=350)]) as sm:
        wait_drained(sm)
        assert sm.read().is_active
        sm.hid_device.unplug()
        time.sleep(0.05)
        with pytest.raises(DeviceError, match="unplugged"):
            sm.read()
        assert not sm.is_connected


def test_unplug_then_reconnect():
    with make(reports=[wireless_motion(x=350)], reconnect=True, reconnect_interval_s=0.02) as sm:
        wait_drained(sm)
        sm.hid_device.unplug()
        time.sleep(0.05)
        with pytest.raises(DeviceError):
            sm.read()
        sm.hid_device.replug()
        deadline = time.monotonic() + 2.0
        while sm.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sm.reconnects == 1
        sm.hid_device.push(wireless_motion(z=-350))
        wait_drained(sm)
        assert sm.read().command[2] == pytest.approx(1.0)


def test_read_before_connect_and_bad_button_name():
    sm = make()
    with pytest.raises(DeviceError, match="not connected"):
        sm.read()
    with pytest.raises(DeviceError, match="not a button"):
        make(close_button="TOP").connect()


def test_wrong_device_is_refused():
    cfg = SpaceMouseConfig(model="SpaceMouseWireless",
                           source={"type": "replay", "product_id": 0xC626})
    with pytest.raises(DeviceError, match="is not a SpaceMouseWireless"):
        SpaceMouse(cfg).connect()


def test_map_axes_rejects_nan_and_tool_frame_rotation():
    with pytest.raises(ValueError, match="non-finite"):
        map_axes([np.nan, 0, 0, 0, 0, 0], AxisMapConfig())
    # tool rotated 90 deg about z: tool +x is base +y
    q = np.array([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(tool_to_base(np.array([1, 0, 0, 0, 0, 0.5]), q),
                               [0, 1, 0, 0, 0, 0.5], atol=1e-6)


def test_calibration_file_sets_axes(tmp_path):
    import yaml

    path = tmp_path / "spacemouse.yaml"
    path.write_text(yaml.safe_dump({
        "format": "hilr-calibration", "version": 1, "kind": "spacemouse",
        "data": {"axes": {"order": [1, 0, 2, 4, 3, 5], "sign": [1, -1, 1, 1, -1, 1],
                          "deadzone": [0.1] * 6},
                 "bias": [0.0, 0.02, 0, 0, 0, 0], "noise_max": [0.01] * 6, "handedness": -1}}))
    with make(reports=[wireless_motion(y=-182)], calibration_file=str(path)) as sm:
        wait_drained(sm)
        st = sm.read()
    # device y (+0.52 after hid_z_up) minus bias 0.02 = 0.5 -> robot x; dead-zone 0.1
    np.testing.assert_allclose(st.command, [(0.5 - 0.1) / 0.9, 0, 0, 0, 0, 0], atol=2e-3)
    path.write_text(yaml.safe_dump({"format": "hilr-calibration", "kind": "crops", "data": {}}))
    with pytest.raises(ValueError, match="not a hilr SpaceMouse calibration"):
        SpaceMouseConfig(model="SpaceMouseWireless", calibration_file=str(path))


@pytest.mark.parametrize("kw, why", [({"path": "/dev/hidraw-none"}, "does not exist"),
                                     ({"model": "SpaceMouseWireless"}, "not found"),
                                     ({}, "No connected or supported devices")])
def test_real_hidapi_source_without_a_device_says_what_to_check(kw, why):
    """The real path (pyspacemouse.open / open_by_path over hidapi) on a machine without one."""
    sm = SpaceMouse(SpaceMouseConfig(**kw))
    with pytest.raises(DeviceError, match=why) as err:
        sm.connect()
    assert "udev" in str(err.value) and not sm.is_connected


def test_stalled_stream_with_deflected_cap_reads_zero():
    with make(reports=[wireless_motion(x=350)], max_motion_age_s=0.1) as sm:
        wait_drained(sm)
        assert sm.read().is_active
        time.sleep(0.15)  # a deflected cap keeps reporting; silence means a stalled stream
        st = sm.read()
        assert not st.is_active and np.all(st.command == 0)
        sm.hid_device.push(wireless_motion(x=350))
        wait_drained(sm)
        assert sm.read().command[0] == pytest.approx(1.0)


def test_reader_thread_bug_is_an_error_not_a_frozen_command(monkeypatch):
    with make(reports=[wireless_motion(x=350)]) as sm:
        wait_drained(sm)
        monkeypatch.setattr(sm, "_update_buttons", lambda names: 1 / 0)
        sm.hid_device.push(wireless_motion(x=300))
        time.sleep(0.05)
        with pytest.raises(DeviceError, match="reader thread died"):
            sm.read()
