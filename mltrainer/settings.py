"""Where mltrainer keeps its data: one per-user folder, overridable with ``MLTRAINER_HOME``."""

from __future__ import annotations

import os
import re
from pathlib import Path

HOME_ENV = "MLTRAINER_HOME"
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def home() -> Path:
    """The data directory: ``$MLTRAINER_HOME`` or the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    if override:
        path = Path(override).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("mltrainer", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return home() / "mltrainer.db"


def jobs_dir() -> Path:
    return home() / "jobs"


def job_dir(job_id: str) -> Path:
    return jobs_dir() / job_id
