"""Gate arithmetic and gate-bias initialisers (Gu et al., ICML 2020; ../shared/PAPER.md).

Small pure functions, elementwise unless said otherwise, so that each can be tested
against its formula on its own. ``f`` is a forget gate, ``r`` a refine gate, ``m`` a
master gate, all in ``[0, 1]`` and of any (broadcastable) shape.
"""

from __future__ import annotations

import torch
from torch import Tensor


def refine_gate(f: Tensor, r: Tensor) -> Tensor:
    """The refine gate's effective forget gate (PAPER.md section 3, ``R``).

    ``g = r * (1 - (1 - f)^2) + (1 - r) * f^2``: r interpolates between the lower bound
    ``f^2`` and the upper bound ``1 - (1 - f)^2`` of f; g = f at r = 1/2. Computed in the
    equivalent form ``f * (f + 2r(1 - f))`` (= ``f^2 + 2 r f (1 - f)``): every term is
    non-negative, so nothing cancels and g keeps full relative precision as f -> 0.
    """
    return f * torch.addcmul(f, r, 1.0 - f, value=2.0)


def master_gate(f: Tensor, m: Tensor) -> Tensor:
    """The master gate's effective forget gate (PAPER.md section 3, ``M``).

    ``g = m^2 + m * (1 - m) * f = m * (m + (1 - m) * f)``, which lies in ``[m^2, m]``.
    This is Ordered Neurons' effective forget gate ``f_hat = f * w + (m - w)`` with the
    overlap ``w = m * i_m`` once the master input gate is tied to the master forget gate,
    ``i_m = 1 - m`` (Shen et al. 2019, eqs. 12-14, with the tied update of PAPER.md section 1).
    """
    return m * torch.addcmul(m, 1.0 - m, f)


def cumax(z: Tensor, dim: int = -1) -> Tensor:
    """Cumulative softmax ``cumsum(softmax(z))`` along ``dim`` (Shen et al. 2019, eq. 6).

    Non-decreasing along ``dim`` and ending at 1 (up to rounding).
    """
    return torch.cumsum(torch.softmax(z, dim=dim), dim=dim)


def chunked_cumax(z: Tensor, chunk_size: int, dim: int = -1) -> Tensor:
    """Ordered Neurons' chunked cumax: ``cumax`` of ``d / chunk_size`` logits, each repeated ``chunk_size`` times.

    Args:
        z: logits with ``d / chunk_size`` entries along ``dim``.
        chunk_size: how many consecutive hidden units share one master-gate value.
    Returns:
        A gate with ``d`` entries along ``dim``, non-decreasing and ending at 1.
    """
    out = cumax(z, dim=dim)
    return out if chunk_size == 1 else torch.repeat_interleave(out, chunk_size, dim=dim)


def _uniform(hidden_size: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    """``hidden_size`` float64 draws from ``U[low, high]``."""
    u = torch.rand(hidden_size, generator=generator, dtype=torch.float64)
    return low + (high - low) * u


def uniform_gate_bias(hidden_size: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform gate initialisation (UGI, PAPER.md section 2, ``U``): ``b_f = logit(v)``, ``v ~ U[1/d, 1 - 1/d]``.

    One draw per unit, so ``sigmoid(b_f)`` is uniform on ``[1/d, 1 - 1/d]`` and
    ``|b_f| <= log(d - 1)``. Returns a float32 tensor ``[d]``.
    """
    if hidden_size < 2:
        raise ValueError(f"uniform_gate_bias needs hidden_size >= 2 (U[1/d, 1 - 1/d] is empty), got {hidden_size}")
    v = _uniform(hidden_size, 1.0 / hidden_size, 1.0 - 1.0 / hidden_size, generator)
    return (torch.log(v) - torch.log1p(-v)).float()


def chrono_bias(hidden_size: int, t_max: float, generator: torch.Generator | None = None) -> Tensor:
    """Chrono initialisation (Tallec & Ollivier 2018): ``b_f = log(U[1, t_max - 1])``.

    Then ``1 / (1 - sigmoid(b_f)) = 1 + exp(b_f)`` is uniform on ``[2, t_max]``: the units'
    characteristic forgetting times cover the dependencies up to ``t_max`` steps. For the
    untied LSTM the input-gate bias is ``b_i = -b_f``. Returns a float32 tensor ``[d]``.
    """
    if not t_max >= 2:
        raise ValueError(f"chrono_bias needs t_max >= 2, got {t_max}")
    return torch.log(_uniform(hidden_size, 1.0, float(t_max) - 1.0, generator)).float()
