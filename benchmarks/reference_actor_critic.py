"""A small feed-forward actor-critic, independent of gatedrl, to calibrate what a task asks of a learner.

When gatedrl does not learn a task, the first question is whether the task is learnable at that budget
with the field's usual settings on the same machine. This script answers it without any of gatedrl's
code: separate tanh MLPs for the policy and the value (64-64, orthogonal initialisation), vectorised
gymnasium envs, GAE, and either PPO (CleanRL's defaults for classic control: 4 envs x 128 steps, 4
epochs of 4 minibatches, clip 0.2, advantages standardised per minibatch, Adam 2.5e-4 decaying
linearly, gradient norm 0.5) or, with ``--epochs 1 --minibatches 1 --no-clip``, one A2C step per
batch. Every choice is a flag, so it can be moved one at a time towards gatedrl's (a shared network:
``--shared``; ReLU: ``--relu``). Time-limit cuts bootstrap from the value of the final observation.

    python -m benchmarks.reference_actor_critic Acrobot-v1 --seed 0 --steps 500000
    python -m benchmarks.reference_actor_critic Acrobot-v1 --epochs 1 --minibatches 1 --no-clip \\
        --num-envs 16 --num-steps 20 --lam 1 --lr 2e-3 --beta1 0 --max-grad-norm 40 --no-norm-adv

Prints the env steps, the mean return of the last 100 episodes and env steps/s, 20 times a run.
Measured with it: docs/LEARNING.md, "Acrobot-v1".
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn


def mlp(inputs: int, outputs: int, out_gain: float, relu: bool) -> nn.Sequential:
    """64-64 hidden units, orthogonal weights (gain sqrt 2, ``out_gain`` for the last layer), zero biases."""
    layers: list[nn.Module] = []
    for width_in, width_out, gain in ((inputs, 64, 2**0.5), (64, 64, 2**0.5), (64, outputs, out_gain)):
        linear = nn.Linear(width_in, width_out)
        nn.init.orthogonal_(linear.weight, gain)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU() if relu else nn.Tanh()]
    return nn.Sequential(*layers[:-1])


class ActorCritic(nn.Module):
    """Policy logits and V(s) from two MLPs, or from one torso with two linear heads (``shared``)."""

    def __init__(self, obs_size: int, num_actions: int, shared: bool, relu: bool) -> None:
        super().__init__()
        self.shared = shared
        if shared:
            self.torso = mlp(obs_size, 64, 2**0.5, relu)[:-1]  # the two hidden layers
            self.policy, self.value = nn.Linear(64, num_actions), nn.Linear(64, 1)
            nn.init.orthogonal_(self.policy.weight, 0.01)
            nn.init.orthogonal_(self.value.weight, 1.0)
            nn.init.zeros_(self.policy.bias)
            nn.init.zeros_(self.value.bias)
        else:
            self.policy, self.value = mlp(obs_size, num_actions, 0.01, relu), mlp(obs_size, 1, 1.0, relu)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.torso(obs) if self.shared else obs
        return self.policy(x), self.value(x)[..., 0]


def gae(rewards, dones, values, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates [T, N] from rewards, episode ends and values [T + 1, N]."""
    advantages, last = np.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * values[t + 1] * (1 - dones[t]) - values[t]
        last = delta + gamma * lam * (1 - dones[t]) * last
        advantages[t] = last
    return advantages


def train(args: argparse.Namespace) -> list[tuple[int, float]]:
    """Run and print the curve; returns ``[(env steps, 100-episode mean)]``."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(args.env_id) for _ in range(args.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs_size, num_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
    model = ActorCritic(obs_size, num_actions, args.shared, args.relu)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-5, betas=(args.beta1, 0.999))
    steps_per_batch, num_batches = args.num_envs * args.num_steps, args.steps // (args.num_envs * args.num_steps)
    obs, _ = envs.reset(seed=args.seed)
    episode_return, returns, curve, start = np.zeros(args.num_envs), [], [], time.time()
    for batch in range(num_batches):
        optimiser.param_groups[0]["lr"] = args.lr * (1 - batch / num_batches)
        shape = (args.num_steps, args.num_envs)
        observations = np.zeros((*shape, obs_size), np.float32)
        actions, log_probs = np.zeros(shape, np.int64), np.zeros(shape, np.float32)
        rewards, dones, values = (
            np.zeros(shape, np.float32),
            np.zeros(shape, np.float32),
            np.zeros((shape[0] + 1, shape[1]), np.float32),
        )
        for t in range(args.num_steps):
            with torch.no_grad():
                logits, value = model(torch.as_tensor(obs))
                dist = torch.distributions.Categorical(logits=logits)
                action = dist.sample()
            observations[t], actions[t], log_probs[t], values[t] = (
                obs,
                action.numpy(),
                dist.log_prob(action).numpy(),
                value.numpy(),
            )
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            episode_return += reward
            reward = reward.astype(np.float32)
            for i in np.flatnonzero(truncated & ~terminated):  # a time-limit cut: bootstrap from V(final obs)
                with torch.no_grad():
                    final = torch.as_tensor(info["final_obs"][i], dtype=torch.float32)[None]
                    reward[i] += args.gamma * model(final)[1].item()
            for i in np.flatnonzero(terminated | truncated):
                returns.append(float(episode_return[i]))
                episode_return[i] = 0.0
            rewards[t], dones[t] = reward, terminated | truncated
        with torch.no_grad():
            values[-1] = model(torch.as_tensor(obs))[1].numpy()
        advantages = gae(rewards, dones, values, args.gamma, args.lam)
        flat = [
            torch.as_tensor(x.reshape(steps_per_batch, *x.shape[2:]))
            for x in (observations, actions, log_probs, advantages, advantages + values[:-1])
        ]
        update(model, optimiser, flat, args)
        if (batch + 1) % max(1, num_batches // 20) == 0 or batch == num_batches - 1:
            env_steps, mean = (batch + 1) * steps_per_batch, float(np.mean(returns[-100:])) if returns else float("nan")
            curve.append((env_steps, mean))
            print(
                f"{env_steps:9d} env steps  mean100 {mean:9.2f}  {env_steps / (time.time() - start):6.0f} steps/s",
                flush=True,
            )
    return curve


def update(
    model: ActorCritic, optimiser: torch.optim.Optimizer, batch: list[torch.Tensor], args: argparse.Namespace
) -> None:
    """``epochs`` passes of ``minibatches`` shuffled minibatches: clipped (or plain) policy gradient, value, entropy."""
    observations, actions, old_log_probs, advantages, returns = batch
    size = len(observations) // args.minibatches
    for _ in range(args.epochs):
        order = torch.randperm(len(observations))
        for start in range(0, len(observations), size):
            index = order[start : start + size]
            logits, value = model(observations[index])
            dist = torch.distributions.Categorical(logits=logits)
            ratio = (dist.log_prob(actions[index]) - old_log_probs[index]).exp()
            advantage = advantages[index]
            if args.norm_adv:
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
            if args.clip:
                pg = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - args.clip, 1 + args.clip)).mean()
            else:
                pg = -(advantage * ratio).mean()
            value_loss = 0.5 * (value - returns[index]).square().mean()
            loss = pg + args.vf_coef * value_loss - args.ent_coef * dist.entropy().mean()
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimiser.step()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--lam", type=float, default=0.95)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--no-clip", dest="clip", action="store_const", const=None)
    parser.add_argument("--no-norm-adv", dest="norm_adv", action="store_false")
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--shared", action="store_true", help="one torso, two linear heads")
    parser.add_argument("--relu", action="store_true", help="ReLU instead of tanh")
    return parser.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
