"""Environments: ``make_env`` for any gymnasium id, and the project's memory tasks (``gatedrl/...``).

Importing this package registers the ``gatedrl/`` ids with gymnasium, as every suite does
(``import envs; gymnasium.make("gatedrl/PassiveMatch-v0")``). ``register_envs()`` stays
idempotent, and ``make_env`` / ``validate_env_id`` still call it: a process whose registry
was rebuilt after this import (a test, an unpickled Ray worker) gets the ids back.
See ``docs/envs.md`` for the tasks.
"""

from envs.factory import load_wrapper, make_env, validate_env_config
from envs.registration import TASKS, register_envs, validate_env_id

register_envs()

__all__ = ["TASKS", "load_wrapper", "make_env", "register_envs", "validate_env_config", "validate_env_id"]
