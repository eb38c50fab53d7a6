"""The learner's optimiser and learning-rate schedule, built from ``LearnerConfig``.

RMSProp comes in two conventions that differ by where epsilon goes:

    PyTorch (``torch.optim.RMSprop``):   v <- a v + (1 - a) g^2;  p <- p - lr * g / (sqrt(v) + eps);  v_0 = 0
    TensorFlow 1 (``tf.train.RMSPropOptimizer``, used by scalable_agent's IMPALA):
                                         v <- a v + (1 - a) g^2;  m <- mu m + lr * g / sqrt(v + eps);  p <- p - m
                                         v_0 = 1 (TF1 initialises the mean square with ones)

With IMPALA's eps = 0.01 the two are far apart: inside the root, eps bounds the step by
``lr * |g| / 0.1``; outside, by ``lr * |g| / 0.01``. ``TFRMSprop`` reproduces the TF update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from configs.schema import LearnerConfig

# TF1's RMSPropOptimizer creates its "rms" slot with ones_initializer; 0 gives Keras' later behaviour.
TF_INITIAL_SQUARE_AVG = 1.0


class TFRMSprop(torch.optim.Optimizer):
    """RMSProp with TensorFlow 1's conventions: epsilon inside the square root, mean square starting at 1.

    Args:
        params: parameters (or parameter groups) to optimise.
        lr: learning rate (folded into the momentum buffer, as TF does).
        alpha: decay of the running mean square (TF's ``decay``).
        eps: added to the mean square *before* the square root.
        momentum: momentum of the step (TF's ``momentum``); 0 applies the step directly.
        initial_square_avg: the starting mean square (TF1: 1.0).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 6e-4,
        alpha: float = 0.99,
        eps: float = 0.01,
        momentum: float = 0.0,
        initial_square_avg: float = TF_INITIAL_SQUARE_AVG,
    ) -> None:
        if lr < 0 or eps <= 0 or not 0 <= alpha <= 1 or momentum < 0:
            raise ValueError(f"TFRMSprop: invalid lr={lr}, eps={eps}, alpha={alpha} or momentum={momentum}")
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "momentum": momentum,
            "initial_square_avg": initial_square_avg,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: Tensor, group: dict) -> None:
        """One TF ApplyRMSProp step for one parameter."""
        grad = param.grad
        state = self.state[param]
        if not state:
            state["square_avg"] = torch.full_like(param, group["initial_square_avg"])
            state["momentum_buffer"] = torch.zeros_like(param)
        square_avg = state["square_avg"]
        square_avg.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        step = grad / torch.sqrt(square_avg + group["eps"])
        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]
            buffer.mul_(group["momentum"]).add_(step, alpha=group["lr"])
            param.sub_(buffer)
        else:
            param.sub_(step, alpha=group["lr"])


def make_optimizer(params: Iterable[Tensor], config: LearnerConfig) -> torch.optim.Optimizer:
    """RMSProp (PyTorch or TensorFlow epsilon convention) or Adam, as ``config`` says."""
    params = list(params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, betas=tuple(config.adam_betas), eps=config.adam_eps)
    if config.optimizer != "rmsprop":
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; valid: 'rmsprop', 'adam'")
    kwargs = {
        "lr": config.learning_rate,
        "alpha": config.rmsprop_alpha,
        "eps": config.rmsprop_eps,
        "momentum": config.rmsprop_momentum,
    }
    if config.rmsprop_eps_convention == "tensorflow":
        return TFRMSprop(params, **kwargs)
    if config.rmsprop_eps_convention != "pytorch":
        raise ValueError(
            f"Unknown rmsprop_eps_convention {config.rmsprop_eps_convention!r}; valid: 'pytorch', 'tensorflow'"
        )
    return torch.optim.RMSprop(params, **kwargs)


def learning_rate_at(update: int, config: LearnerConfig, total_updates: int) -> float:
    """The learning rate of update number ``update`` (0-based): linear decay to zero over the run, or constant.

    IMPALA decays linearly to zero over the run (``polynomial_decay`` with power 1); past
    ``total_updates`` the rate stays at zero rather than going negative.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule != "linear":
        raise ValueError(f"Unknown lr_schedule {config.lr_schedule!r}; valid: 'linear', 'constant'")
    return config.learning_rate * max(0.0, 1.0 - update / max(1, total_updates))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
