"""Residual actors: bounded corrections on top of a (frozen, black-box) base action.

The executed action is ``a = clip(base + scale * residual, -1, 1)`` with ``residual`` in
``[-1, 1]^A`` and ``scale`` per action dimension (:func:`compose_action`). Both actors see the
observation features and the base action, and their last layer is zero-initialised so that
at step 0 the residual is exactly 0 (deterministic) and the robot starts exactly as good
as its base policy.

- :class:`DeterministicResidualActor`: TD3-style (ResFiT), ``residual = tanh(f(feat, base))``.
- :class:`GaussianResidualActor`: SAC-style, tanh-squashed Gaussian with log-probabilities.

With ``base = 0`` and ``scale = 1`` the same actors are plain (non-residual) policies, which
is how the RLPD-from-scratch baseline is built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from policies.encoders import mlp


def compose_action(base: torch.Tensor, residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Executed action ``clip(base + scale * residual, -1, 1)``; shapes ``(B, A)``, scale ``(A,)``."""
    return torch.clamp(base + scale * residual, -1.0, 1.0)


def implied_residual(executed: torch.Tensor, base: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Residual that explains an executed (e.g. human) action: ``clip((executed - base) / scale, -1, 1)``."""
    return torch.clamp((executed - base) / scale, -1.0, 1.0)


def _zero_last(net: nn.Sequential) -> None:
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


class DeterministicResidualActor(nn.Module):
    """TD3-style residual actor: ``residual = tanh(MLP([feat, base]))`` in ``[-1, 1]^A``.

    Args:
        feature_dim: observation feature size F.
        action_dim: action size A (7 for the arm).
        hidden: hidden layer widths.
        layer_norm: LayerNorm after each hidden layer.
    """

    def __init__(self, feature_dim: int, action_dim: int = 7, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.net = mlp(feature_dim + action_dim, list(hidden), action_dim, layer_norm)
        _zero_last(self.net)

    def forward(self, feat: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Mean residual ``(B, A)`` for features ``(B, F)`` and base actions ``(B, A)``."""
        return torch.tanh(self.net(torch.cat([feat, base], dim=-1)))

    def explore(self, feat: torch.Tensor, base: torch.Tensor, sigma: float) -> torch.Tensor:
        """Mean residual plus N(0, sigma^2) exploration noise, clipped to ``[-1, 1]``."""
        mean = self(feat, base)
        return torch.clamp(mean + sigma * torch.randn_like(mean), -1.0, 1.0)


class GaussianResidualActor(nn.Module):
    """SAC-style residual actor: ``residual = tanh(mu + std * eps)``.

    At init ``mu = 0`` exactly (zero last layer) and ``std = init_std``.

    Args:
        feature_dim: observation feature size F.
        action_dim: action size A.
        hidden: hidden layer widths.
        layer_norm: LayerNorm after each hidden layer.
        log_std_min, log_std_max: bounds of the log standard deviation.
        init_std: standard deviation (pre-tanh) at initialisation.
    """

    def __init__(self, feature_dim: int, action_dim: int = 7, hidden: tuple[int, ...] = (256, 256),
                 layer_norm: bool = True, log_std_min: float = -5.0, log_std_max: float = 2.0,
                 init_std: float = 0.3) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.net = mlp(feature_dim + action_dim, list(hidden), 2 * action_dim, layer_norm)
        _zero_last(self.net)
        # The log-std half of the last bias starts at the value giving init_std after squashing.
        frac = (math.log(init_std) - log_std_min) / (log_std_max - log_std_min)
        with torch.no_grad():
            self.net[-1].bias[action_dim:] = math.atanh(2 * frac - 1)

    def distribution(self, feat: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and log-std, each ``(B, A)``."""
        mu, raw = self.net(torch.cat([feat, base], dim=-1)).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(raw) + 1)
        return mu, log_std

    def forward(self, feat: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Deterministic (mode) residual ``tanh(mu)``, ``(B, A)``."""
        mu, _ = self.distribution(feat, base)
        return torch.tanh(mu)

    def sample(self, feat: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample and its log-probability.

        Returns:
            ``(residual (B, A) in (-1, 1), log_prob (B,))`` with the tanh change of variables.
        """
        mu, log_std = self.distribution(feat, base)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        residual = torch.tanh(u)
        log_prob = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable.
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return residual, log_prob

    def explore(self, feat: torch.Tensor, base: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """A stochastic residual for acting (``sigma`` is ignored: the policy's own std is used)."""
        return self.sample(feat, base)[0]


ACTORS = {"td3": DeterministicResidualActor, "sac": GaussianResidualActor}
