"""Environments: ``make_env`` for any gymnasium id, and the project's memory tasks (``gatedrl/...``).

Importing this package registers nothing; ``make_env`` and ``validate_env_id`` call
``register_envs()`` themselves. See ``docs/envs.md`` for the tasks.
"""

from envs.factory import load_wrapper, make_env, validate_env_config
from envs.registration import TASKS, register_envs, validate_env_id

__all__ = ["TASKS", "load_wrapper", "make_env", "register_envs", "validate_env_config", "validate_env_id"]
