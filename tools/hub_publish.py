"""Publish an export folder to the HuggingFace Hub, and optionally a Gradio demo Space.

The repo is created with ``exist_ok`` (an existing repo is not an error), the folder goes up as one
commit (the Hub applies a commit whole or not at all, and files already there with the same
content are skipped), so a push retried after any failure ends with the same repo state. The
export folder itself is never touched: the card with provenance is staged next to it, in
``hub/``. After the push every file is downloaded back at the pushed commit, compared byte for
byte, and the downloaded ``predict.py`` makes one prediction.

huggingface_hub reads ``HF_ENDPOINT`` at import, so the endpoint is passed explicitly on each call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ClientError, CredentialError, TrainingError, TransientError, UnsupportedError

if TYPE_CHECKING:
    from mltrainer.store import Store
    from orchestrator.context import JobContext

SPACE_TEMPLATE = Path(__file__).resolve().parent / "templates" / "space"
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
#: Families whose predict.py answers a piece of text (the Space's text box and the post-push check).
TEXT_FAMILIES = ("text", "lm", "seq2seq", "tokens")


@dataclass
class Published:
    repo_id: str
    url: str
    commit: str
    files: list[str]
    check: str
    space_url: str | None = None
    urls: list[str] = field(default_factory=list)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: nothing may be sent to the Hub."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_token(context: JobContext) -> str | None:
    """The job's write token: the spec's vault reference, else the user's own (HF_TOKEN, `hf auth login`)."""
    from tools.vault import REF_PATTERN, Vault, discover_credentials

    ref = str(((context.spec or {}).get("deploy") or {}).get("token") or "")
    if ref and REF_PATTERN.fullmatch(ref):
        value = Vault().get(context.job_id, ref)
        if value:
            return value
    return discover_credentials().get("hf_token")


def _endpoint() -> str:
    from tools.validators import hf_endpoint

    return hf_endpoint()


def _hub_error(err: BaseException, what: str, repo_id: str) -> Exception:
    """A huggingface_hub / httpx exception → one of our error classes, in one sentence."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return UnsupportedError("HF_HUB_OFFLINE is set, so nothing can be published; unset it and resume.")
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status in (401, 403):
            return CredentialError(f"The Hub refused {what} for {repo_id} ({status}); use a write token that may "
                                   f"write to this namespace (create one at {TOKENS_PAGE}) and resume.")
        if status == 429 or status >= 500:
            return TransientError(f"The Hub answered {status} during {what}; the export is kept, resume to push again.")
        detail = str(err).splitlines()[0][:200]
        return ClientError(f"The Hub refused {what} for {repo_id} ({status}: {detail}); check deploy.repo_id.")
    if isinstance(err, (httpx.HTTPError, OSError)):
        return TransientError(f"Could not reach the Hub during {what} ({type(err).__name__}); the export is kept, "
                              "resume to push again.")
    return err if isinstance(err, Exception) else RuntimeError(str(err))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_model(export_dir: Path, staging: Path, card: str) -> list[str]:
    """A copy of the export with the Hub card as README.md; returns the repo paths, sorted."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    (staging / "README.md").write_text(card, encoding="utf-8")
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def space_info(context: JobContext, repo_id: str, export_dir: Path) -> dict[str, Any]:
    """space.json: what the demo shows — title, input columns (tabular) and one example."""
    info: dict[str, Any] = {"title": repo_id.split("/")[-1], "description": context.raw_prompt,
                            "model_repo": repo_id, "task_type": context.task_type}
    data_dir = Path(context.data_paths.get("dir", ""))
    rows = data_dir / "test_rows.csv"
    if rows.exists():
        import pandas as pd

        target = (json.loads((data_dir / "meta.json").read_text()) if (data_dir / "meta.json").exists() else {}).get("target")
        frame = pd.read_csv(rows, nrows=3).drop(columns=[target] if target else [], errors="ignore")
        info["columns"] = list(frame.columns)
        info["numeric"] = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        info["example"] = json.loads(frame.to_json(orient="values"))
    else:
        info["example_text"] = "Hello world"
    return info


def stage_space(context: JobContext, export_dir: Path, staging: Path, repo_id: str) -> list[str]:
    """app.py + requirements.txt + space.json + README (Space metadata) + the model under model/."""
    from importlib import metadata

    try:  # pin the Space to the gradio the app was checked with here; the Hub's latest otherwise
        gradio_version: str | None = metadata.version("gradio")
    except metadata.PackageNotFoundError:
        gradio_version = None
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging / "model", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "README.md"))
    shutil.copy2(SPACE_TEMPLATE / "app.py", staging / "app.py")
    model_requirements = (export_dir / "requirements.txt").read_text().splitlines() if (export_dir / "requirements.txt").exists() else []
    lines = [f"gradio=={gradio_version}" if gradio_version else "gradio>=5", "pandas"]
    lines += [l for l in model_requirements if l.strip() and not l.startswith("gradio")]
    (staging / "requirements.txt").write_text("\n".join(dict.fromkeys(lines)) + "\n")
    (staging / "space.json").write_text(json.dumps(space_info(context, repo_id, export_dir), indent=2))
    (staging / "README.md").write_text(
        f"---\ntitle: {repo_id.split('/')[-1]} demo\nemoji: 🤖\ncolorFrom: blue\ncolorTo: green\nsdk: gradio\n"
        + (f"sdk_version: {gradio_version}\n" if gradio_version else "") + "app_file: app.py\npinned: false\n---\n\n"
        f"Demo of [{repo_id}](https://huggingface.co/{repo_id}), trained by mltrainer: {context.raw_prompt}\n")
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def sample_prediction(folder: Path, context: JobContext) -> str:
    """One prediction through ``folder``'s predict.py, in words (raises when the model cannot predict)."""
    from tools.models.base import load_predict_module

    module = load_predict_module(folder)
    data_dir = Path(context.data_paths.get("dir", ""))
    if hasattr(module, "predict_frame") and (data_dir / "test_rows.csv").exists():
        import pandas as pd

        target = json.loads((data_dir / "meta.json").read_text()).get("target") if (data_dir / "meta.json").exists() else None
        row = pd.read_csv(data_dir / "test_rows.csv", nrows=1).drop(columns=[target] if target else [], errors="ignore")
        answer = module.predict_frame(folder, row)
        return f"one test row → {json.dumps(answer.iloc[0].to_dict(), default=str)[:200]}"
    if hasattr(module, "Predictor") and (context.data_report or {}).get("family") in TEXT_FAMILIES:
        answer = module.Predictor.load(str(folder)).predict(["Hello world"])
        return f"'Hello world' → {str(answer[0])[:200]!r}"
    if hasattr(module, "Predictor"):
        module.Predictor.load(str(folder))
        return "the model loads (no sample input is kept for this task type)"
    raise TrainingError(f"{folder / 'predict.py'} has neither predict_frame nor Predictor.")


def verify(repo_id: str, commit: str, staging: Path, files: list[str], context: JobContext, *, token: str,
           endpoint: str, repo_type: str = "model") -> str:
    """Download every pushed file at ``commit``, compare it with what was staged, predict once."""
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory(prefix="mltrainer-hub-check-") as tmp:
        folder = Path(tmp) / "model"
        for name in files:
            try:
                path = Path(hf_hub_download(repo_id, name, revision=commit, repo_type=repo_type, token=token,
                                            endpoint=endpoint, cache_dir=Path(tmp) / "cache"))
            except Exception as err:  # noqa: BLE001
                raise _hub_error(err, f"downloading {name} back", repo_id) from None
            if _sha256(path) != _sha256(staging / name):
                raise TransientError(f"{name} downloaded back from {repo_id} differs from the one pushed; resume to "
                                     "push again.")
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, folder / name)
        if repo_type != "model":
            return f"{len(files)} files downloaded back intact"
        try:
            said = sample_prediction(folder, context)
        except Exception as err:  # noqa: BLE001 - any failure of the published model is reported the same way
            raise TrainingError(f"The model downloaded back from {repo_id} could not predict ({type(err).__name__}: "
                                f"{str(err)[:200]}); the export is kept.") from None
    return f"{len(files)} files downloaded back intact; {said}"


def _record(store: Store | None, context: JobContext, name: str, **values: Any) -> None:
    """The push in runtime_runs (runtime 'hub'): started before the upload, finished with the commit."""
    if store is None:
        return
    from mltrainer.store import RuntimeRun

    detail = values.pop("detail", {})
    if store.find_run(name) is None:
        store.record_run(RuntimeRun(job_id=context.job_id, stage="deploy", attempt=int(context.attempts.get("deploy", 1)),
                                    runtime="hub", name=name, detail_json=json.dumps(detail), **values))
    else:
        store.update_run(name, detail=detail, **values)


def publish(context: JobContext, export_dir: Path, *, token: str, store: Store | None = None,
            endpoint: str | None = None, log: Callable[[str], None] = lambda message: None) -> Published:
    """Create (or reuse) the repo, push the export with its card in one commit, check it by download."""
    from huggingface_hub import HfApi

    from tools.hub_card import build_card
    from tools.runtimes.base import submission_name
    from tools.runtimes.ledger import job_ledger
    from tools.validators import _token_can_write

    deploy = (context.spec or {}).get("deploy") or {}
    endpoint = (endpoint or _endpoint()).rstrip("/")
    api = HfApi(endpoint=endpoint, token=token, library_name="mltrainer")
    repo_id = str(deploy.get("repo_id") or "")
    try:
        who = api.whoami()
    except Exception as err:  # noqa: BLE001
        raise _hub_error(err, "checking the token", repo_id) from None
    if not _token_can_write(who.get("auth") or {}):
        raise CredentialError(f"The HuggingFace token of {who.get('name')} is read-only; publishing needs a write "
                              f"token (create one at {TOKENS_PAGE}) — the export is kept, resume after adding it.")
    if "/" not in repo_id:
        repo_id = f"{who.get('name')}/{repo_id}"
    private = bool(deploy.get("private", True))
    name = submission_name(context.job_id, "deploy", int(context.attempts.get("deploy", 1))) + "-hub"
    try:
        url = str(api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"))
        ledger = job_ledger(store, context.job_id) if store is not None else {}
        staging = Path(context.job_dir) / "hub" / "model"
        files = stage_model(export_dir, staging, build_card(context, export_dir, repo_id, ledger))
        _record(store, context, name, status="submitted", detail={"repo_id": repo_id, "url": url, "files": len(files)})
        info = api.upload_folder(folder_path=str(staging), repo_id=repo_id, repo_type="model",
                                 commit_message=f"mltrainer job {context.job_id}: {(context.best_metric or {}).get('model', 'model')}",
                                 commit_description=f"Export of mltrainer job {context.job_id}.")
    except (CredentialError, ClientError, TransientError, TrainingError):
        raise
    except Exception as err:  # noqa: BLE001
        raise _hub_error(err, "the upload", repo_id) from None
    commit = str(info.oid)
    _record(store, context, name, status="done", remote_id=commit, detail={"commit_url": info.commit_url})
    log(f"pushed {len(files)} files to {repo_id} in commit {commit[:10]}")
    check = verify(repo_id, commit, staging, files, context, token=token, endpoint=endpoint)
    log(f"check: {check}")
    published = Published(repo_id, url, commit, files, check)
    if deploy.get("space"):
        published.space_url = publish_space(context, export_dir, repo_id, api=api, private=private, store=store, log=log)
    published.urls = [url] + ([published.space_url] if published.space_url else [])
    return published


def publish_space(context: JobContext, export_dir: Path, repo_id: str, *, api: Any, private: bool,
                  store: Store | None = None, log: Callable[[str], None] = lambda message: None) -> str:
    """The Gradio demo: its own Space repo (``<repo>-demo``) holding app.py and a copy of the model."""
    from tools.runtimes.base import submission_name

    space_id = f"{repo_id}-demo"
    name = submission_name(context.job_id, "deploy", int(context.attempts.get("deploy", 1))) + "-space"
    staging = Path(context.job_dir) / "hub" / "space"
    try:
        url = str(api.create_repo(space_id, private=private, exist_ok=True, repo_type="space", space_sdk="gradio"))
        files = stage_space(context, export_dir, staging, repo_id)
        _record(store, context, name, status="submitted", detail={"repo_id": space_id, "url": url})
        info = api.upload_folder(folder_path=str(staging), repo_id=space_id, repo_type="space",
                                 commit_message=f"mltrainer job {context.job_id}: demo of {repo_id}")
    except Exception as err:  # noqa: BLE001
        raise _hub_error(err, "the Space upload", space_id) from None
    _record(store, context, name, status="done", remote_id=str(info.oid))
    log(f"pushed the demo Space {space_id} ({len(files)} files)")
    return url
