"""One rclpy runtime per process: a private context, one node per backend, one executor.

Every ROS2 backend (arm, camera, task link) calls :func:`create_node` in ``connect()``
and :func:`destroy_node` in ``disconnect()``. The first call initialises a private
``rclpy.Context`` (no signal handlers: Ctrl-C stays the host app's business) and starts a
``SingleThreadedExecutor`` spinning in a daemon thread; the last ``destroy_node`` shuts it
down. Callbacks only store the latest message behind a lock (microseconds), so one thread
serves them all with the least overhead; ``env.step()`` never spins.

Using a private context (not rclpy's global one) means a host app that runs its own
``rclpy.init()`` is unaffected, and tests can connect and disconnect backends repeatedly.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import os
import threading
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {}
_counter = itertools.count()


def create_node(kind: str) -> Any:
    """A new ``rclpy.node.Node`` named ``hilr_<kind>_<pid>_<n>``, spun by the shared executor.

    Args:
        kind: short backend name used in the node name, e.g. ``"arm"`` or ``"camera_front"``.
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    with _lock:
        if not _state:
            context = Context()
            rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
            executor = SingleThreadedExecutor(context=context)
            thread = threading.Thread(target=_spin, args=(executor, context), name="hilr-rclpy-executor",
                                      daemon=True)
            _state.update(context=context, executor=executor, thread=thread, nodes=set())
            thread.start()
            atexit.register(_shutdown_at_exit)  # a crash that skips disconnect() must not abort()
        safe = "".join(c if c.isalnum() else "_" for c in kind)
        node = Node(f"hilr_{safe}_{os.getpid()}_{next(_counter)}", context=_state["context"])
        _state["nodes"].add(node)
        _state["executor"].add_node(node)
        return node


def _spin(executor: Any, context: Any) -> None:
    from rclpy._rclpy_pybind11 import InvalidHandle
    from rclpy.executors import ExternalShutdownException

    while context.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return
        except InvalidHandle:
            continue  # a node was destroyed while in the wait set; the next wait excludes it
        except Exception:
            if not context.ok():
                return  # shutting down
            raise


def destroy_node(node: Any) -> None:
    """Remove ``node`` from the executor and destroy it; the last one shuts rclpy down."""
    with _lock:
        if not _state or node not in _state["nodes"]:
            return
        _state["executor"].remove_node(node)
        _state["nodes"].discard(node)
        node.destroy_node()
        if _state["nodes"]:
            return
        executor, context, thread = _state["executor"], _state["context"], _state["thread"]
        _state.clear()
    executor.shutdown(timeout_sec=2.0)
    context.try_shutdown()
    thread.join(timeout=2.0)


def _shutdown_at_exit() -> None:
    """Destroy what is left (a program that died without ``disconnect()``) before Python
    finalises; a still-spinning executor thread would otherwise end in ``std::terminate``."""
    with _lock:
        nodes = list(_state.get("nodes", ()))
    for node in nodes:
        destroy_node(node)


def active_nodes() -> int:
    """How many backend nodes are alive in this process (0 = rclpy not initialised)."""
    with _lock:
        return len(_state.get("nodes", ()))


def import_message(name: str) -> type:
    """Message class from ``"pkg/Type"`` or ``"pkg/msg/Type"``, e.g. ``"std_msgs/Float64"``.

    Raises:
        ValueError: the name is malformed or names no installed message.
    """
    parts = name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"message type must look like 'pkg/Type' or 'pkg/msg/Type', got {name!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        raise ValueError(f"unknown ROS2 message type {name!r} (is its package installed?)") from None


QOS_NAMES = ("sensor_data", "reliable", "best_effort")


def make_qos(name: str, depth: int = 1) -> Any:
    """QoS profile by name: ``sensor_data`` (best effort, volatile, keep last ``depth``),
    ``reliable`` (reliable, volatile, keep last ``depth``) or ``best_effort``.
    """
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if name == "sensor_data":
        return qos_profile_sensor_data
    if name == "reliable":
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    if name == "best_effort":
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
    raise ValueError(f"unknown QoS profile {name!r}; choose one of {QOS_NAMES}")


def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
