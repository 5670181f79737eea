"""Deploy: publish the export folder to the spec's target — a local folder, or the HuggingFace Hub
(model repo, optionally a Gradio demo Space). The export folder itself is never changed, so a
failed push loses nothing and ``mltrainer resume`` simply pushes again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import CredentialError, UnsupportedError


class DeployAgent(BaseAgent):
    stage = "deploy"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        target = context.spec.get("deploy") or {}
        if target.get("target") == "hub":
            return self._hub(context)
        if target.get("target") != "local":
            raise UnsupportedError(f"Deploy target {target.get('target')!r} is not available; use 'local' or 'hub'.")
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

    def _hub(self, context: JobContext) -> dict[str, Any]:
        from mltrainer import settings
        from mltrainer.store import Store
        from tools.hub_publish import hub_token, publish

        token = hub_token(context)
        if not token:  # the plan skips the stage then; a token removed since is said the same way
            raise CredentialError("No HuggingFace write token for the push (set HF_TOKEN or run 'hf auth login'); "
                                  "the export is kept, resume after adding one.")
        store = Store(settings.db_path())
        try:
            known = store.get_job(context.job_id) is not None  # a job run against another store keeps no ledger row
            published = publish(context, Path(context.artifacts["export_dir"]), token=token,
                                store=store if known else None, log=self.log)
        finally:
            store.close()
        where = published.url + (f" (demo: {published.space_url})" if published.space_url else "")
        return {"deployed_urls": published.urls,
                "artifacts": {"hub_repo": published.repo_id, "hub_commit": published.commit},
                "summary": f"published to {where}; {published.check}"}
