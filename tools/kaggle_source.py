"""kaggle:// sources: a Kaggle dataset or competition's files, downloaded through kagglesdk.

``kaggle://owner/dataset`` (or ``…/dataset/path/inside.csv`` for one file) and
``kaggle://competitions/<name>`` (also ``kaggle://c/<name>``, optionally ``/<file>``). The call is the
one the ``kaggle`` CLI makes (``POST {base}/v1/datasets.DatasetApiService/DownloadDataset`` or
``competitions.CompetitionApiService/DownloadDataFiles``; Kaggle answers with a redirect to the
file), sent through the same explicit-credential client as :mod:`tools.kaggle_validator`: only the
credentials given (or KAGGLE_API_TOKEN / KAGGLE_USERNAME+KAGGLE_KEY) are used, never ~/.kaggle, and
``import kaggle`` never happens. The body streams to disk under ``max_bytes``, lands in the same
content-addressed cache as URLs (``urls.json`` keyed by the canonical ``kaggle://`` source, so a
resume reuses it without asking Kaggle) and :func:`tools.sources.fetch` unpacks the zip with its safe
unpacker. ``MLTRAINER_KAGGLE_ENDPOINT`` replaces ``https://api.kaggle.com`` (tests point it at a fake).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ClientError, CredentialError, DataError, TransientError, UnsupportedError

ENDPOINT_ENV = "MLTRAINER_KAGGLE_ENDPOINT"
SETTINGS_PAGE = "https://www.kaggle.com/settings"
SLUG = re.compile(r"^[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class KaggleSource:
    """A parsed ``kaggle://`` source: a dataset (owner/name) or a competition, maybe one file inside."""

    kind: str  # "dataset" or "competition"
    owner: str | None
    name: str
    file: str | None

    @property
    def key(self) -> str:
        """The canonical form, the cache key (``c/`` and ``competitions/`` spellings share one entry)."""
        base = f"kaggle://competitions/{self.name}" if self.kind == "competition" else \
            f"kaggle://{self.owner}/{self.name}"
        return f"{base}/{self.file}" if self.file else base

    @property
    def page(self) -> str:
        if self.kind == "competition":
            return f"https://www.kaggle.com/competitions/{self.name}"
        return f"https://www.kaggle.com/datasets/{self.owner}/{self.name}"


def parse_kaggle(source: str) -> KaggleSource:
    """``kaggle://owner/dataset[/file]`` or ``kaggle://competitions/<name>[/file]`` → its parts."""
    body = source.split("://", 1)[1].strip().strip("/")
    parts = body.split("/") if body else []
    kind = "competition" if parts and parts[0] in ("competitions", "c") else "dataset"
    if kind == "competition" or (parts and parts[0] == "datasets" and len(parts) >= 3):
        parts = parts[1:]
    head = parts[:1] if kind == "competition" else parts[:2]
    rest = parts[len(head):]
    if len(head) != (1 if kind == "competition" else 2) or not all(SLUG.match(p) for p in head) \
            or any(p in ("", ".", "..") for p in rest):
        raise DataError(f"{source} is not a valid Kaggle source; write kaggle://owner/dataset or "
                        "kaggle://competitions/<name>, optionally followed by /<file>.")
    owner, name = (None, head[0]) if kind == "competition" else (head[0], head[1])
    return KaggleSource(kind, owner, name, "/".join(rest) or None)


def fetch_kaggle(source: str, cache: Path, max_bytes: int, timeout: float, *,
                 credentials: Mapping[str, str] | None = None, endpoint: str | None = None) -> Any:
    """The ``kaggle`` handler of :func:`tools.sources.fetch`: the downloaded file (a zip is unpacked by fetch)."""
    from tools.sources import FetchedData, _atomic_write, _read_index

    want = parse_kaggle(source)
    entry = _read_index(cache).get(want.key) or {}
    hit = cache / "files" / entry["sha256"] / entry["name"] if entry.get("sha256") and entry.get("name") else None
    info = {"source": source, "scheme": "kaggle", "kind": want.kind, "ref": want.key, "page": want.page}
    if hit is not None and hit.is_file() and hit.stat().st_size == entry.get("bytes"):
        return FetchedData(hit, {**info, "cached": True, **entry})
    auth, method = _auth(credentials)
    fetched = _download(want, cache, max_bytes, timeout, auth, endpoint or os.environ.get(ENDPOINT_ENV) or None)
    index = _read_index(cache)
    index[want.key] = fetched
    _atomic_write(cache / "urls.json", json.dumps(index, indent=1).encode())
    path = cache / "files" / fetched["sha256"] / fetched["name"]
    return FetchedData(path, {**info, "cached": False, "auth": method, **fetched})


def _auth(credentials: Mapping[str, str] | None) -> tuple[Any, str]:
    """Bearer for a KGAT_ token, HTTP Basic for user name + legacy key: from ``credentials``, else the env."""
    given = {k: (v or "").strip() for k, v in (credentials or {}).items() if k.startswith("kaggle_")}
    if given.get("kaggle_api_token") or given.get("kaggle_key"):
        token, key = given.get("kaggle_api_token"), given.get("kaggle_key")
    else:
        token, key = os.environ.get("KAGGLE_API_TOKEN", "").strip(), os.environ.get("KAGGLE_KEY", "").strip()
        with contextlib.suppress(OSError):  # the SDK also accepts a path to the token file
            if token and Path(token).expanduser().is_file():
                token = Path(token).expanduser().read_text().strip()
    username = given.get("kaggle_username") or os.environ.get("KAGGLE_USERNAME", "").strip()
    if key and not token and key.startswith("KGAT_"):
        token, key = key, None  # an access token saved where the legacy key goes
    try:
        from kagglesdk.kaggle_http_client import KaggleHttpClient
    except ImportError as err:
        raise UnsupportedError(f"kaggle:// sources need the Kaggle SDK ({err.name}); install kagglesdk.") from None
    if token:
        return KaggleHttpClient.BearerAuth(token), "api_token"
    if key and username:
        return (username, key), "legacy_key"
    if key:
        raise CredentialError("A legacy Kaggle key needs the Kaggle user name too; add it as KAGGLE_USERNAME "
                              f"(it is shown at {SETTINGS_PAGE}).")
    raise CredentialError("kaggle:// sources need Kaggle credentials; create an API token at "
                          f"{SETTINGS_PAGE} and add it (KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY).")


def _request(client: Any, want: KaggleSource) -> Any:
    """The SDK's own download call; it answers the (streamed) HTTP response of the file it redirects to."""
    if want.kind == "competition":
        from kagglesdk.competitions.services.competition_api_service import CompetitionApiClient
        from kagglesdk.competitions.types.competition_api_service import (
            ApiDownloadDataFileRequest,
            ApiDownloadDataFilesRequest,
        )

        api = CompetitionApiClient(client)
        if want.file:
            one = ApiDownloadDataFileRequest()
            one.competition_name, one.file_name = want.name, want.file
            return api.download_data_file(one)
        every = ApiDownloadDataFilesRequest()
        every.competition_name = want.name
        return api.download_data_files(every)
    from kagglesdk.datasets.services.dataset_api_service import DatasetApiClient
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

    request = ApiDownloadDatasetRequest()
    request.owner_slug, request.dataset_slug = want.owner, want.name
    if want.file:
        request.file_name = want.file
    return DatasetApiClient(client).download_dataset(request)


def _download(want: KaggleSource, cache: Path, max_bytes: int, timeout: float, auth: Any,
              endpoint: str | None) -> dict[str, Any]:
    """Stream the file into ``partial/`` under the cap, then move it to ``files/<sha256>/<name>``."""
    import requests

    from tools.kaggle_validator import _sdk_client
    from tools.sources import CHUNK, _discard, _sniff_name, hash_file

    try:
        client, base = _sdk_client(endpoint=endpoint, auth=auth, timeout=timeout)
    except RuntimeError as err:
        raise UnsupportedError(f"The installed Kaggle SDK cannot be used ({err}).") from None
    except Exception as err:  # an unknown KAGGLE_API_ENVIRONMENT
        raise ClientError(f"Could not set up the Kaggle client ({type(err).__name__}: {err}); check "
                          "KAGGLE_API_ENVIRONMENT.") from None
    part = cache / "partial" / f"kaggle-{hashlib.sha256(want.key.encode()).hexdigest()[:32]}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    got = 0
    try:
        with client:
            response = _request(client, want)
            with response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    raise _over(want, max_bytes, int(length))
                with open(part, "wb") as out:
                    for block in response.iter_content(CHUNK):
                        got += len(block)
                        if got > max_bytes:
                            raise _over(want, max_bytes)
                        out.write(block)
                meta = {"disposition": response.headers.get("Content-Disposition"),
                        "content_type": response.headers.get("Content-Type")}
                url = response.url
    except requests.exceptions.HTTPError as err:
        _discard(part)
        status = getattr(err.response, "status_code", None)
        if not str(getattr(err.response, "url", "") or "").startswith(base):  # the signed storage link failed
            raise TransientError(f"Kaggle's download link for {want.key} failed (HTTP {status}); fetch again "
                                 "for a fresh one.") from None
        raise _refused(want, status) from None
    except requests.exceptions.RequestException as err:
        _discard(part)
        raise TransientError(f"Could not download {want.key} from Kaggle at {base} ({type(err).__name__}); check "
                             "the network and resume.") from None
    except BaseException:
        _discard(part)
        raise
    name = _sniff_name(url, meta, part)
    if name == "download":
        name = f"{want.name}.zip" if not want.file else name
    digest = hash_file(part)
    final = cache / "files" / digest / name
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, final)
    return {"sha256": digest, "name": name, "bytes": got, "content_type": meta["content_type"]}


def _over(want: KaggleSource, max_bytes: int, size: int | None = None) -> DataError:
    told = f"is {size:,} bytes, over" if size is not None else "sent more than"
    return DataError(f"{want.key} {told} the {max_bytes:,}-byte limit; raise data.max_bytes or pick one file "
                     f"({want.key}/<file>).")


def _refused(want: KaggleSource, status: int | None) -> Exception:
    """An HTTP status from Kaggle → one sentence saying what to do."""
    if status == 404:
        what = "the competition name" if want.kind == "competition" else "the owner and dataset name"
        extra = f" and that {want.file} exists in it" if want.file else ""
        return DataError(f"{want.key} was not found on Kaggle; check {what} (as in its URL){extra}.")
    if status == 401:
        return CredentialError(f"Kaggle rejected the credentials (401); create a new API token at {SETTINGS_PAGE} "
                               "and add it.")
    if status == 403 and want.kind == "competition":
        return CredentialError(f"Kaggle refused the files of {want.key} (403); accept the competition's rules at "
                               f"https://www.kaggle.com/competitions/{want.name}/rules with this account, then resume.")
    if status == 403:
        return CredentialError(f"Kaggle refused access to {want.key} (403); check the owner/name, and if it is "
                               "private use credentials of an account that can see it.")
    if status is None or status >= 500 or status in (408, 429):
        return TransientError(f"Kaggle answered HTTP {status} for {want.key}; try again in a moment.")
    return ClientError(f"Kaggle refused the download of {want.key} (HTTP {status}); check the source.")
