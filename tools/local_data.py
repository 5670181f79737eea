"""Read a local table (CSV/TSV/JSON/JSONL/parquet) and describe it; bad files get one sentence."""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DataError, UnsupportedError

if TYPE_CHECKING:
    import pandas as pd

TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
FALLBACK_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
#: A well-formed multi-byte UTF-8 sequence (2-4 bytes); single-byte encodings rarely produce one.
UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


SNIFF_BYTES = 65536
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}


def _read_excel(path: Path) -> pd.DataFrame:
    """The first sheet of a workbook (pandas needs openpyxl for it, an optional extra)."""
    import pandas as pd

    try:
        return pd.read_excel(path, sheet_name=0)
    except ImportError:
        raise UnsupportedError(f"Reading {path.name} needs the openpyxl package; install mltrainer[excel] "
                               "or save the sheet as CSV.") from None
    except Exception as err:  # openpyxl/xlrd raise many types for a broken workbook
        raise DataError(f"{path.name} is not a readable Excel workbook ({type(err).__name__}); "
                        "open it and save it again, or save the sheet as CSV.") from None


def _is_utf8(path: Path) -> bool:
    """Whether the whole file is UTF-8, read in chunks (nothing kept); refuses binary junk early."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        if b"\x00" in head:
            return False  # _decode names the NUL byte
        chunk = head
        while chunk:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
            chunk = handle.read(1 << 20)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _decode(path: Path, raw: bytes) -> tuple[str, str]:
    """Decode text, refusing binary junk; returns (text, encoding)."""
    head = raw[:65536]
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise DataError(
            f"{path.name} contains binary bytes (a NUL at byte {offset}), so it is not a text table; "
            "export it again as a UTF-8 CSV."
        )
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        first_error = err
    valid_utf8 = UTF8_MULTIBYTE.search(raw)
    if valid_utf8 is not None:
        # Real UTF-8 sequences next to bytes that are not UTF-8: two files pasted together, or an
        # editor that saved part of it in another encoding. Guessing one would garble the other.
        raise DataError(
            f"{path.name} mixes text encodings (UTF-8 at byte {valid_utf8.start()}, but byte "
            f"0x{raw[first_error.start]:02x} at offset {first_error.start} is not UTF-8); save the whole file as UTF-8."
        )
    text = raw.decode("cp1252", errors="replace")
    control = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\r\n\t")
    if "\ufffd" in text or control > 0:
        raise DataError(
            f"{path.name} is not UTF-8 text (invalid byte 0x{raw[first_error.start]:02x} at offset "
            f"{first_error.start}) and does not decode as Windows-1252 either; save it as UTF-8."
        )
    return text, "cp1252"


def load_table(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a table from disk with the format sniffed from its suffix and content."""
    import pandas as pd

    if not path.exists():
        raise DataError(f"The data file {path} does not exist; check data.source in the spec.")
    if path.is_dir():
        raise DataError(f"{path} is a folder; point data.source at a CSV or parquet file.")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"The data file {path.name} is empty (0 bytes); point data.source at a file with rows.")
    suffix = path.suffix.lower()
    info: dict[str, Any] = {"path": str(path), "bytes": size, "format": suffix.lstrip(".") or "csv"}
    if suffix in EXCEL_SUFFIXES:
        frame = _read_excel(path)
    elif suffix in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a broken file
            raise DataError(f"{path.name} is not a readable parquet file ({type(err).__name__}); export it again.") from err
    else:
        # A UTF-8 file is checked in chunks and parsed straight from disk, so the bytes and the
        # decoded text are never held next to the frame; anything else is decoded whole first.
        text: str | None = None
        if _is_utf8(path):
            encoding = "utf-8"
            with path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES).decode("utf-8", errors="ignore")
            if not head.strip() and size <= SNIFF_BYTES:
                raise DataError(f"The data file {path.name} has no content, only whitespace; add a header and rows.")
        else:
            text, encoding = _decode(path, path.read_bytes())
            head = text[:SNIFF_BYTES]
            if not text.strip():
                raise DataError(f"The data file {path.name} has no content, only whitespace; add a header and rows.")
        info["encoding"] = encoding
        source: Any = io.StringIO(text) if text is not None else path
        read_kw: dict[str, Any] = {} if text is not None else {"encoding": "utf-8-sig"}
        try:
            if suffix in {".jsonl", ".ndjson"}:
                frame = pd.read_json(source, lines=True, **read_kw)
            elif suffix == ".json":
                frame = pd.read_json(source, **read_kw)
            else:
                delimiter = "\t" if suffix == ".tsv" else ","
                if suffix != ".tsv":
                    try:
                        delimiter = csv.Sniffer().sniff(head[:20000], delimiters=",;\t|").delimiter
                    except csv.Error:
                        delimiter = ","
                info["delimiter"] = delimiter
                frame = pd.read_csv(source, sep=delimiter, low_memory=False, **read_kw)
        except (ValueError, pd.errors.ParserError) as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{path.name} could not be parsed as a table ({detail}); check its format.") from err
    if frame.shape[1] == 0:
        raise DataError(f"{path.name} has no columns; it needs a header row and data rows.")
    if len(frame) == 0:
        raise DataError(f"{path.name} has a header but no data rows; add rows to train on.")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, info


def leakage_suspects(frame: pd.DataFrame, target: str) -> list[str]:
    """Columns that determine the target one-to-one (a copy or a relabelling of it): a model
    trained with them looks perfect and fails on real data."""
    import pandas as pd

    import numpy as np

    # Integer codes instead of strings: the same test, without a string copy of every column.
    y_codes, y_values = pd.factorize(frame[target], use_na_sentinel=False)
    n_y = len(y_values)
    suspects = []
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        distinct = column.nunique(dropna=False)
        if distinct < 2 or distinct > max(50, len(frame) // 2) or distinct != n_y:
            continue
        x_codes, _ = pd.factorize(column, use_na_sentinel=False)
        pairs = np.unique(x_codes.astype(np.int64) * n_y + y_codes)
        if len(pairs) == distinct:
            suspects.append(name)
    return suspects


def describe(frame: pd.DataFrame, target: str | None) -> dict[str, Any]:
    """The data report later stages decide from."""
    import pandas as pd

    from tools.tabular_transform import column_kind

    columns = []
    for name in frame.columns:
        col = frame[name]
        kind, reason = column_kind(col, len(frame)) if name != target else ("target", "")
        columns.append(
            {
                "name": name,
                "dtype": str(col.dtype),
                "missing": int(col.isna().sum()),
                "unique": int(col.nunique(dropna=True)),
                "kind": kind,
                **({"note": reason} if reason else {}),
            }
        )
    report: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "duplicate_rows": int(frame.duplicated().sum()),
        "missing_cells": int(frame.isna().sum().sum()),
        "column_info": columns,
    }
    by_kind: dict[str, list[str]] = {}
    for col in columns:
        note = col.get("note", "")
        key = ("all_missing_columns" if "missing" in note else "constant_columns" if note == "constant"
               else "id_like_columns" if "id" in note or "identifier" in note else None)
        if key:
            by_kind.setdefault(key, []).append(col["name"])
    report.update(by_kind)
    text_columns = {}
    for name in frame.columns:
        col = frame[name]
        if name != target and not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            lengths = col.dropna().astype(str).str.len()
            if len(lengths) and lengths.mean() > 30:
                text_columns[name] = {"mean_chars": float(lengths.mean()), "max_chars": int(lengths.max())}
    if text_columns:
        report["text_length"] = text_columns
    if target and target in frame.columns:
        y = frame[target]
        report["leakage_suspects"] = leakage_suspects(frame, target)
        report["target"] = target
        report["target_missing"] = int(y.isna().sum())
        report["target_unique"] = int(y.nunique(dropna=True))
        if pd.api.types.is_numeric_dtype(y) and y.nunique() > 20:
            d = y.describe()
            report["target_stats"] = {k: float(d[k]) for k in ("mean", "std", "min", "max")}
        else:
            counts = y.value_counts(dropna=True).head(50)
            report["target_distribution"] = {str(k): int(v) for k, v in counts.items()}
    return report
