"""``gatedrl/CartPoleNoVelocity-v0``: CartPole-v1 with the two velocities hidden, the classic quick POMDP.

The observation keeps the cart position and the pole angle, ``[x, theta]``; the
velocities must be inferred from successive observations, so a memoryless policy
cannot balance the pole for long (sb3-contrib reports that a feed-forward agent
stays near ~50 steps), while a policy that differences two frames can reach 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

# Indices of x and theta in CartPole's state [x, x_dot, theta, theta_dot].
VISIBLE = np.array([0, 2])


class CartPoleNoVelocityEnv(CartPoleEnv):
    """CartPole whose observation is float32 ``[2] = [x, theta]``; actions, rewards and ends unchanged."""

    def __init__(self, sutton_barto_reward: bool = False, render_mode: str | None = None) -> None:
        super().__init__(sutton_barto_reward=sutton_barto_reward, render_mode=render_mode)
        high = self.observation_space.high[VISIBLE]
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return obs[VISIBLE], info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[VISIBLE], reward, terminated, truncated, info
