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
import sys
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

    The resolved config is written to ``<run dir>/config_resolved.yaml`` (hydra also keeps
    the unresolved one in ``<run dir>/.hydra/``); the terminal gets one line naming the run
    directory. ``fn``'s integer return value becomes the exit status. Any exception is one
    line on stderr, ``hilr <verb>: <what failed>``, and exit status 1: the traceback goes to
    ``<run dir>/error.txt`` and to the terminal only with ``--verbose`` (``HILR_VERBOSE=1``),
    ``hydra.verbose=true`` or ``HYDRA_FULL_ERROR=1``.
    """

    def deco(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        @functools.wraps(fn)
        def main() -> Any:
            import hydra

            result: list[Any] = [None]

            @hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")
            def _run(cfg: Any) -> None:
                # hydra.main drops the task's return value, so it travels out through `result`
                result[0] = run_reporting_errors(fn, cfg, verb=config_name.replace("_", "-"))

            _run()
            return result[0]

        main.config_name = config_name  # type: ignore[attr-defined]  (read by `hilr <verb> --help`)
        return main

    return deco


def verbose() -> bool:
    """True when the user asked for tracebacks (``--verbose``, ``hydra.verbose``, ``HYDRA_FULL_ERROR``)."""
    if os.environ.get("HILR_VERBOSE", "") not in ("", "0") or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return True
    try:
        from hydra.core.hydra_config import HydraConfig

        return bool(HydraConfig.get().verbose)
    except Exception:  # not running under hydra
        return False


class UserError(RuntimeError):
    """A failure the user can fix from its message alone (bad option, missing file, no device).

    ``hilr`` prints its message as the one error line, without the traceback file's path.
    """


def error_line(exc: BaseException) -> str:
    """One line saying what failed: the message of an error the user can act on, else type: message."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message if _is_user_error(exc) else f"{type(exc).__name__}: {message}"


def _is_user_error(exc: BaseException) -> bool:
    from robot_env.hardware import DeviceError

    return isinstance(exc, (DeviceError, UserError))


def run_reporting_errors(fn: Callable[[Any], Any], cfg: Any, verb: str) -> int:
    """Run ``fn(cfg)`` and turn its outcome into an exit status (see ``hydra_app``).

    Args:
        fn: the verb's body.
        cfg: its composed config.
        verb: the name printed before an error, ``hilr <verb>: ...``.

    Returns:
        ``fn``'s integer result (0 when it returns anything else), 1 on an exception,
        130 on Ctrl-C.
    """
    import traceback

    from omegaconf import OmegaConf

    out = run_dir()
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL logs an INFO line on import
    status = 1
    try:
        out.mkdir(parents=True, exist_ok=True)
        link_latest(out)  # a running verb is the latest (`hilr eval agent=runs/learner/latest/...`)
        (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        log.info("hilr %s: run directory %s (resolved config: config_resolved.yaml)", verb, out)
        value = fn(cfg)
        status = int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
        return status
    except KeyboardInterrupt:  # the usual way to stop a learner: what it wrote stays the latest
        print(f"hilr {verb}: interrupted", file=sys.stderr)
        status = 130
        return status
    except SystemExit as exc:  # raise SystemExit("message") inside a verb: one line, status 1
        if exc.code is None or isinstance(exc.code, int):
            status = int(exc.code or 0)
            return status
        print(f"hilr {verb}: {exc.code}", file=sys.stderr)
        return 1
    except Exception as exc:
        trace = traceback.format_exc()
        where = ""
        try:
            (out / "error.txt").write_text(trace)
            where = f" (traceback: {out / 'error.txt'})"
        except OSError:
            pass
        if verbose():
            print(trace, file=sys.stderr, end="")
        known = _is_user_error(exc)
        print(f"hilr {verb}: {error_line(exc)}{'' if known else where}", file=sys.stderr)
        return 1
    finally:
        if status not in (0, 130):  # a failed run never stays the latest: the next command uses the last good one
            mark_failed(out, status)


def link_latest(out: Path) -> bool:
    """Point ``<out>/../latest`` at ``out`` (``runs/train_bc/latest/bc_best.safetensors`` in the
    README), atomically; never replaces a ``latest`` that is not a symlink, and links nothing for a
    run inside another run's folder (``hilr demo``'s learner and actor). True when it linked."""
    link = out.parent / "latest"
    if (link.exists() and not link.is_symlink()) or (out.parent / "config_resolved.yaml").exists():
        return False  # a real folder named latest, or a sub-run inside another run (hilr demo's learner/actor)
    _point(link, out.name)
    return True


FAILED = "FAILED"  # marker file of a run that failed (its exit status inside)


def mark_failed(out: Path, status: int) -> None:
    """Mark ``out`` as a failed run and, if ``latest`` points at it, point ``latest`` at the newest
    other run of the verb that has not failed (a running one counts), or remove it when there is
    none. Runs of one verb may overlap (two actors): each failed one is skipped by its marker."""
    link = out.parent / "latest"
    try:
        (out / FAILED).write_text(f"exit status {status}\n")
        if not (link.is_symlink() and os.readlink(link) == out.name):
            return
        good = sorted((d.name for d in out.parent.iterdir() if d.is_dir() and not d.is_symlink()
                       and not d.name.startswith(".") and d != out and not (d / FAILED).exists()), reverse=True)
        if good:
            _point(link, good[0])
        else:
            link.unlink()
    except OSError:
        pass


def _point(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target``, atomically (a file system without symlinks: no link;
    the timestamped folders still work)."""
    tmp = link.parent / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)


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
