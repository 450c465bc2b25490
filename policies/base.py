"""The base-policy interface and adapters: anything with ``reset()`` / ``act(obs) -> (7,)``.

The residual learner treats the base policy as a black box: it only ever calls
:meth:`BasePolicy.reset` at an episode start and :meth:`BasePolicy.act` once per control
step. Implementations here:

- :class:`policies.bc.BCBasePolicy`: hilr's own BC policy (safetensors checkpoint).
- :class:`TorchScriptBasePolicy`: any ``torch.jit.save``-d module taking the obs dict.
- :class:`LeRobotBasePolicy`: a lerobot pretrained policy directory (only when lerobot is installed).
- :class:`ZeroBasePolicy`: always zero (the RLPD-from-scratch baseline: no base).

:func:`load_base_policy` picks one from a path.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from policies.encoders import obs_to_tensors


class BasePolicy(abc.ABC):
    """A (frozen) policy proposing one action per control step.

    ``act`` takes one unbatched observation dict (``"state"`` ``(D,)`` float32, camera images
    ``(H, W, 3)`` uint8) and returns a ``(7,)`` float32 action in ``[-1, 1]``
    (``[dx, dy, dz, drx, dry, drz, gripper]``, see docs/CONTRACTS.md).
    """

    action_dim: int = 7

    def reset(self) -> None:
        """Forget per-episode state (action chunks, history); call at every episode start."""

    @abc.abstractmethod
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Action ``(action_dim,)`` float32 in [-1, 1] for one observation."""


def check_action(action: Any, action_dim: int, source: str) -> np.ndarray:
    """Validate a base policy's output: right shape, finite, clipped to [-1, 1]."""
    a = np.asarray(action, dtype=np.float32).reshape(-1)
    if a.shape != (action_dim,):
        raise ValueError(f"{source} returned an action of shape {a.shape}, expected ({action_dim},)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{source} returned a non-finite action {a}")
    return np.clip(a, -1.0, 1.0)


class ZeroBasePolicy(BasePolicy):
    """Always ``zeros(action_dim)``: residual == policy (used by the RLPD baseline)."""

    def __init__(self, action_dim: int = 7) -> None:
        self.action_dim = action_dim

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Zero action."""
        return np.zeros(self.action_dim, np.float32)


class TorchScriptBasePolicy(BasePolicy):
    """A TorchScript module ``forward(obs: Dict[str, Tensor]) -> Tensor`` as a base policy.

    The module receives a batch of one (images uint8 ``(1, H, W, 3)``, state ``(1, D)``) and
    returns ``(1, 7)`` or ``(1, H, 7)`` (then the first action of the chunk is used). If the
    module has a ``reset()`` method it is called on :meth:`reset`.

    Args:
        path: file written by ``torch.jit.save`` (TorchScript archives carry no Python pickle
            of arbitrary objects; code is TorchScript IR).
        device: torch device.
    """

    def __init__(self, path: str | Path, device: str = "cpu", action_dim: int = 7) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"TorchScript base policy {self.path} not found")
        self.device = torch.device(device)
        self.module = torch.jit.load(str(self.path), map_location=self.device).eval()
        self.action_dim = action_dim

    def reset(self) -> None:
        """Call the module's ``reset()`` if it has one."""
        if hasattr(self.module, "reset"):
            self.module.reset()

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """First action of the module's output for ``obs``."""
        out = self.module(obs_to_tensors(obs, self.device))
        out = out.reshape(-1, out.shape[-1])[0]
        return check_action(out.cpu().numpy(), self.action_dim, f"TorchScript policy {self.path}")


class LeRobotBasePolicy(BasePolicy):
    """Adapter for a lerobot pretrained policy directory (needs ``lerobot`` installed).

    Observations are mapped to lerobot's names: ``state`` -> ``observation.state``, camera
    ``<cam>`` -> ``observation.images.<cam>`` as float ``(1, 3, H, W)`` in [0, 1].

    Args:
        path: a local directory produced by ``policy.save_pretrained`` (never a hub id:
            nothing is downloaded).
        policy_type: lerobot policy type (``act``, ``diffusion``, ...).
        device: torch device.
    """

    def __init__(self, path: str | Path, policy_type: str = "act", device: str = "cpu", action_dim: int = 7) -> None:
        try:
            from lerobot.policies.factory import get_policy_class  # type: ignore[import-not-found]
        except ImportError:
            try:  # lerobot < 0.2 kept its packages under lerobot.common
                from lerobot.common.policies.factory import get_policy_class  # type: ignore[import-not-found]
            except ImportError as exc:
                raise ImportError("lerobot base policies need `pip install lerobot`") from exc
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"lerobot policy directory {p} not found (hub ids are not downloaded)")
        self.device = torch.device(device)
        self.policy = get_policy_class(policy_type).from_pretrained(str(p)).to(self.device).eval()
        self.action_dim = action_dim

    def reset(self) -> None:
        """Clear lerobot's action queue."""
        self.policy.reset()

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """lerobot's ``select_action`` on the renamed observation."""
        batch = {}
        for k, v in obs.items():
            t = torch.as_tensor(np.asarray(v), device=self.device)
            if t.dtype == torch.uint8 and t.dim() == 3:
                batch[f"observation.images.{k}"] = t.permute(2, 0, 1).unsqueeze(0).float() / 255.0
            elif k == "state":
                batch["observation.state"] = t.float().unsqueeze(0)
        out = self.policy.select_action(batch)
        return check_action(out.reshape(-1).cpu().numpy(), self.action_dim, "lerobot policy")


def load_base_policy(path: str | Path | None, device: str = "cpu", action_dim: int = 7, **kwargs: Any) -> BasePolicy:
    """Load a base policy by path.

    - ``None`` or ``"zero"``: :class:`ZeroBasePolicy`.
    - ``*.safetensors``: a hilr BC checkpoint (:func:`policies.bc.load_bc_policy`);
      ``kwargs`` may override its execution (``execution=``, ``execute_steps=``, ...).
    - ``*.pt`` / ``*.ts`` / ``*.jit``: :class:`TorchScriptBasePolicy`.
    - ``lerobot:<dir>[:<type>]``: :class:`LeRobotBasePolicy`.
    """
    if path is None or str(path) == "zero":
        return ZeroBasePolicy(action_dim)
    s = str(path)
    if s.startswith("lerobot:"):
        parts = s.split(":")
        return LeRobotBasePolicy(parts[1], parts[2] if len(parts) > 2 else "act", device, action_dim)
    p = Path(s)
    if p.suffix == ".safetensors":
        from policies.bc import load_bc_policy

        return load_bc_policy(p, device=device, **kwargs)
    if p.suffix in (".pt", ".ts", ".jit"):
        return TorchScriptBasePolicy(p, device, action_dim)
    raise ValueError(f"don't know how to load a base policy from {p} (.safetensors, .pt/.ts, or lerobot:<dir>)")
