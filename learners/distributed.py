"""Data-parallel learner on several GPUs with ``torch.distributed`` (launched by torchrun).

Rank 0 is the learner process of the single-GPU case: it owns the transport, the replay
buffers, weight publishing and checkpoints. Every update it samples a global batch of
``world_size * batch_size``, broadcasts it, and each rank (rank 0 included) updates on its
own shard; gradients are averaged across ranks inside the update (``average_gradients``,
called by ``learners.updates``), so every rank keeps identical weights. Nothing here is a
cluster manager: torchrun starts the ranks, NCCL (GPU) or gloo (CPU) moves the tensors.

    torchrun --nproc_per_node=4 -m learners.cli learner demos=... learner.device=cuda

The batch crosses processes as raw tensors in a fixed key order (no pickle): every rank
knows the batch layout from the observation spec.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch
import torch.distributed as dist

_STOP, _UPDATE = 0, 1


def world_size() -> int:
    """Number of data-parallel ranks (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device: str = "cpu") -> str:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns the torch device.

    With CUDA each rank takes ``cuda:LOCAL_RANK`` and NCCL; on CPU gloo.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def shutdown() -> None:
    """Leave the process group cleanly (no-op when not distributed): wait for every rank,
    then destroy the group. A rank that exits while another still holds gloo connections
    can abort it ("terminate called without an active exception")."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce and average the gradients of ``params`` (no-op when not distributed)."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module_state(*modules: torch.nn.Module) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if world_size() == 1:
        return
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            with torch.no_grad():
                dist.broadcast(t.data, src=0)


def _flatten(batch: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k in sorted(batch):
        v = batch[k]
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


class ShardedUpdater:
    """Rank 0 calls :meth:`update` with a global batch; other ranks sit in :meth:`follow`.

    Args:
        agent: the rank's :class:`learners.agent.Agent` (same config and seed on every rank).
        template: one batch of the global size (rank 0's first sample; other ranks build
            it from their own empty replay's layout), giving keys, shapes and dtypes.
    """

    def __init__(self, agent: Any, template: Mapping[str, Any]) -> None:
        self.agent = agent
        self.layout = {k: (v.shape, v.dtype) for k, v in _flatten(template).items()}
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        broadcast_module_state(agent.encoder, agent.actor, agent.critic, agent.critic_target, agent.target_encoder)

    def _signal(self, what: int) -> int:
        flag = torch.tensor([what], dtype=torch.int64, device=self.device)
        dist.broadcast(flag, src=0)
        return int(flag.item())

    def _exchange(self, flat: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        out = {}
        for k, (shape, dtype) in self.layout.items():
            if flat is not None:
                t = torch.from_numpy(np.ascontiguousarray(flat[k])).to(self.device)
            else:
                t = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device=self.device)
            dist.broadcast(t, src=0)
            out[k] = t.cpu().numpy()
        return out

    def _shard(self, flat: dict[str, np.ndarray]) -> dict[str, Any]:
        n, r = world_size(), rank()
        size = next(iter(flat.values())).shape[0] // n
        return _unflatten({k: v[r * size:(r + 1) * size] for k, v in flat.items()})

    def update(self, global_batch: Mapping[str, Any]) -> dict[str, float]:
        """Rank 0: broadcast the batch, update on its shard; returns rank 0's metrics."""
        self._signal(_UPDATE)
        flat = self._exchange(_flatten(global_batch))
        return self.agent.update(self._shard(flat))

    def stop(self) -> None:
        """Rank 0: release the followers."""
        self._signal(_STOP)

    def follow(self) -> int:
        """Ranks > 0: apply updates until rank 0 stops; returns how many ran."""
        n = 0
        while self._signal(_STOP) == _UPDATE:
            self.agent.update(self._shard(self._exchange(None)))
            n += 1
        return n
