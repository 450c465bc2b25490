"""Compatibility alias: ``PrivilegedState`` lives in :mod:`robot_env.wrappers` (an env concern).

Prefer ``privileged_state: true`` in the env config (``robot_env.make_env``).
"""

from robot_env.wrappers import PrivilegedState

__all__ = ["PrivilegedState"]
