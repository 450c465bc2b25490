"""Shared plumbing for the thin hydra apps behind ``hilr <verb>``.

Each verb is a ``@hydra_app("<verb>")`` function of a few dozen lines: it builds objects
from its config and calls one loop. Configs live in ``launch/config`` (not a Python
package: see the README), one primary file per verb with the groups ``robot``,
``camera``, ``task``, ``teleop``, ``policy``, ``learner`` and ``transport``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def config_dir() -> Path:
    """Directory of the hydra configs: ``$HILR_CONFIG_DIR`` or ``<repo>/launch/config``."""
    env = os.environ.get("HILR_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "launch" / "config"
    if not path.is_dir():
        raise FileNotFoundError(
            f"hilr config directory {path} not found; set HILR_CONFIG_DIR to the "
            "launch/config folder of a hilr checkout"
        )
    return path


def launch_dir() -> Path:
    """The repo's ``launch/`` folder (ROS2 launch files and configs)."""
    return config_dir().parent


def hydra_app(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[[], Any]]:
    """Decorate ``fn(cfg)`` as a hydra app reading ``launch/config/<config_name>.yaml``.

    The resolved config is logged at start and saved beside the run by hydra
    (``<run dir>/.hydra/config.yaml``).
    """

    def deco(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(fn)
        def main() -> Any:
            import hydra
            from omegaconf import DictConfig, OmegaConf

            @hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")
            def _run(cfg: DictConfig) -> Any:
                log.info("resolved config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
                return fn(cfg)

            return _run()

        return main

    return deco


def run_dir() -> Path:
    """The current hydra run's output directory (cwd outside hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # not running under hydra (tests, notebooks)
        return Path.cwd()


def to_container(node: Any) -> Any:
    """A hydra/omegaconf node as plain dicts and lists (resolved)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node
