"""Matmul FLOPs of one learner update, counted from the layer sizes, and a same-run sgemm rate.

``hilr bench learner`` divides the FLOPs an update must do by its measured time and compares
the result with a single-shape sgemm timed in the same process, so a slow update is told
apart from a slow (or busy) machine.

Counting convention (the one of ``torch.utils.flop_counter``): a ``(B, n) @ (n, m)`` product
is ``2 B n m`` FLOPs; the backward pass of a linear layer costs ``2 B n m`` for the weight
gradient plus ``2 B n m`` for the input gradient *only where the input needs a gradient*
(not for the first layer of a network fed by detached features). Bias adds, LayerNorm,
activations and the optimiser are not counted: they are the overhead the ratio exposes.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch


def chain_dims(in_dim: int, hidden: Sequence[int], out_dim: int) -> list[tuple[int, int]]:
    """``(fan_in, fan_out)`` of each linear layer of an MLP ``in -> hidden... -> out``."""
    dims = [int(in_dim), *(int(h) for h in hidden), int(out_dim)]
    return list(zip(dims[:-1], dims[1:]))


def mlp_flops(batch: int, layers: Sequence[tuple[int, int]], backward: str = "none",
              input_grad: bool = False) -> int:
    """Matmul FLOPs of one MLP pass over ``batch`` rows.

    Args:
        batch: rows B.
        layers: ``(fan_in, fan_out)`` per linear layer (:func:`chain_dims`).
        backward: ``"none"`` (forward only), ``"weights"`` (forward + backward with weight
            gradients: a trained network) or ``"inputs"`` (forward + backward of the input
            gradients only: a frozen critic the actor differentiates through).
        input_grad: the network's own input needs a gradient (so the first layer's input
            gradient is computed too).

    Returns:
        FLOPs (int).
    """
    per_layer = [2 * batch * n * m for n, m in layers]
    fwd = sum(per_layer)
    if backward == "none":
        return fwd
    inputs = sum(per_layer[1:]) + (per_layer[0] if input_grad else 0)
    if backward == "inputs":
        return fwd + inputs
    if backward == "weights":
        return fwd + sum(per_layer) + inputs
    raise ValueError(f"backward must be none | weights | inputs, got {backward!r}")


def update_flops(cfg: Any, feature_dim: int, encoder_trainable: bool = False) -> dict[str, float]:
    """Matmul FLOPs of the MLP part of one update of :mod:`learners.updates` (TD3 or SAC).

    Args:
        cfg: a :class:`learners.agent.AgentConfig` (``algo``, ``batch_size``, ``num_critics``,
            ``target_subset``, ``critic_hidden``, ``actor_hidden``, ``action_dim``,
            ``actor_delay``, ``bc_weight``, ``q_filter``).
        feature_dim: the encoder's output size F (the state size for state observations).
        encoder_trainable: the features carry a gradient into a trainable encoder (images),
            so the critic's first layer also computes its input gradient. The encoder's own
            FLOPs (convolutions) are not included.

    Returns:
        ``critic_step``, ``target``, ``actor_step`` (one actor update) and ``per_update``
        (critic + target + actor_step / actor_delay: the average after the critic warm-up).
        The BC term's Q-filter forward is counted when ``bc_weight > 0``, as if every batch
        held labelled rows.
    """
    B, A, E, K = int(cfg.batch_size), int(cfg.action_dim), int(cfg.num_critics), int(cfg.target_subset)
    actor_out = A if cfg.algo == "td3" else 2 * A
    critic = chain_dims(feature_dim + A, cfg.critic_hidden, 1)
    actor = chain_dims(feature_dim + A, cfg.actor_hidden, actor_out)
    critic_step = E * mlp_flops(B, critic, "weights", input_grad=encoder_trainable)
    target = mlp_flops(B, actor) + K * mlp_flops(B, critic)  # target actor (or SAC actor) + K sampled heads
    actor_step = (mlp_flops(B, actor, "weights")  # residual actor, detached features in
                  + E * mlp_flops(B, critic, "inputs", input_grad=True)  # dQ/da through the frozen critic
                  + E * mlp_flops(B, critic))  # Q(s, base) diagnostics
    if cfg.bc_weight > 0 and cfg.q_filter:
        actor_step += E * mlp_flops(B, critic)  # Q(s, labelled action) of the filter
    per_update = critic_step + target + actor_step / int(cfg.actor_delay)
    return {"critic_step": float(critic_step), "target": float(target), "actor_step": float(actor_step),
            "per_update": float(per_update)}


def sgemm_rate(n: int = 256, k: int | None = None, m: int | None = None, min_seconds: float = 0.5,
               device: str | torch.device = "cpu") -> dict[str, Any]:
    """Achieved rate of one float32 matmul ``(n, k) @ (k, m)`` at the current torch thread count.

    Timed for at least ``min_seconds`` after a warm-up; the best of 5 timing rounds (the
    machine's rate, least disturbed by other processes) and their median are returned.

    Returns:
        ``shape``, ``gflops_best``, ``gflops_median``, ``threads``.
    """
    k, m = k or n, m or n
    a = torch.randn(n, k, device=device)
    b = torch.randn(k, m, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(5):
        a @ b
    sync()
    reps = 1
    while True:  # calibrate the repetitions of one round to ~min_seconds / 5
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        if time.perf_counter() - t0 >= min_seconds / 5:
            break
        reps *= 2
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        rates.append(2.0 * n * k * m * reps / (time.perf_counter() - t0) / 1e9)
    rates.sort()
    return {"shape": [n, k, m], "gflops_best": rates[-1], "gflops_median": rates[2], "threads": torch.get_num_threads()}
