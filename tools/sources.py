"""Fetch a data source (local path, file://, sklearn://, http(s)://, archives) into a local file.

Everything fetched lands in a content-addressed cache (``<cache>/files/<sha256>/<name>``) so a resumed
job reuses it. For URLs, ``<cache>/urls.json`` maps URL → hash and the server's validators: when the
server gave an ETag or Last-Modified, a second fetch asks with a conditional request (304 → reuse);
when it gave neither, the cached copy is reused without asking. If revalidation fails for a network
reason, the cached copy is used anyway (marked ``stale``), so an offline resume still works.
Downloads stream into ``<cache>/partial/<key>.part`` and resume with ``Range`` when the server answers
206; a file only appears under ``files/`` once it is complete and hashed. Every failure is one
sentence: ``DataError`` (the data is wrong), ``TransientError`` (retry), ``ClientError`` (other 4xx),
``UnsupportedError`` (a scheme this module does not handle).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import IO, Any

from orchestrator.errors import ClientError, DataError, TransientError, UnsupportedError

CHUNK = 1 << 20
MAX_MEMBERS = 10_000
STREAM_TRIES = 3  # a download that keeps making progress is resumed this many times within one fetch
TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".parquet", ".pq"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".gz")
CONTENT_TYPE_SUFFIX = {
    "text/csv": ".csv", "application/csv": ".csv", "text/tab-separated-values": ".tsv",
    "application/json": ".json", "application/x-ndjson": ".jsonl", "application/jsonl": ".jsonl",
    "application/vnd.apache.parquet": ".parquet", "application/parquet": ".parquet",
    "application/x-parquet": ".parquet", "application/zip": ".zip", "application/x-zip-compressed": ".zip",
    "application/gzip": ".gz", "application/x-gzip": ".gz", "application/x-tar": ".tar",
    "application/x-gtar": ".tar.gz", "text/plain": ".txt",
}
MAGIC_SUFFIX = ((b"PK\x03\x04", ".zip"), (b"\x1f\x8b", ".gz"), (b"PAR1", ".parquet"))
#: sklearn set → (loader function, whether the target holds classes)
SKLEARN_SETS = {
    "iris": ("load_iris", True), "wine": ("load_wine", True), "breast_cancer": ("load_breast_cancer", True),
    "diabetes": ("load_diabetes", False), "digits": ("load_digits", True),
}
UNSUPPORTED: dict[str, str] = {}
TRANSIENT_STATUS = {408, 425, 429}
NOT_FOUND_STATUS = {404, 410}


@dataclass(frozen=True)
class FetchedData:
    path: Path  # a local file, or a folder for archives that unpack to several files
    info: dict[str, Any]  # source, scheme, bytes, sha256, cached, content_type…


def fetch(source: str, *, cache_dir: Path | None = None, max_bytes: int = 2 * 1024**3,
          timeout: float = 30.0, credentials: Mapping[str, str] | None = None) -> FetchedData:
    """Turn ``source`` into a local file; archives are unpacked (capped at ``max_bytes`` in and out).

    ``credentials`` maps vault kinds to values (``hf_token``, ``kaggle_username``/``kaggle_key``,
    ``kaggle_api_token``) for the remote sources that need them; the others ignore it.
    """
    if cache_dir is None:
        from mltrainer.settings import home

        cache_dir = home() / "cache"
    source = str(source).strip()
    if not source:
        raise DataError("The data source is empty; give a file path or a URL.")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+)://", source)
    scheme = match.group(1).lower() if match else ""
    if scheme in UNSUPPORTED:
        raise UnsupportedError(UNSUPPORTED[scheme])
    handler = HANDLERS.get(scheme)
    if handler is None:
        known = ", ".join(f"{s}://" for s in HANDLERS if s)
        raise UnsupportedError(f"The data source scheme {scheme}:// is not supported; use a local path or {known}.")
    fetched = handler(source, Path(cache_dir), max_bytes, timeout, credentials=credentials)
    return _maybe_unpack(fetched, Path(cache_dir), max_bytes)


# ---------------------------------------------------------------- local files and sklearn sets

def _local(source: str, cache: Path, max_bytes: int, timeout: float, **_: Any) -> FetchedData:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"The data source {source} does not exist; check the path.")
    info: dict[str, Any] = {"source": source, "scheme": "file", "cached": False}
    if path.is_file():
        info.update(bytes=path.stat().st_size, sha256=hash_file(path), content_type=next(
            (t for t, s in CONTENT_TYPE_SUFFIX.items() if s == _suffix(path.name)), None))
    return FetchedData(path, info)


def _file_url(source: str, cache: Path, max_bytes: int, timeout: float, **_: Any) -> FetchedData:
    parsed = urllib.parse.urlparse(source)
    if parsed.netloc not in ("", "localhost"):
        raise UnsupportedError(f"{source} names a remote host; file:// URLs must point at this machine.")
    fetched = _local(urllib.request.url2pathname(parsed.path), cache, max_bytes, timeout)
    return FetchedData(fetched.path, {**fetched.info, "source": source})


def _sklearn(source: str, cache: Path, max_bytes: int, timeout: float, **_: Any) -> FetchedData:
    """Write a scikit-learn bundled set once as a CSV (class names as labels, target column ``target``)."""
    name = source.split("://", 1)[1].strip("/").lower()
    if name not in SKLEARN_SETS:
        raise DataError(f"sklearn://{name} is not a known set; choose one of {', '.join(SKLEARN_SETS)}.")
    path = cache / "sklearn" / f"{name}.csv"
    cached = path.exists()
    if not cached:
        try:
            import sklearn.datasets as datasets
        except ImportError as err:
            raise UnsupportedError("sklearn:// sources need scikit-learn; install it with pip install scikit-learn.") from err
        import pandas as pd

        loader, classes = SKLEARN_SETS[name]
        bunch = getattr(datasets, loader)()
        columns = getattr(bunch, "feature_names", None)
        if columns is None or len(columns) != bunch.data.shape[1]:
            columns = [f"pixel_{i}" for i in range(bunch.data.shape[1])]
        frame = pd.DataFrame(bunch.data, columns=[str(c) for c in columns])
        names = getattr(bunch, "target_names", None)
        labelled = classes and names is not None and len(names) and isinstance(names[0], str)
        frame["target"] = [str(names[int(t)]) for t in bunch.target] if labelled else bunch.target
        _atomic_write(path, frame.to_csv(index=False).encode())
    info = {"source": source, "scheme": "sklearn", "cached": cached, "bytes": path.stat().st_size,
            "sha256": hash_file(path), "content_type": "text/csv",
            "task": "classification" if SKLEARN_SETS[name][1] else "regression"}
    return FetchedData(path, info)


# ---------------------------------------------------------------- http(s)

def _http(source: str, cache: Path, max_bytes: int, timeout: float, **_: Any) -> FetchedData:
    entry = _read_index(cache).get(source) or {}
    hit = cache / "files" / entry["sha256"] / entry["name"] if entry else None
    if hit is None or not hit.is_file() or hit.stat().st_size != entry["bytes"]:
        hit, entry = None, {}
    info = {"source": source, "scheme": urllib.parse.urlparse(source).scheme, "cached": True, **entry}
    asked = {"If-None-Match": entry.get("etag"), "If-Modified-Since": entry.get("last_modified")}
    conditional = {k: v for k, v in asked.items() if v}
    if hit and not conditional:
        return FetchedData(hit, {**info, "revalidated": False})
    for attempt in range(1, STREAM_TRIES + 1):
        try:
            return _download(source, cache, max_bytes, timeout, conditional)
        except _NotModified:
            assert hit is not None  # only a conditional request gets a 304
            return FetchedData(hit, {**info, "revalidated": True})
        except TransientError:
            if hit is None:
                raise
            return FetchedData(hit, {**info, "revalidated": False, "stale": True})  # offline resume goes on
        except _Interrupted as err:
            if attempt == STREAM_TRIES:
                raise TransientError(f"The download of {source} stopped after {err.args[0]:,} bytes; "
                                     "fetching again resumes it.") from err
    raise AssertionError("unreachable")


class _NotModified(Exception):
    """304: the cached copy is current."""


class _RangeRefused(Exception):
    """416: the partial file no longer fits the remote one."""


class _Interrupted(Exception):
    """The body ended early after making progress; the .part file keeps what arrived."""


def _open(url: str, headers: dict[str, str], timeout: float) -> Any:
    """urlopen with HTTP statuses and network failures turned into our one-sentence errors."""
    request = urllib.request.Request(url, headers={"User-Agent": "mltrainer", **headers})
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked by fetch
    except urllib.error.HTTPError as err:
        err.close()
        code, why = err.code, err.reason
        if code in (304, 416):
            raise (_NotModified if code == 304 else _RangeRefused)() from None
        if code in NOT_FOUND_STATUS:
            raise DataError(f"{url} was not found (HTTP {code}); check the address.") from None
        if code >= 500 or code in TRANSIENT_STATUS:
            raise TransientError(f"{url} answered HTTP {code} ({why}); the server may recover, so try again.") from None
        raise ClientError(f"{url} refused the request (HTTP {code} {why}); check the address and access rights.") from None
    except urllib.error.URLError as err:
        reason: object = err.reason
    except OSError as err:  # timeouts and resets that urllib does not wrap
        reason = err
    except ValueError as err:
        raise DataError(f"{url} is not a valid URL ({err}).") from None
    if isinstance(reason, TimeoutError):
        raise TransientError(f"{url} did not answer within {timeout:g} s; try again later.")
    raise TransientError(f"{url} could not be reached ({reason}); check the network and try again.")


def _download(url: str, cache: Path, max_bytes: int, timeout: float, conditional: dict[str, str]) -> FetchedData:
    """One GET into the .part file: a Range request when part of it is there, else a (conditional) full one."""
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    part, meta_path = cache / "partial" / f"{key}.part", cache / "partial" / f"{key}.json"
    part.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and part.exists() else {}
    have = part.stat().st_size if meta and part.exists() else 0
    headers: dict[str, str] = {} if have else dict(conditional)
    if have:
        headers["Range"] = f"bytes={have}-"
        if meta.get("etag") or meta.get("last_modified"):
            headers["If-Range"] = meta.get("etag") or meta["last_modified"]
    try:
        response = _open(url, headers, timeout)
    except _RangeRefused:
        _discard(part, meta_path)
        if not have:
            raise TransientError(f"{url} refused a plain download with HTTP 416; try again later.") from None
        return _download(url, cache, max_bytes, timeout, conditional)
    with response:
        start, total = 0, _length(response)
        if response.status == 206:
            found = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            start = int(found.group(1)) if found else -1
            total = int(found.group(2)) if found and found.group(2) != "*" else None
            if start != have:  # the server answered another range than the one asked for
                _discard(part, meta_path)
                if not have:
                    raise TransientError(f"{url} answered a plain download with a partial range; try again later.")
                return _download(url, cache, max_bytes, timeout, conditional)
        else:  # 200: the whole body, so a stale partial file is useless
            meta = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"),
                    "content_type": response.headers.get("Content-Type"),
                    "disposition": response.headers.get("Content-Disposition")}
            _atomic_write(meta_path, json.dumps(meta).encode())
            part.write_bytes(b"")
        if total is not None and total > max_bytes:
            _discard(part, meta_path)
            raise DataError(f"{url} is {total:,} bytes, over the {max_bytes:,}-byte limit; raise the limit or use a smaller file.")
        got = start
        with open(part, "ab") as out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:  # IncompleteRead, resets, timeouts
                    if got > start:
                        raise _Interrupted(got) from err
                    raise TransientError(f"The download of {url} failed ({type(err).__name__}); try again.") from err
                if not block:
                    break
                got += len(block)
                if got > max_bytes:
                    out.close()
                    _discard(part, meta_path)
                    raise DataError(f"{url} sent more than the {max_bytes:,}-byte limit; raise the limit or use a smaller file.")
                out.write(block)
    if total is not None and got < total:
        if got > start:
            raise _Interrupted(got)
        raise TransientError(f"The download of {url} stopped after {got} of {total} bytes; try again.")
    name = _sniff_name(url, meta, part)
    digest = hash_file(part)
    final = cache / "files" / digest / name
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    meta_path.unlink(missing_ok=True)
    entry = {"sha256": digest, "name": name, "bytes": got, "etag": meta.get("etag"),
             "last_modified": meta.get("last_modified"), "content_type": meta.get("content_type")}
    index = _read_index(cache)
    index[url] = entry
    _atomic_write(cache / "urls.json", json.dumps(index, indent=1).encode())
    scheme = urllib.parse.urlparse(url).scheme
    return FetchedData(final, {"source": url, "scheme": scheme, "cached": False, "resumed_from": start, **entry})


def _length(response: Any) -> int | None:
    """The announced size, unless chunked encoding makes Content-Length meaningless."""
    if "chunked" in (response.headers.get("Transfer-Encoding") or "").lower():
        return None
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _sniff_name(url: str, meta: dict[str, Any], part: Path) -> str:
    """File name from Content-Disposition, then the URL path, then Content-Type, then magic bytes."""
    name = ""
    if meta.get("disposition"):
        message = Message()
        message["Content-Disposition"] = meta["disposition"]
        name = message.get_filename() or ""
    if not _suffix(name):
        name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlparse(url).path).name) or name
    name = re.sub(r"[^\w.\-]+", "_", PurePosixPath(name.replace("\\", "/")).name).lstrip(".") or "download"
    if not _suffix(name):
        ctype = (meta.get("content_type") or "").split(";")[0].strip().lower()
        suffix = CONTENT_TYPE_SUFFIX.get(ctype, "")
        if not suffix:
            with open(part, "rb") as handle:
                head = handle.read(512)
            suffix = next((s for magic, s in MAGIC_SUFFIX if head.startswith(magic)), "")
            suffix = suffix or (".tar" if head[257:262] == b"ustar" else "")
        name += suffix
    return name


def _suffix(name: str) -> str:
    lower = name.lower()
    known = (*ARCHIVE_SUFFIXES, *TABLE_SUFFIXES)
    return next((s for s in known if lower.endswith(s) and len(lower) > len(s)), "")


# ---------------------------------------------------------------- archives

def _maybe_unpack(fetched: FetchedData, cache: Path, max_bytes: int) -> FetchedData:
    """Unpack an archive into ``<name>.unpacked`` next to its cached copy; one table (or one file) inside → it."""
    path = fetched.path
    kind = _suffix(path.name) if path.is_file() else ""
    if kind not in ARCHIVE_SUFFIXES:
        return fetched
    digest = fetched.info.get("sha256") or hash_file(path)
    home = path.parent if path.is_relative_to(cache) else cache / "files" / digest
    dest = home / (path.name + ".unpacked")
    if not dest.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=home))
        try:
            _unpack(path, kind, work, max_bytes)
            os.replace(work, dest)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    files = sorted(p for p in dest.rglob("*") if p.is_file() and not _junk(p.relative_to(dest)))
    tables = [p for p in files if _suffix(p.name) in TABLE_SUFFIXES]
    info = {**fetched.info, "archive": str(path), "members": len(files),
            "unpacked_bytes": sum(p.stat().st_size for p in files)}
    single = tables if len(tables) == 1 else files if len(files) == 1 else []
    return FetchedData(single[0] if single else dest, info)


def _junk(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def _unpack(path: Path, kind: str, dest: Path, max_bytes: int) -> None:
    try:
        if kind == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [(i.filename, i.is_dir(), stat.S_IFMT(i.external_attr >> 16) in (0, stat.S_IFREG),
                            i.file_size) for i in archive.infolist()]
                _check(path, members, max_bytes)
                _extract(path, ((i.filename, i.is_dir(), lambda i=i: archive.open(i)) for i in archive.infolist()),
                         dest, max_bytes)
        elif kind == ".gz" and not _gz_holds_tar(path):
            _extract(path, iter([(path.name[:-3], False, lambda: gzip.open(path, "rb"))]), dest, max_bytes)
        else:
            _unpack_tar(path, dest, max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zipfile.LargeZipFile,
            RuntimeError, OSError) as err:  # RuntimeError: an encrypted zip member
        raise DataError(f"{path.name} could not be unpacked ({type(err).__name__}: {err}); check the archive.") from None


def _gz_holds_tar(path: Path) -> bool:
    """A .gz that is really a .tar.gz (a tar header inside) is unpacked as a tar."""
    with gzip.open(path) as handle:
        return handle.read(512)[257:262] == b"ustar"


def _unpack_tar(path: Path, dest: Path, max_bytes: int) -> None:
    with tarfile.open(path, "r:*") as archive:
        infos: list[tarfile.TarInfo] = []
        for member in archive:  # stop reading headers early rather than list a million entries
            infos.append(member)
            if len(infos) > MAX_MEMBERS:
                break
        _check(path, [(m.name, m.isdir(), m.isfile(), m.size) for m in infos], max_bytes)
        _extract(path, ((m.name, m.isdir(), lambda m=m: archive.extractfile(m)) for m in infos), dest, max_bytes)


def _check(path: Path, members: list[tuple[str, bool, bool, int]], max_bytes: int) -> None:
    """Refuse the whole archive before writing anything: unsafe names, links/devices, too many or too big."""
    if len(members) > MAX_MEMBERS:
        raise DataError(f"{path.name} holds {len(members):,} entries, over the {MAX_MEMBERS:,} limit; it is refused as unsafe.")
    total = 0
    for name, is_dir, regular, size in members:
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
            raise DataError(f"{path.name} has an unsafe entry '{name}' that points outside the archive; it is refused.")
        if not is_dir and not regular:
            raise DataError(f"{path.name} has an entry '{name}' that is a link or device, not a file; it is refused as unsafe.")
        total += size
        if total > max_bytes:
            raise _bomb(path, max_bytes)


def _extract(path: Path, entries: Iterator[tuple[str, bool, Callable[[], IO[bytes] | None]]],
             dest: Path, max_bytes: int) -> None:
    """Copy members out by streaming, counting real bytes (declared sizes can lie)."""
    written = 0
    for name, is_dir, opener in entries:
        target = dest.joinpath(*PurePosixPath(name.replace("\\", "/")).parts)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = opener()
        if source is None:
            continue
        with source, open(target, "wb") as out:
            for block in iter(lambda: source.read(CHUNK), b""):
                written += len(block)
                if written > max_bytes:
                    raise _bomb(path, max_bytes)
                out.write(block)


def _bomb(path: Path, max_bytes: int) -> DataError:
    return DataError(f"{path.name} unpacks to more than the {max_bytes:,}-byte limit; it is refused as a likely archive bomb.")


# ---------------------------------------------------------------- small helpers

def hash_file(path: Path) -> str:
    """sha256 of a file, read in chunks: the cache key and the provenance recorded in reports."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _read_index(cache: Path) -> dict[str, Any]:
    try:
        return json.loads((cache / "urls.json").read_text())
    except (OSError, ValueError):
        return {}


def _lazy(module: str, name: str) -> Callable[..., FetchedData]:
    """A handler imported on first use: those modules import this one, and their libraries are heavy."""
    def handler(*args: Any, **kwargs: Any) -> FetchedData:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)
    return handler


#: scheme → handler(source, cache_dir, max_bytes, timeout, *, credentials); "" is a plain local path
HANDLERS: dict[str, Callable[..., FetchedData]] = {
    "": _local, "file": _file_url, "sklearn": _sklearn, "http": _http, "https": _http,
    "hf": _lazy("tools.hf_source", "fetch_hf"), "kaggle": _lazy("tools.kaggle_source", "fetch_kaggle"),
}
