"""Data families as a table: task type → the module that inspects and prepares its data.

Modules are imported only when a job needs them (pandas, tokenizers and Pillow are slow to load).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from orchestrator.errors import UnsupportedError
from tools.prep.base import DataOptions, Family, Inspection, Prepared

#: task type → "module:attribute" of its Family.
FAMILIES: dict[str, str] = {
    "tabular_classification": "tools.prep.tabular:TABULAR",
    "tabular_regression": "tools.prep.tabular:TABULAR",
    "clustering": "tools.prep.clustering:CLUSTERING",
    "text_classification": "tools.prep.text:TEXT_CLASSIFICATION",
    "token_classification": "tools.prep.tokens:TOKEN_CLASSIFICATION",
    "summarization": "tools.prep.seq2seq:SEQ2SEQ",
    "translation": "tools.prep.seq2seq:SEQ2SEQ",
    "text_generation": "tools.prep.lm:LANGUAGE_MODELLING",
    "llm_finetuning": "tools.prep.lm:LANGUAGE_MODELLING",
    "image_classification": "tools.prep.image:IMAGES",
    "image_regression": "tools.prep.image:IMAGES",
    "object_detection": "tools.prep.image:IMAGES",
    "time_series_forecasting": "tools.prep.timeseries:TIME_SERIES",
}

__all__ = ["FAMILIES", "DataOptions", "Family", "Inspection", "Prepared", "family_for", "guess_task_type"]


def family_for(task_type: str) -> Family:
    """The family object that handles ``task_type``."""
    target = FAMILIES.get(task_type)
    if target is None:
        raise UnsupportedError(f"No data handling is known for task type '{task_type}'; choose another task_type.")
    module_name, attribute = target.split(":")
    family: Family = getattr(importlib.import_module(module_name), attribute)
    return family


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CONLL_SUFFIXES = {".conll", ".conllu", ".bio", ".iob", ".iob2"}
CORPUS_SUFFIXES = {".txt", ".text", ".md", ".rst"}


def guess_task_type(path: Path) -> tuple[str, str] | None:
    """A task type read off the data's shape when the user named none (None: a table, decided later).

    A folder of images → image classification; a CoNLL file → token classification; a plain-text
    file or a folder of them → text generation.
    """
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")][:2000]
        suffixes = [p.suffix.lower() for p in files]
        if files and sum(s in IMAGE_SUFFIXES for s in suffixes) > len(files) / 2:
            return "image_classification", "the source is a folder of images"
        if files and sum(s in CONLL_SUFFIXES for s in suffixes) > len(files) / 2:
            return "token_classification", "the source holds CoNLL token files"
        if files and sum(s in CORPUS_SUFFIXES for s in suffixes) > len(files) / 2:
            return "text_generation", "the source is a folder of plain-text files"
        return None
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return "token_classification", f"the source is a CoNLL-style {suffix} file"
    if suffix in CORPUS_SUFFIXES and not _looks_tabular(path):
        return "text_generation", "the source is a plain-text corpus"
    return None


def _looks_tabular(path: Path) -> bool:
    """A .txt file whose first lines split into the same number (>1) of fields is a table."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8192).decode("utf-8", errors="replace").splitlines()[:5]
    except OSError:
        return False
    for sep in (",", "\t", ";", "|"):
        counts = {line.count(sep) for line in head if line.strip()}
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False
