"""benchmarks/reference_actor_critic.py, the calibration actor-critic of docs/LEARNING.md ("Acrobot-v1")."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import reference_actor_critic as ref


def test_gae_with_lambda_one_is_the_discounted_return_to_the_episode_end_or_the_bootstrap():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    dones = np.zeros((5, 2))
    dones[2, 1] = 1.0  # env 1's episode ends after step 2
    advantages = ref.gae(rewards, dones, values, gamma=0.9, lam=1.0)
    # Written from the definition: sum of discounted rewards up to the episode's end, else bootstrapped from V_T.
    for env in range(2):
        for t in range(5):
            total, discount = 0.0, 1.0
            for k in range(t, 5):
                total += discount * rewards[k, env]
                discount *= 0.9
                if dones[k, env]:
                    break
            else:
                total += discount * values[5, env]
            np.testing.assert_allclose(advantages[t, env], total - values[t, env], rtol=1e-12)


def test_gae_with_lambda_zero_is_the_one_step_td_error():
    rng = np.random.default_rng(1)
    rewards, values, dones = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), np.zeros((4, 3))
    expected = rewards + 0.8 * values[1:] - values[:-1]
    np.testing.assert_allclose(ref.gae(rewards, dones, values, gamma=0.8, lam=0.0), expected, rtol=1e-12)


def test_shared_puts_one_torso_under_both_heads_and_separate_keeps_the_value_off_the_policy():
    obs = torch.randn(7, 4)
    for shared in (False, True):
        model = ref.ActorCritic(4, 2, shared=shared, relu=False)
        _, value = model(obs)
        value.sum().backward()
        policy_grads = [p.grad for name, p in model.named_parameters() if name.startswith(("policy.", "torso."))]
        reached = any(g is not None and g.abs().sum() > 0 for g in policy_grads)
        assert reached is shared  # only the shared torso (part of the policy's path) takes the value's gradient


def test_a_short_run_prints_and_returns_its_curve(capsys):
    args = ref.parse_args(["CartPole-v1", "--steps", "2048", "--num-envs", "2", "--num-steps", "64"])
    curve = ref.train(args)
    assert [steps for steps, _ in curve] == list(range(128, 2049, 128))
    assert all(9 <= mean <= 500 for _, mean in curve[1:])  # CartPole episodes last 9-500 steps
    assert "env steps  mean100" in capsys.readouterr().out
