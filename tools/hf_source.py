"""hf:// sources: one HuggingFace dataset (a config, one split or all) written once as a local parquet file.

``hf://owner/name[:config][@split]``. Metadata comes first through ``huggingface_hub`` (repo info with
file sizes, and the Hub's ``refs/convert/parquet`` branch when the main branch has no parquet), so
unknown configs/splits and oversized selections are refused before anything is downloaded. The chosen
files are downloaded with ``hf_hub_download``, read with ``datasets.load_dataset`` (local files only)
and written to ``<cache>/hf/<owner>__<name>[__config][__split]/data.parquet``: ``ClassLabel`` columns
become their names, all splits together carry a ``__split__`` column. A later fetch at the same
revision reuses that file; when the Hub cannot be reached (or HF_HUB_OFFLINE is set) a cached copy
is used anyway (``stale``). The endpoint is ``HF_ENDPOINT`` read at call time; the token comes from
``credentials["hf_token"]`` or ``HF_TOKEN`` and never reaches the info, the cache paths or a message.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import (
    ClientError,
    CredentialError,
    DataError,
    MltrainerError,
    TransientError,
    UnsupportedError,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
CONVERT_REF = "refs/convert/parquet"
FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
PREFERENCE = ("parquet", "csv", "json")
SPLIT_KEYWORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
                  "test": ("test", "testing", "eval", "evaluation")}
SHARDED = re.compile(r"^data/(?P<split>\w+?)-\d{5}-of-\d{5}[^/]*$")
NAME = re.compile(r"^[\w.-]+$")
SPLIT_COLUMN = "__split__"
NOT_DATA = {"config.json", "dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json"}
BATCH_BYTES = 64 * 1024**2
# httpx's TransportError covers its connect/read/protocol errors; the rest are requests', urllib3's and the stdlib's
NETWORK_ERRORS = {"TransportError", "ConnectionError", "TimeoutError", "Timeout", "ChunkedEncodingError",
                  "ProtocolError", "IncompleteRead", "LocalEntryNotFoundError"}


@dataclass(frozen=True)
class HfSource:
    """A parsed ``hf://`` source."""

    repo: str
    config: str | None
    split: str | None

    def dirname(self, config: str | None) -> str:
        return "__".join([self.repo.replace("/", "__"), *(p for p in (config, self.split) if p)])


@dataclass
class _Plan:
    """What the Hub holds: config → (format, split → [(path, bytes)]), at one revision of one branch."""

    branch: str
    revision: str
    configs: dict[str, tuple[str, dict[str, list[tuple[str, int]]]]]
    default: str | None = None
    partial: bool = False
    gated: bool = False


class _Offline(Exception):
    """The Hub is off limits (HF_HUB_OFFLINE) or unreachable: a cached copy may still do."""


def parse_hf(source: str) -> HfSource:
    """``hf://owner/name[:config][@split]`` (also ``hf://datasets/owner/name…``) → its parts."""
    body = source.split("://", 1)[1].strip().strip("/")
    found = re.fullmatch(r"(?P<repo>[^:@]+)(?::(?P<config>[^:@]+))?(?:@(?P<split>[^:@]+))?", body)
    parts = found.group("repo").strip("/").split("/") if found else []
    if len(parts) == 3 and parts[0] == "datasets":
        parts = parts[1:]
    names = [*parts, *(found.group(g) for g in ("config", "split") if found and found.group(g))]
    if not found or len(parts) not in (1, 2) or not all(NAME.match(n) for n in names):
        raise DataError(f"{source} is not a valid Hugging Face source; write hf://owner/name, optionally "
                        "followed by :config and/or @split.")
    return HfSource("/".join(parts), found.group("config"), found.group("split"))


def fetch_hf(source: str, cache: Path, max_bytes: int, timeout: float, *,
             credentials: Mapping[str, str] | None = None) -> Any:
    """The ``hf`` handler of :func:`tools.sources.fetch`: returns a FetchedData for the written parquet."""
    from tools.sources import FetchedData, _atomic_write, hash_file

    want = parse_hf(source)
    missing = next((m for m in ("huggingface_hub", "datasets") if importlib.util.find_spec(m) is None), None)
    if missing:  # say so now rather than half-way through
        raise UnsupportedError(f"hf:// sources need {missing}; install it with pip install datasets.")
    token = ((credentials or {}).get("hf_token") or os.environ.get("HF_TOKEN")
             or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip() or None
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    try:
        plan = _plan(want, endpoint, token, timeout)
    except _Offline as why:
        stale = _cached(cache, want, want.config)
        if stale is not None:  # an offline resume goes on with what it fetched before
            return FetchedData(stale[0], {**stale[1], "source": source, "cached": True, "stale": True})
        raise _unreachable(source, endpoint, str(why)) from None
    config, splits = _select(plan, want)
    hit = _cached(cache, want, config)
    if hit is not None and hit[1].get("revision") == plan.revision:
        return FetchedData(hit[0], {**hit[1], "source": source, "cached": True})
    fmt, files = plan.configs[config]
    chosen = {s: files[s] for s in splits}
    total = sum(size for parts in chosen.values() for _, size in parts)
    if total > max_bytes:
        named = f"hf://{want.repo}{':' + config if want.config else ''}@<split>"
        what, hint = (f"split {want.split}", "") if want.split else (f"all {len(splits)} splits",
                                                                     f" or pick one split ({named})")
        raise DataError(f"{source} ({what}) is {total:,} bytes, over the {max_bytes:,}-byte limit; raise "
                        f"data.max_bytes{hint}.")
    if plan.gated and not token:
        raise CredentialError(f"{source} is gated; accept its conditions at {endpoint}/datasets/{want.repo} and add a "
                              "Hugging Face token (HF_TOKEN) with access, then resume.")
    folder = cache / "hf" / want.dirname(config if want.config else None)
    downloads = cache / "hf" / ".downloads" / folder.name
    try:
        with _quiet(), _hub_errors(source, endpoint, bool(token)):
            local = {s: _download(want.repo, parts, plan.revision, endpoint, token, downloads, timeout)
                     for s, parts in chosen.items()}
    except _Offline as why:
        raise _unreachable(source, endpoint, str(why)) from None
    got = sum(p.stat().st_size for paths in local.values() for p in paths)
    if got > max_bytes:
        shutil.rmtree(downloads, ignore_errors=True)
        raise DataError(f"{source} downloaded {got:,} bytes, over the {max_bytes:,}-byte limit; raise data.max_bytes "
                        "or pick one split.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)  # it would describe an older revision than what follows
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=folder))
    path = folder / "data.parquet"
    try:
        with _quiet():
            rows, features, labels = _write(source, local, fmt, split_column=want.split is None, out=path, work=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)  # the parquet written above is what a resume reuses
    info = {"source": source, "scheme": "hf", "repo": want.repo, "config": config, "split": want.split,
            "splits": rows, "available_splits": list(files), "configs": list(plan.configs),
            "revision": plan.revision, "branch": plan.branch, "partial": plan.partial, "format": fmt,
            "files": [p for parts in chosen.values() for p, _ in parts], "download_bytes": got,
            "bytes": path.stat().st_size, "sha256": hash_file(path), "content_type": "application/vnd.apache.parquet",
            "features": features, "label_columns": labels}
    _atomic_write(folder / "meta.json", json.dumps(info, indent=1).encode())
    return FetchedData(path, {**info, "cached": False})


def _unreachable(source: str, endpoint: str, why: str) -> MltrainerError:
    if why == "offline":
        return DataError(f"{source} is not in the local cache and HF_HUB_OFFLINE is set; unset HF_HUB_OFFLINE and "
                         "resume.")
    return TransientError(f"Could not reach the Hub at {endpoint} for {source} ({why}); check the network and resume.")


def _cached(cache: Path, want: HfSource, config: str | None) -> tuple[Path, dict[str, Any]] | None:
    """The parquet written by an earlier fetch of this source (and config, when known), with its info."""
    folder = cache / "hf" / want.dirname(config if want.config else None)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    path = folder / "data.parquet"
    if not path.is_file() or path.stat().st_size != meta.get("bytes"):
        return None
    return (path, meta) if config is None or meta.get("config") == config else None


# ---------------------------------------------------------------- metadata

def _plan(want: HfSource, endpoint: str, token: str | None, timeout: float) -> _Plan:
    """Ask the Hub what the repo holds: main-branch parquet, else the parquet conversion, else csv/json."""
    if _offline():
        raise _Offline("offline")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token or False, library_name="mltrainer")
    with _quiet(), _hub_errors(f"hf://{want.repo}", endpoint, bool(token)):
        info = api.dataset_info(want.repo, files_metadata=True, timeout=timeout, token=token or False)
    card = _card(info)
    sizes = {s.rfilename: (s.lfs.size if getattr(s, "lfs", None) else s.size) or 0 for s in info.siblings or []}
    main = _main_plan(sizes, card, info.sha or "main")
    converted = None
    if main is None or any(fmt != "parquet" for fmt, _ in main.configs.values()):
        try:
            with _quiet(), _hub_errors(f"hf://{want.repo}", endpoint, bool(token)):
                converted = _convert_plan(api, want.repo, token)
        except (DataError, ClientError, TransientError, _Offline):
            if main is None:
                raise
    plan = converted if converted is not None and not (converted.partial and main is not None) else main
    if plan is None:
        raise DataError(f"hf://{want.repo} has no data files this tool can read (parquet, csv or json) and no parquet "
                        "conversion on the Hub; download it yourself and use the file's path.")
    plan.gated = bool(getattr(info, "gated", False))
    return plan


def _card(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    if card is None:
        return {}
    return dict(card.to_dict() if hasattr(card, "to_dict") else card)


def _main_plan(sizes: dict[str, int], card: dict[str, Any], sha: str) -> _Plan | None:
    """Configs and splits of the main branch, from the card's ``configs`` or the datasets library's naming rules."""
    data = {p: n for p, n in sizes.items() if _format(p) and p.rsplit("/", 1)[-1] not in NOT_DATA
            and not any(s.startswith(".") for s in p.split("/"))}
    configs: dict[str, tuple[str, dict[str, list[tuple[str, int]]]]] = {}
    default = None
    for entry in card.get("configs") or []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("config_name") or "default")
        prefix = str(entry.get("data_dir") or "").strip("/")
        scoped = {p: n for p, n in data.items() if not prefix or p.startswith(prefix + "/")}
        patterns = _patterns(entry.get("data_files"))
        splits = {s: [(p, scoped[p]) for p in sorted(scoped) if any(_matches(p, pat, prefix) for pat in pats)]
                  for s, pats in patterns.items()} if patterns else _infer_splits(scoped)
        best = _best_format(splits)
        if best:
            configs[name] = best
            default = name if entry.get("default") else default
    if not card.get("configs"):
        best = _best_format(_infer_splits(data))
        if best:
            configs["default"] = best
    return _Plan("main", sha, configs, default) if configs else None


def _convert_plan(api: Any, repo: str, token: str | None) -> _Plan | None:
    """The Hub's own parquet export (``refs/convert/parquet``: ``<config>/<split>/NNNN.parquet``)."""
    refs = api.list_repo_refs(repo, repo_type="dataset", token=token or False)
    ref = next((r for r in refs.converts or [] if r.ref == CONVERT_REF or r.name == "parquet"), None)
    if ref is None:
        return None
    configs: dict[str, dict[str, list[tuple[str, int]]]] = {}
    partial = False
    for entry in api.list_repo_tree(repo, recursive=True, revision=ref.target_commit, repo_type="dataset",
                                    token=token or False):
        path = entry.path
        if not path.endswith(".parquet") or not hasattr(entry, "blob_id"):
            continue
        parts = path.split("/")
        if len(parts) == 3:
            split = parts[1]
        elif len(parts) == 2 and (m := re.match(r".*-(\w+?)(-\d{5}-of-\d{5})?\.parquet$", parts[1])):
            split = m.group(1)
        else:
            continue
        partial = partial or split.startswith("partial-")
        size = entry.lfs.size if getattr(entry, "lfs", None) else entry.size
        configs.setdefault(parts[0], {}).setdefault(split.removeprefix("partial-"), []).append((path, size or 0))
    ordered = {c: ("parquet", _ordered({s: sorted(f) for s, f in splits.items()})) for c, splits in configs.items()}
    return _Plan(CONVERT_REF, ref.target_commit, ordered, None, partial) if ordered else None


def _patterns(spec: Any) -> dict[str, list[str]]:
    """A card's ``data_files`` (a pattern, a list, or ``[{split, path}]``) → split → patterns."""
    if isinstance(spec, str):
        return {"train": [spec]}
    if isinstance(spec, list) and all(isinstance(s, str) for s in spec):
        return {"train": list(spec)} if spec else {}
    out: dict[str, list[str]] = {}
    for item in spec or []:
        if isinstance(item, dict) and item.get("split"):
            paths = item.get("path") or []
            out.setdefault(str(item["split"]), []).extend([paths] if isinstance(paths, str) else list(paths))
    return out


def _matches(path: str, pattern: str, prefix: str) -> bool:
    pattern = pattern.removeprefix("./")
    pattern = f"{prefix}/{pattern}" if prefix and not pattern.startswith(prefix + "/") else pattern
    return fnmatch.fnmatchcase(path, pattern) or path.startswith(pattern.rstrip("/") + "/")


def _infer_splits(data: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """The datasets library's default split naming: sharded ``data/<split>-…``, then split keywords in
    folder names, then in file names, else everything is ``train``."""
    found: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(data):
        if m := SHARDED.match(path):
            found.setdefault(m.group("split"), []).append((path, data[path]))
    if found:
        return _ordered(found)
    for in_dirs in (True, False):
        for path in sorted(data):
            parts = path.lower().split("/")
            words = {w for part in (parts[:-1] if in_dirs else parts[-1:]) for w in re.split(r"[-._ 0-9]+", part)}
            split = next((s for s, keys in SPLIT_KEYWORDS.items() if words & set(keys)), None)
            if split:
                found.setdefault(split, []).append((path, data[path]))
        if found:
            return _ordered(found)
    return {"train": [(p, data[p]) for p in sorted(data)]} if data else {}


def _ordered(splits: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    first = [s for s in SPLIT_KEYWORDS if s in splits]
    return {s: splits[s] for s in [*first, *sorted(set(splits) - set(first))]}


def _best_format(splits: dict[str, list[tuple[str, int]]]) -> tuple[str, dict[str, list[tuple[str, int]]]] | None:
    for fmt in PREFERENCE:
        kept = {s: [f for f in files if _format(f[0]) == fmt] for s, files in splits.items()}
        kept = {s: files for s, files in kept.items() if files}
        if kept:
            return fmt, kept
    return None


def _format(path: str) -> str | None:
    return next((fmt for suffix, fmt in FORMATS.items() if path.lower().endswith(suffix)), None)


def _select(plan: _Plan, want: HfSource) -> tuple[str, list[str]]:
    """The config and splits asked for, or a DataError listing what there is."""
    names = list(plan.configs)
    config = want.config
    if config is not None and config not in plan.configs:
        raise DataError(f"hf://{want.repo} has no config '{config}'; available configs: {', '.join(names)}.")
    if config is None:
        config = plan.default or ("default" if "default" in names else names[0] if len(names) == 1 else None)
        if config is None:
            raise DataError(f"hf://{want.repo} has several configs ({', '.join(names)}); pick one as "
                            f"hf://{want.repo}:<config>.")
    splits = list(plan.configs[config][1])
    if want.split is not None and want.split not in splits:
        where = f" (config {config})" if len(names) > 1 else ""
        raise DataError(f"hf://{want.repo} has no split '{want.split}'{where}; available splits: {', '.join(splits)}.")
    return config, [want.split] if want.split else splits


# ---------------------------------------------------------------- download, load, write

def _download(repo: str, parts: list[tuple[str, int]], revision: str, endpoint: str, token: str | None,
              where: Path, timeout: float) -> list[Path]:
    if _offline():
        raise _Offline("offline")
    from huggingface_hub import hf_hub_download

    return [Path(hf_hub_download(repo, path, repo_type="dataset", revision=revision, cache_dir=where,
                                 endpoint=endpoint, token=token or False, etag_timeout=timeout))
            for path, _ in parts]


def _write(source: str, local: dict[str, list[Path]], fmt: str, *, split_column: bool, out: Path,
           work: Path) -> tuple[dict[str, int], dict[str, Any], list[str]]:
    """Load each split with ``datasets`` and stream them into one parquet file, label ids → names."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    loaded: dict[str, Any] = {}
    try:
        for split, paths in local.items():
            tsv = {"delimiter": "\t"} if all(p.name.lower().endswith(".tsv") for p in paths) else {}
            # loaded under a neutral name: datasets' split-name rules need not hold for the Hub's names
            loaded[split] = datasets.load_dataset(fmt, data_files={"train": [str(p) for p in paths]}, split="train",
                                                  cache_dir=str(work), **tsv)
        tagged = {s: s if split_column else None for s in loaded}
        schemas = [_convert(ds.data.table.slice(0, 0), _labels(ds.features), tagged[s]).schema
                   for s, ds in loaded.items()]
        schema = pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else schemas[0]
        with pq.ParquetWriter(work / out.name, schema) as writer:
            for split, ds in loaded.items():
                labels = _labels(ds.features)
                rows = max(1_000, min(100_000, BATCH_BYTES * max(ds.num_rows, 1) // max(ds.data.nbytes, 1)))
                for batch in ds.with_format("arrow").iter(batch_size=rows):
                    writer.write_table(_conform(_convert(batch, labels, tagged[split]), schema))
        os.replace(work / out.name, out)
    except MltrainerError:
        raise
    except Exception as err:
        text = (str(err).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{source} was downloaded but could not be read as {fmt} ({type(err).__name__}: {text}); "
                        "check the dataset's files.") from None
    first = next(iter(loaded.values())).features
    return {s: ds.num_rows for s, ds in loaded.items()}, first.to_dict(), list(_labels(first))


def _labels(features: Any) -> dict[str, tuple[str, list[str]]]:
    """Columns holding ``ClassLabel`` ids (``scalar``) or lists of them (``list``) → their names."""
    from datasets import ClassLabel

    found = {}
    for name, feature in features.items():
        if isinstance(feature, ClassLabel):
            found[name] = ("scalar", list(feature.names))
        elif isinstance(getattr(feature, "feature", None), ClassLabel):
            found[name] = ("list", list(feature.feature.names))
    return found


def _convert(table: Any, labels: dict[str, tuple[str, list[str]]], split: str | None) -> Any:
    """Label ids → names (-1 and out-of-range ids → null), plus the ``__split__`` column; drops the
    datasets schema metadata, which would still call these columns ClassLabel."""
    import pyarrow as pa

    for name, (kind, names) in labels.items():
        if name not in table.column_names:
            continue
        if kind == "scalar":
            column = pa.chunked_array([_names(chunk, names) for chunk in table.column(name).chunks], pa.string())
        else:  # lists of labels are short: plain Python is fast enough and handles every list layout
            lookup = dict(enumerate(names))
            column = pa.array([None if row is None else [lookup.get(i) for i in row]
                               for row in table.column(name).to_pylist()], pa.list_(pa.string()))
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, column.type), column)
    if split is not None:
        table = table.append_column(SPLIT_COLUMN, pa.array([split] * table.num_rows, pa.string()))
    return table.replace_schema_metadata(None)


def _names(ids: Any, names: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.cast(ids, pa.int64())
    valid = pc.and_(pc.greater_equal(ids, 0), pc.less(ids, len(names)))
    return pa.array(names, pa.string()).take(pc.if_else(valid, ids, pa.scalar(None, pa.int64())))


def _conform(table: Any, schema: Any) -> Any:
    """Give a split's batch the unified schema (columns another split lacks become nulls)."""
    import pyarrow as pa

    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


# ---------------------------------------------------------------- errors and small helpers

def _offline() -> bool:
    """HF_HUB_OFFLINE as set now, or as huggingface_hub read it at import."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars or library warnings on the user's terminal while we fetch (restored after)."""
    import datasets
    import huggingface_hub.utils as hub

    hub_on, ds_on = not hub.are_progress_bars_disabled(), not datasets.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hub_on:
            hub.disable_progress_bars()
        if ds_on:
            datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        try:
            yield
        finally:
            datasets.logging.set_verbosity(verbosity)
            if hub_on:
                hub.enable_progress_bars()
            if ds_on:
                datasets.enable_progress_bars()


@contextlib.contextmanager
def _hub_errors(source: str, endpoint: str, has_token: bool) -> Iterator[None]:
    """huggingface_hub / httpx / requests failures → one-sentence errors (no library traceback)."""
    try:
        yield
    except (MltrainerError, _Offline):
        raise
    except Exception as err:
        translated = _translate(err, source, endpoint, has_token)
        if translated is None:
            raise
        raise translated from None


def _translate(err: BaseException, source: str, endpoint: str, has_token: bool) -> Exception | None:
    """Classify by class names along the cause chain (huggingface_hub wraps, and renames across versions)."""
    chain: list[BaseException] = [err]
    while len(chain) < 6 and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    kinds = {cls.__name__ for e in chain for cls in type(e).__mro__}
    status = next((code for e in chain if isinstance(code := getattr(getattr(e, "response", None), "status_code",
                                                                      None), int)), None)
    page = f"{endpoint}/datasets/{source.removeprefix('hf://').split(':')[0].split('@')[0]}"
    network = [type(e).__name__ for e in chain if {c.__name__ for c in type(e).__mro__} & NETWORK_ERRORS]
    if "OfflineModeIsEnabled" in kinds:
        return _Offline("offline")
    if "GatedRepoError" in kinds:
        return CredentialError(f"{source} is gated and your Hugging Face token has no access yet; accept its conditions "
                               f"at {page} (or use a token that has access) and resume." if has_token else
                               f"{source} is gated; accept its conditions at {page} and add a Hugging Face token "
                               "(HF_TOKEN) with access, then resume.")
    if "RepositoryNotFoundError" in kinds and (status != 401 or has_token):
        return DataError(f"{source} was not found on the Hub (or your token cannot see it); check the id.")
    if "RepositoryNotFoundError" in kinds:  # anonymous 401: the Hub does not say whether it is missing or private
        return CredentialError(f"{source} was not found on the Hub or is private or gated; check the id, or add a "
                               "Hugging Face token (HF_TOKEN) with access to it.")
    if "RevisionNotFoundError" in kinds:
        return DataError(f"{source} has no such revision on the Hub; check the source.")
    if status == 401 and has_token:
        return CredentialError(f"The Hub rejected the Hugging Face token for {source} (401); create a new one at "
                               f"{TOKENS_PAGE} and add it.")
    if status in (401, 403):
        return CredentialError(f"{source} is private or gated; add a Hugging Face token (HF_TOKEN) with access to it "
                               f"(request access at {page}).")
    if status is not None and (status >= 500 or status in (408, 429)):
        return TransientError(f"Could not reach the Hub for {source} (HTTP {status}); check the network and resume.")
    if status == 404:
        return TransientError(f"A file of {source} disappeared from the Hub while fetching; fetch again.")
    if status is not None:
        return ClientError(f"The Hub refused a request for {source} (HTTP {status}); check the source.")
    if network:
        return _Offline(network[-1])
    if "HFValidationError" in kinds:
        return DataError(f"{source} is not a valid Hugging Face dataset id; write hf://owner/name.")
    if any(type(e).__module__.split(".")[0] in ("huggingface_hub", "httpx", "requests", "urllib3") for e in chain):
        return TransientError(f"Fetching {source} from the Hub failed ({type(err).__name__}); try again.")
    return None
