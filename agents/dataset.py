"""Dataset: fetch the source, recognise its family, check it and write the data report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from orchestrator.context import JobContext
from orchestrator.errors import DataError

#: Downloads and local data above this size are refused unless ``data.max_bytes`` raises the cap.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Vault kinds a data source may need (private Hub sets, Kaggle).
DATA_CREDENTIALS = ("hf_token", "kaggle_username", "kaggle_key", "kaggle_api_token")
#: Spec hyperparameters that shape preprocessing (tokenizers, lengths, image size, windows).
PREPROCESSING_PARAMS = ("tokenizer", "backbone", "vocab_size", "max_length", "max_target_length", "block_size",
                        "image_size", "lags", "horizon")


def data_options(context: JobContext, task_type: str, roles: dict[str, str] | None = None) -> Any:
    """What the user said about the data: the spec's data section, the intent's columns and the
    preprocessing hyperparameters; ``roles`` (from the dataset stage) win once they are known."""
    from tools.prep import DataOptions
    from tools.prep.base import DEFAULT_SEED, DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION

    data = context.spec.get("data") or {}
    dataset = context.intent.get("dataset") or {}
    hp = {**(context.spec.get("hyperparameters") or {})}
    backbone = (context.intent.get("architecture") or {}).get("backbone")
    if backbone and "backbone" not in hp:
        hp["backbone"] = backbone
    roles = roles or {}
    return DataOptions(
        task_type=task_type,
        target=roles.get("target") or data.get("target") or context.intent.get("target") or dataset.get("target"),
        text=roles.get("text") or data.get("text") or dataset.get("text_column"),
        time=roles.get("time") or data.get("time") or dataset.get("time_column"),
        image=roles.get("image") or data.get("image") or dataset.get("image_column"),
        seed=int(hp.get("split_seed", hp.get("seed", DEFAULT_SEED))),  # split_seed: vary seed, keep the split
        val_fraction=float(hp.get("val_fraction", DEFAULT_VAL_FRACTION)),
        test_fraction=float(hp.get("test_fraction", DEFAULT_TEST_FRACTION)),
        params={k: hp[k] for k in PREPROCESSING_PARAMS if k in hp},
    )


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def check_size(path: Path, cap: int) -> None:
    """Local data is held to the same cap as downloads: a job should not start on more than asked."""
    size = size_of(path)
    if size > cap:
        raise DataError(
            f"{path.name} is {human_size(size)}, above the data cap of {human_size(cap)}; "
            "raise data.max_bytes in the spec or use a smaller sample."
        )


class DatasetAgent(BaseAgent):
    stage = "dataset"

    def _execute(self, context: JobContext) -> dict[str, Any]:
        from tools.prep import family_for, guess_task_type
        from tools.sources import fetch, hash_file

        data = context.spec.get("data") or {}
        cap = int(data.get("max_bytes") or DEFAULT_MAX_BYTES)
        # cached by content hash, so a resume reuses what was downloaded
        fetched = fetch(str(data["source"]), max_bytes=cap, credentials=self._credentials(context, data))
        path = fetched.path
        check_size(path, cap)
        task_type, reason = context.task_type, "from the request"
        if task_type is None and (guess := guess_task_type(path)) is not None:
            task_type, reason = guess
        family = family_for(task_type or "tabular_classification")
        inspection = family.inspect(path, data_options(context, task_type or ""), self.log)
        if task_type is None:
            task_type, reason = inspection.task_type, inspection.task_type_reason
            if family_for(task_type) is not family:  # the data showed another family (prose in a table)
                family = family_for(task_type)
                inspection = family.inspect(path, data_options(context, task_type), self.log)
        report = dict(inspection.report)
        report.update(
            {
                "family": report.get("family", family.name),
                "source": str(path),
                "sha256": fetched.info.get("sha256") or (hash_file(path) if path.is_file() else None),
                "fetch": fetched.info,
                "roles": inspection.roles,
                "task_type": task_type,
                "task_type_reason": reason,
            }
        )
        if inspection.roles.get("target"):
            report.setdefault("target", inspection.roles["target"])
        from orchestrator.events import DataReport
        from tools.prep.report import report_rows

        self.emit(DataReport(stage=self.stage, title=f"Data: {path.name}", rows=tuple(report_rows(report))))
        intent = {f"{role}_column": column for role, column in inspection.roles.items() if role != "target"}
        if inspection.roles.get("target"):
            intent["target"] = inspection.roles["target"]
        return {
            "data_report": report,
            "data_paths": {"source": str(path)},
            "task_type": task_type,
            "intent": intent,
            "summary": inspection.summary,
        }

    @staticmethod
    def _credentials(context: JobContext, data: dict[str, Any]) -> dict[str, str]:
        """This job's data credentials from the vault (values go to the fetcher only, never to the report)."""
        from tools.vault import Vault

        vault = Vault()
        found: dict[str, str] = {}
        for value, kind in vault.kinds_by_value(context.job_id).items():
            if kind in DATA_CREDENTIALS:
                found.setdefault(kind, value)
        if data.get("token"):
            value = vault.get(context.job_id, str(data["token"]))
            if value is None:
                raise DataError("data.token is not a credential of this job; put the token itself in the spec "
                                "(it is swapped for a reference) or set HF_TOKEN.")
            found["hf_token" if value.startswith("hf_") else "kaggle_api_token"] = value
        return found
