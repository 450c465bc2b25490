"""hilr: robot_env. The gym env, its wrappers, hardware interfaces and backends.

``robot_env.make_env(cfg)`` builds the env (see ``robot_env.factory``); it is imported
lazily so ``import robot_env`` stays light.
"""


def make_env(*args, **kwargs):
    """Build the wrapped env; see ``robot_env.factory.make_env``."""
    from robot_env.factory import make_env as _make_env

    return _make_env(*args, **kwargs)
