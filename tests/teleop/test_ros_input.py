"""ROS2 twist/joy input (spacenav-compatible) over real rclpy DDS on loopback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_env.hardware import DeviceError
from teleop.ros_input import Ros2Twist, Ros2TwistConfig

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros


@pytest.fixture()
def publisher():
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Joy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("fake_spacenav", context=ctx, start_parameter_services=False)
    pubs = {"twist": node.create_publisher(Twist, "/spacenav/twist", 10),
            "joy": node.create_publisher(Joy, "/spacenav/joy", 10)}
    yield node, pubs
    node.destroy_node()
    ctx.shutdown()


def twist(*v):
    from geometry_msgs.msg import Twist

    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = v[:3]
    msg.angular.x, msg.angular.y, msg.angular.z = v[3:]
    return msg


def joy(buttons):
    from sensor_msgs.msg import Joy

    msg = Joy()
    msg.axes = [0.0] * 6
    msg.buttons = list(buttons)
    return msg


def until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except DeviceError:
            pass
        time.sleep(0.02)
    return False


def test_spacenav_twist_and_joy(publisher):
    _, pubs = publisher
    teleop = Ros2Twist(Ros2TwistConfig(max_age_s=0.3, hold_s=0.1))
    with teleop:
        # discovery, then a deflection: publish until it arrives (DDS discovery is async)
        def arrived():
            pubs["twist"].publish(twist(0.5, 0, -1.0, 0, 0, 0.2))
            return teleop.read().is_active
        assert until(arrived)
        st = teleop.read()
        np.testing.assert_allclose(st.command[[0, 2]], [(0.5 - 0.05) / 0.95, -1.0], atol=1e-6)
        # the stream stops: a stale non-zero twist decays to zero, never keeps moving
        time.sleep(0.4)
        st = teleop.read()
        assert not st.is_active and np.all(st.command == 0)
        # left button closes, right opens; holding counts as an intervention
        assert until(lambda: (pubs["joy"].publish(joy([1, 0])), teleop.read().gripper == 1.0)[1])
        time.sleep(0.15)
        pubs["joy"].publish(joy([1, 0]))
        assert until(lambda: teleop.read().intervention_button)
        assert until(lambda: (pubs["joy"].publish(joy([0, 1])), teleop.read().gripper == -1.0)[1])


def test_no_publisher_is_an_error():
    teleop = Ros2Twist(Ros2TwistConfig(twist_topic="/hilr_test/nobody", joy_topic=""))
    with pytest.raises(DeviceError, match="not connected"):
        teleop.read()
    with teleop:
        with pytest.raises(DeviceError, match="no publisher on /hilr_test/nobody"):
            teleop.read()
    assert not teleop.is_connected


def test_joy_axes_mode_and_nan_messages_ignored(publisher):
    from sensor_msgs.msg import Joy

    _, pubs = publisher
    teleop = Ros2Twist(Ros2TwistConfig(twist_topic="", use_joy_axes=True, full_scale=350.0,
                                       max_age_s=5.0))
    with teleop:
        def send(axes):
            msg = Joy()
            msg.axes = [float(a) for a in axes]
            msg.buttons = [0, 0]
            pubs["joy"].publish(msg)

        assert until(lambda: (send([0, 0, 350, 0, 0, 0]), teleop.read().is_active)[1])
        assert teleop.read().command[2] == pytest.approx(1.0)
        before = teleop.messages_received
        send([float("nan"), 0, 0, 0, 0, 0])
        assert until(lambda: teleop.messages_received > before)  # the buttons still count
        time.sleep(0.05)
        assert teleop.read().command[2] == pytest.approx(1.0)  # the NaN axes were dropped
