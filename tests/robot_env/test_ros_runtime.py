"""The shared rclpy runtime (init once, refcounted nodes) and the task report codec."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robot_env.ros import runtime
from robot_env.ros.task_feed import decode_report, encode_report

pytestmark = pytest.mark.ros


def test_nodes_share_one_executor_and_the_last_one_shuts_it_down():
    from std_msgs.msg import Float64

    for _ in range(2):  # init -> shutdown -> init again in one process
        a, b = runtime.create_node("a"), runtime.create_node("b")
        assert runtime.active_nodes() == 2
        got = threading.Event()
        b.create_subscription(Float64, "/runtime_test", lambda m: got.set(), runtime.make_qos("reliable", 10))
        pub = a.create_publisher(Float64, "/runtime_test", runtime.make_qos("reliable", 10))
        deadline = time.monotonic() + 5
        while not got.is_set() and time.monotonic() < deadline:  # nobody calls spin: the thread does
            pub.publish(Float64(data=1.0))
            time.sleep(0.02)
        assert got.is_set()
        runtime.destroy_node(a)
        assert runtime.active_nodes() == 1
        runtime.destroy_node(b)
        runtime.destroy_node(b)  # twice is harmless
        assert runtime.active_nodes() == 0
    assert not [t for t in threading.enumerate() if t.name == "hilr-rclpy-executor"]


def test_message_and_qos_lookup_errors_are_clear():
    assert runtime.import_message("std_msgs/Float64").__name__ == "Float64"
    assert runtime.import_message("sensor_msgs/msg/Image").__name__ == "Image"
    with pytest.raises(ValueError, match="unknown ROS2 message type"):
        runtime.import_message("franka_msgs/Grasp")
    with pytest.raises(ValueError, match="pkg/Type"):
        runtime.import_message("Float64")
    with pytest.raises(ValueError, match="unknown QoS"):
        runtime.make_qos("fast")


def test_task_report_round_trip_and_malformed_reports():
    text = encode_report(3, True, False, 1.5, {"cube_pos": np.array([0.4, 0.0, 0.1])})
    report = decode_report(text)
    assert report["episode"] == 3 and report["success"] and not report["failure"]
    np.testing.assert_allclose(report["task_state"]["cube_pos"], [0.4, 0.0, 0.1])
    assert report["task_state"]["cube_pos"].dtype == np.float64
    for bad in ("not json", '{"episode": 1}', '{"episode": 1, "success": 1, "failure": 0, "task_state": 5}'):
        with pytest.raises(ValueError, match="malformed task report"):
            decode_report(bad)


def test_a_crash_without_disconnect_exits_cleanly():
    """A program that dies with nodes alive exits with its own error, not std::terminate."""
    import os
    import subprocess
    import sys

    code = "from robot_env.ros import runtime\nruntime.create_node('left_open')\nraise RuntimeError('boom')\n"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True,
                          text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "RuntimeError: boom" in proc.stderr and "terminate called" not in proc.stderr
