"""DemandLSTM: encoder LSTM over the history, per-step decoder head, monotone quantiles.

Inputs (all float32, batch first), as built by :func:`model.features.make_inputs`:
``history`` (B, L) scaled units, ``past_calendar`` (B, L, F), ``future_calendar`` (B, H, F),
``log_scale`` (B,). Output: (B, H, Q) quantiles in scaled units.

Quantiles are monotone and non-negative by construction: the head emits Q raw numbers per step,
``q_0 = softplus(r_0)`` and ``q_j = q_{j-1} + softplus(r_j)`` (a cumulative sum of softplus).

Example::

    >>> import torch
    >>> net = DemandLSTM(n_calendar=13)
    >>> net(torch.zeros(2, 56), torch.zeros(2, 56, 13), torch.zeros(2, 14, 13), torch.zeros(2)).shape
    torch.Size([2, 14, 3])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
STEP_EMBEDDING = 8


class DemandLSTM(nn.Module):
    def __init__(
        self,
        n_calendar: int,
        hidden: int = 64,
        horizon: int = 14,
        quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.n_quantiles = len(quantiles)
        # Encoder input per day: scaled units, calendar, and the SKU's level (static).
        self.encoder = nn.LSTM(1 + n_calendar + 1, hidden, num_layers=1, batch_first=True)
        self.step_embedding = nn.Embedding(horizon, STEP_EMBEDDING)
        head_in = hidden + n_calendar + 1 + STEP_EMBEDDING
        self.head = nn.Sequential(
            nn.Linear(head_in, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, self.n_quantiles),
        )
        self._init_output_bias()

    def _init_output_bias(self) -> None:
        # Start near "about one scale unit": q_0 ~ 0.3, gaps ~ 0.5 (inverse softplus).
        final = self.head[-1]
        assert isinstance(final, nn.Linear)
        with torch.no_grad():
            first = math.log(math.expm1(0.3))
            gap = math.log(math.expm1(0.5))
            final.bias.copy_(torch.tensor([first] + [gap] * (self.n_quantiles - 1)))

    def forward(
        self,
        history: torch.Tensor,
        past_calendar: torch.Tensor,
        future_calendar: torch.Tensor,
        log_scale: torch.Tensor,
    ) -> torch.Tensor:
        batch, lookback = history.shape[0], history.shape[1]
        level = log_scale.reshape(batch, 1, 1)
        encoder_in = torch.cat([history.unsqueeze(-1), past_calendar, level.expand(batch, lookback, 1)], dim=-1)
        _, (h_n, _) = self.encoder(encoder_in)
        state = h_n[-1].unsqueeze(1).expand(batch, self.horizon, h_n.shape[-1])
        steps = torch.arange(self.horizon, device=history.device)
        step_emb = self.step_embedding(steps).unsqueeze(0).expand(batch, self.horizon, -1)
        head_in = torch.cat([state, future_calendar, level.expand(batch, self.horizon, 1), step_emb], dim=-1)
        raw = self.head(head_in)
        return torch.cumsum(F.softplus(raw), dim=-1)


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean quantile (pinball) loss; ``pred`` (B, H, Q), ``target`` (B, H), ``quantiles`` (Q,)."""
    error = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * error, (quantiles - 1.0) * error).mean()
