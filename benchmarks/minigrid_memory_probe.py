"""Why MiniGrid-MemoryS7 is hard: diagnostic views of the task, a supervised probe, a per-start breakdown.

In ``MiniGrid-MemoryS7-v0`` the agent sees a key or a ball in the start room, walks east along a
hallway and, at its end, steps north or south to the object that matches. Both end objects are in
view at the junction, so the right turn is the remembered cue XOR the side the key is on: neither
alone says anything. The wrappers below each remove one difficulty, so that a run can say which one
holds the agent at the guessing level (docs/LEARNING.md, "Preset measurements"):

- ``FaceCue``: the agent starts facing west, towards the cue (the task turns it east, away from it).
- ``CueAtStart``: the cue's type as a clean input (1 key, 2 ball) at the first step, 0 afterwards.
- ``CueInView``: the cue's type as a clean input at every step: nothing to remember (an oracle).

Each goes in ``env.wrappers`` before ``envs.wrappers:ActionSubset``. An override of ``env.wrappers``
replaces the preset's list, so this runs on MiniGrid's integer view; name
``minigrid.wrappers:OneHotPartialObsWrapper`` after the view to keep the preset's one-hot view::

    python run_impala.py --config configs/minigrid_memory.yaml \\
        'env.wrappers=[{path: "benchmarks.minigrid_memory_probe:CueAtStart"},
                       {path: "envs.wrappers:ActionSubset", kwargs: {actions: [0, 1, 2]}}]'

The supervised probe trains the same agent on the same observations without RL: a scripted route
(forward to the junction, as the guessing policy does) and the right turn as a label at the junction.
It counts the updates the agent needs to leave the guessing plateau when every episode's answer is
given to it, a yardstick for the reinforcement learner, which gets one reward per episode. The probe
builds ``env.wrappers`` itself (the view, ``--wrappers``, ActionSubset), so its default is the integer
view; ``--wrappers minigrid.wrappers:OneHotPartialObsWrapper`` gives the preset's one-hot view::

    python -m benchmarks.minigrid_memory_probe --view cue_at_start --seeds 0 1 2
    python -m benchmarks.minigrid_memory_probe --view cue_at_start agent.core.gate=standard

``--breakdown RUN_DIR`` reads a trained run instead: its success by the column the agent starts in
(in S7 the cue is in view at the first step only from x = 1) and how often its first action is a
turn, the look-back that the other starts need::

    python -m benchmarks.minigrid_memory_probe --breakdown runs/<name> --episodes 400
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run by path (python benchmarks/x.py): import from the project root, not from here
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import gymnasium as gym
import numpy as np
import torch

PRESET = Path(__file__).resolve().parents[1] / "configs" / "minigrid_memory.yaml"
CUE_CODES = {"key": 1, "ball": 2}  # 0: no cue shown at this step
TURN_LEFT, TURN_RIGHT, FORWARD = 0, 1, 2  # MiniGrid's action numbers (and ActionSubset [0, 1, 2]'s)
MODULE = "benchmarks.minigrid_memory_probe"  # where env.wrappers finds the wrappers, also when run as __main__


def cue_code(env: gym.Env) -> int:
    """1 if the start room holds a key, 2 for a ball (``MemoryEnv`` puts it at ``(1, height // 2 - 1)``)."""
    grid_env = env.unwrapped
    return CUE_CODES[grid_env.grid.get(1, grid_env.height // 2 - 1).type]


def right_turn(env: gym.Env) -> int:
    """The turn that leads from the junction, facing east, to the matching object: left is north."""
    grid_env = env.unwrapped
    return TURN_LEFT if grid_env.success_pos[1] < grid_env.height // 2 else TURN_RIGHT


class FaceCue(gym.Wrapper):
    """The agent starts facing west, so the cue in the start room is in view at the first step."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        _, info = self.env.reset(**kwargs)
        self.env.unwrapped.agent_dir = 2  # west; MemoryEnv starts it east, the cue behind it
        return self.env.unwrapped.gen_obs(), info


def _with_cue_space(space: gym.spaces.Dict) -> gym.spaces.Dict:
    return gym.spaces.Dict({**space.spaces, "cue": gym.spaces.Discrete(3)})


class CueAtStart(gym.Wrapper):
    """Adds ``cue``: the cue's type at the first step of an episode (1 key, 2 ball), 0 at every later one."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = _with_cue_space(env.observation_space)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        return {**obs, "cue": cue_code(self.env)}, info

    def step(self, action: Any) -> tuple[Any, ...]:
        obs, *rest = self.env.step(action)
        return ({**obs, "cue": 0}, *rest)


class CueInView(gym.ObservationWrapper):
    """Adds ``cue``: the cue's type at every step (an oracle: the task then needs no memory)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = _with_cue_space(env.observation_space)

    def observation(self, observation: dict) -> dict:
        return {**observation, "cue": cue_code(self.env)}


VIEWS = {"task": [], "face_cue": [FaceCue], "cue_at_start": [CueAtStart], "cue_in_view": [CueInView]}


class StartRecorder(gym.Wrapper):
    """Records each episode's start column and first action; the outermost wrapper, so it sees the agent's actions."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.starts: list[int] = []
        self.first_actions: list[int | None] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        result = self.env.reset(**kwargs)
        self.starts.append(int(self.env.unwrapped.agent_pos[0]))
        self.first_actions.append(None)
        return result

    def step(self, action: Any) -> tuple[Any, ...]:
        if self.first_actions[-1] is None:
            self.first_actions[-1] = int(action)
        return self.env.step(action)


def start_breakdown(env_config: Any, agent: torch.nn.Module, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Sampled episodes of a trained agent, grouped by the column it starts in (S7: the cue is in view at x = 1).

    Per start column: episodes, mean return, success (return > 0), mean length, and the share of episodes
    whose first action is a turn (the look-back; with ``ActionSubset [0, 1, 2]`` actions 0 and 1 turn).
    """
    from actors.evaluate import evaluate
    from envs.factory import make_env

    env = StartRecorder(make_env(env_config, seed))
    try:
        result = evaluate(env, agent, episodes, greedy=False, seed=seed)
    finally:
        env.close()
    starts, first_actions = env.starts[-episodes:], env.first_actions[-episodes:]  # the evaluation's own resets
    rows = []
    for start in sorted(set(starts)):
        picked = [i for i, x in enumerate(starts) if x == start]
        returns = np.array([result.returns[i] for i in picked])
        rows.append({
            "start_x": start,
            "episodes": len(picked),
            "mean_return": float(returns.mean()),
            "success": float((returns > 0).mean()),
            "mean_length": float(np.mean([result.lengths[i] for i in picked])),
            "first_action_turns": float(np.mean([first_actions[i] in (TURN_LEFT, TURN_RIGHT) for i in picked])),
        })  # fmt: skip
    return rows


def print_start_breakdown(run_dir: Path, episodes: int, seed: int = 1_000_000) -> None:
    """The breakdown of a run's newest checkpoint (its own config), as a markdown table."""
    from configs import load_config
    from envs.factory import make_env
    from learner.evaluation import load_agent
    from learner.run_dir import CONFIG_FILE

    config = load_config(Path(run_dir) / CONFIG_FILE)
    probe_env = make_env(config.env, seed)
    agent, checkpoint = load_agent(run_dir, probe_env)
    probe_env.close()
    print(f"{checkpoint}, {episodes} sampled episodes from seed {seed}")
    print("| start x | episodes | mean return | success | mean length | first action a turn |")
    print("|---|---|---|---|---|---|")
    for row in start_breakdown(config.env, agent, episodes, seed):
        print(f"| {row['start_x']} | {row['episodes']} | {row['mean_return']:.3f} | {row['success']:.2f} "
              f"| {row['mean_length']:.1f} | {row['first_action_turns']:.2f} |")  # fmt: skip


def scripted_episode(env: gym.Env) -> tuple[list[np.ndarray], list[int], int]:
    """Walk east to the junction as the guessing policy does: ``(observations, actions taken, right turn)``.

    ``env`` is a ``make_env`` environment (flat observations) of an S7 task without ``FaceCue``.
    """
    obs, _ = env.reset()
    observations, actions = [obs], []
    junction_x = env.unwrapped.success_pos[0]
    while env.unwrapped.agent_pos[0] < junction_x:
        obs, *_ = env.step(FORWARD)
        observations.append(obs)
        actions.append(FORWARD)
    return observations, actions, right_turn(env)


def episode_batch(episodes: list[tuple[list[np.ndarray], list[int], int]]) -> dict[str, torch.Tensor]:
    """Time-major agent inputs ``[T, B, ...]`` that end at every episode's junction, and the labels ``[B]``.

    Shorter episodes are padded in front with their first observation marked ``is_first``; their
    real first step is marked again, so the core starts each one afresh and the padding is forgotten.
    """
    time_steps, batch = max(len(observations) for observations, _, _ in episodes), len(episodes)
    obs = np.zeros((time_steps, batch, *np.shape(episodes[0][0][0])), np.float32)
    prev_action = np.zeros((time_steps, batch), np.int64)
    is_first = np.zeros((time_steps, batch), bool)
    for b, (observations, actions, _) in enumerate(episodes):
        pad = time_steps - len(observations)
        obs[:pad, b] = observations[0]
        obs[pad:, b] = np.stack(observations)
        is_first[: pad + 1, b] = True
        prev_action[pad + 1 :, b] = actions
    return {
        "obs": torch.as_tensor(obs),
        "prev_action": torch.as_tensor(prev_action),
        "prev_reward": torch.zeros(time_steps, batch),
        "is_first": torch.as_tensor(is_first),
        "labels": torch.as_tensor([label for _, _, label in episodes]),
    }


def supervised_probe(
    view: str,
    seed: int,
    overrides: list[str],
    batch_size: int,
    max_updates: int,
    log_every: int = 100,
    extra_wrappers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Train the preset's agent to name the right turn at the junction; report when it leaves the plateau.

    "Solved" is the first logged update whose batch loss is under 0.05 nats (guessing: ln 2 = 0.69).
    """
    from agents import Agent
    from configs import load_config
    from envs.factory import make_env

    wrappers = [{"path": f"{MODULE}:{wrapper.__name__}"} for wrapper in VIEWS[view]]
    wrappers += [{"path": path} for path in extra_wrappers]
    wrappers.append({"path": "envs.wrappers:ActionSubset", "kwargs": {"actions": [TURN_LEFT, TURN_RIGHT, FORWARD]}})
    config = load_config(str(PRESET), [*overrides, f"env.wrappers={wrappers}"])
    envs = [make_env(config.env, seed * batch_size + i) for i in range(batch_size)]
    torch.manual_seed(seed)
    agent = Agent(envs[0].observation_space, envs[0].action_space, config.agent)
    optimiser = torch.optim.Adam(agent.parameters(), lr=config.learner.learning_rate)
    start, solved_at, loss = time.perf_counter(), None, float("nan")
    for update in range(1, max_updates + 1):
        batch = episode_batch([scripted_episode(env) for env in envs])
        output, _ = agent(batch["obs"], batch["prev_action"], batch["prev_reward"], batch["is_first"],
                          agent.initial_state(batch_size))  # fmt: skip
        turn_logits = output.policy_logits[-1, :, : TURN_RIGHT + 1]
        loss_tensor = torch.nn.functional.cross_entropy(turn_logits, batch["labels"])
        optimiser.zero_grad()
        loss_tensor.backward()
        optimiser.step()
        loss = loss_tensor.item()
        if update % log_every == 0:
            accuracy = float((turn_logits.argmax(-1) == batch["labels"]).float().mean())
            print(f"  view={view} seed={seed} update {update}: loss {loss:.3f}, accuracy {accuracy:.2f}", flush=True)
            if loss < 0.05:
                solved_at = update
                break
    return {"view": view, "seed": seed, "solved_at_update": solved_at, "episodes": (solved_at or update) * batch_size,
            "final_loss": loss, "seconds": time.perf_counter() - start}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--view", choices=sorted(set(VIEWS) - {"face_cue"}), default="cue_at_start",
                        help="what the agent is shown (face_cue changes the route, so the script cannot walk it)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-updates", type=int, default=4000)
    parser.add_argument("--wrappers", nargs="*", default=[],
                        help="more env wrappers after the view, e.g. minigrid.wrappers:OneHotPartialObsWrapper")  # fmt: skip
    parser.add_argument("--breakdown", type=Path, metavar="RUN_DIR",
                        help="instead of the probe: a trained run's success by start column and first action")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=400, help="sampled episodes for --breakdown")
    parser.add_argument("overrides", nargs="*", help="config overrides of the preset, e.g. agent.core.gate=standard")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.breakdown is not None:
        print_start_breakdown(args.breakdown, args.episodes)
        return 0
    print("| view | seed | updates to loss < 0.05 | labelled episodes | final loss | seconds |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        result = supervised_probe(
            args.view, seed, args.overrides, args.batch_size, args.max_updates, extra_wrappers=tuple(args.wrappers)
        )
        solved = result["solved_at_update"] if result["solved_at_update"] is not None else f"> {args.max_updates}"
        print(f"| {result['view']} | {seed} | {solved} | {result['episodes']} | {result['final_loss']:.3f} "
              f"| {result['seconds']:.0f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
