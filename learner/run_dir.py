"""The run folder: ``runs/<name>/`` with the resolved config, events, checkpoints and a summary.

runs/<name>/config.yaml            the resolved config (what was really run)
runs/<name>/events.out.tfevents.*  TensorBoard (a new file per start or resume)
runs/<name>/checkpoints/ckpt-<env_steps>.pt
runs/<name>/summary.json           final figures, rewritten at every checkpoint (never by poorer ones)

One owner: the driver process writes every file of the run folder, checkpoints included (a
learner on another node hands its state over as bytes, ``write_checkpoint`` puts them in place).
Run folders are absolute paths resolved in the driver (``resolve_run_path``), never relative to
the working directory of a Ray worker, which is a temporary copy of the project.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT = re.compile(r"ckpt-(\d+)\.pt$")
# Ray sets this in the driver of a job run by ``ray job submit``, whose working directory is
# Ray's temporary copy of the project (deleted with the session).
JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# Where relative run paths of a submitted job resolve; default ``~/gatedrl`` on the driver's node.
HOME_ENV = "GATEDRL_HOME"
DEFAULT_JOB_HOME = "~/gatedrl"

log = logging.getLogger(__name__)


def default_run_name(env_id: str, cell: str, gate: str) -> str:
    """``<env>-<cell>-<gate>-<date>-<time>``, readable in a folder listing and unique per second."""
    env = re.sub(r"[^A-Za-z0-9]+", "_", env_id).strip("_")
    return f"{env}-{cell}-{gate}-{time.strftime('%Y%m%d-%H%M%S')}"


def in_submitted_job(environ: Mapping[str, str]) -> bool:
    return JOB_ENV in environ


def job_home(environ: Mapping[str, str]) -> Path:
    """The persistent folder that relative run paths of a submitted job resolve against."""
    return Path(environ.get(HOME_ENV) or DEFAULT_JOB_HOME).expanduser().resolve()


def resolve_run_path(path: str | os.PathLike, environ: Mapping[str, str], cwd: Path | None = None) -> Path:
    """An absolute run path (``run.log_dir``, ``--resume``, ``--eval``) for the driver to own.

    Absolute paths (after ``~``) stay as they are: shared storage that every node reaches.
    Relative ones resolve against the driver's working directory, except inside a submitted job,
    where that directory is temporary: there they resolve against ``job_home`` (``$GATEDRL_HOME``,
    else ``~/gatedrl``), so ``runs`` means ``~/gatedrl/runs`` on the node running the job's driver.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path.resolve()
    base = job_home(environ) if in_submitted_job(environ) else Path(cwd or Path.cwd())
    return (base / path).resolve()


def write_checkpoint(path: Path, data: bytes) -> None:
    """Write a checkpoint's bytes atomically: a temporary file in the same folder, fsync, rename.

    ``os.replace`` is atomic on POSIX, so a crash (or a lost node) leaves the old file or the
    new one, never half of one; ``latest_checkpoint`` ignores the hidden temporary name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def checkpoint_path(run_dir: Path, env_steps: int) -> Path:
    # Zero-padded so that names also sort by step count.
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt-{env_steps:012d}.pt"


def checkpoint_env_steps(path: Path) -> int:
    """The environment steps a checkpoint was taken at, read from its name."""
    match = _CHECKPOINT.search(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint name (ckpt-<env_steps>.pt)")
    return int(match.group(1))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the most environment steps, or None when there is none."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("ckpt-*.pt") if (m := _CHECKPOINT.search(p.name))]
    return max(found)[1] if found else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = sorted(p for p in folder.glob("ckpt-*.pt") if _CHECKPOINT.search(p.name))
    for old in found[:-keep]:
        old.unlink(missing_ok=True)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> bool:
    """Write ``summary.json`` unless the one there saw more; True when written.

    A resumed run that stops before its first update has no episodes of its own: its summary
    must not replace the figures of the run it continues.
    """
    path = Path(run_dir) / SUMMARY_FILE
    old = _read_or_none(path)
    if old is not None and _extent(summary) < _extent(old):
        log.warning("kept %s: it covers %s (env steps, episodes, has a mean return), the new one only %s",
                    path, _extent(old), _extent(summary))  # fmt: skip
        return False
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a reader never sees half a file
    return True


def _extent(summary: dict[str, Any]) -> tuple[int, int, bool]:
    """How much a summary covers, compared in this order: env steps, episodes, whether it has a mean return."""
    return summary.get("env_steps") or 0, summary.get("episodes") or 0, summary.get("mean_return") is not None


def _read_or_none(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # none yet, or a broken one: the new summary replaces it
    return data if isinstance(data, dict) else None


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
