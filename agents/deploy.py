"""Deploy: publish the export folder to the spec's target (a local folder in this version)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import UnsupportedError


class DeployAgent(BaseAgent):
    stage = "deploy"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        target = context.spec.get("deploy") or {}
        if target.get("target") != "local":
            raise UnsupportedError(f"Deploy target {target.get('target')!r} is not available in this version; use 'local'.")
        source = Path(context.artifacts["export_dir"])
        raw = target.get("path") or f"{context.job_id}-model"
        dest = Path(raw).expanduser()
        if not dest.is_absolute():
            base = Path(context.spec_path).parent if context.spec_path else Path.cwd()
            dest = (base / dest).resolve()
        if dest.exists() and not (dest / "predict.py").exists() and any(dest.iterdir()):
            raise UnsupportedError(f"{dest} exists and is not an mltrainer export; choose an empty folder for deploy.path.")
        staging = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        return {"deployed_urls": [dest.as_uri()], "summary": f"copied to {dest}"}
