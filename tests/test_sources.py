"""Data sources: sklearn sets, URLs against a loopback server (cache, resume, caps, errors), safe archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.errors import ClientError, DataError, TransientError, UnsupportedError
from tests.fakes.file_server import FileServer, file_server
from tools.sources import fetch

CSV = b"a,b,label\n" + b"".join(b"%d,%d,%s\n" % (i, i * 2, b"yes" if i % 2 else b"no") for i in range(2000))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def server() -> Iterator[FileServer]:
    with file_server() as state:
        yield state


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---------------------------------------------------------------- sklearn and local

@pytest.mark.parametrize(("name", "rows", "columns", "labels"), [
    ("iris", 150, 5, {"setosa", "versicolor", "virginica"}),
    ("wine", 178, 14, {"class_0", "class_1", "class_2"}),
    ("breast_cancer", 569, 31, {"malignant", "benign"}),
    ("diabetes", 442, 11, None),
    ("digits", 1797, 65, set(range(10))),
])
def test_sklearn_sets_load_offline(name: str, rows: int, columns: int, labels: set | None, cache: Path) -> None:
    fetched = fetch(f"sklearn://{name}", cache_dir=cache)
    frame = pd.read_csv(fetched.path)
    assert frame.shape == (rows, columns) and frame.columns[-1] == "target"
    if labels is not None:
        assert set(frame["target"]) == labels
    assert fetched.info["cached"] is False and fetched.info["sha256"]
    assert fetch(f"sklearn://{name}", cache_dir=cache).info["cached"] is True


def test_unknown_sklearn_set_lists_the_known_ones(cache: Path) -> None:
    with pytest.raises(DataError, match="iris, wine, breast_cancer, diabetes, digits"):
        fetch("sklearn://titanic", cache_dir=cache)


def test_default_cache_is_under_mltrainer_home(sealed_home: Path) -> None:
    assert fetch("sklearn://iris").path.is_relative_to(sealed_home / "cache")


def test_local_path_and_file_url(tmp_path: Path, cache: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(CSV)
    plain = fetch(str(data), cache_dir=cache)
    assert plain.path == data and plain.info["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert fetch(data.as_uri(), cache_dir=cache).path == data
    with pytest.raises(DataError, match="does not exist"):
        fetch(str(tmp_path / "missing.csv"), cache_dir=cache)


@pytest.mark.parametrize("source", ["s3://bucket/key.csv", "ftp://host/file.csv"])
def test_other_schemes_are_unsupported(source: str, cache: Path) -> None:
    with pytest.raises(UnsupportedError, match="not a supported data source|not supported"):
        fetch(source, cache_dir=cache)


# ---------------------------------------------------------------- http

def test_url_csv_downloads_and_second_fetch_revalidates(server: FileServer, cache: Path) -> None:
    url = server.add("/data/train.csv", CSV, content_type="text/csv", etag='"v1"')
    first = fetch(url, cache_dir=cache)
    assert first.path.name == "train.csv" and first.path.read_bytes() == CSV
    assert first.info["cached"] is False and first.info["sha256"] == hashlib.sha256(CSV).hexdigest()
    second = fetch(url, cache_dir=cache)
    assert second.path == first.path and second.info["cached"] is True and second.info["revalidated"] is True
    assert server.full_downloads("/data/train.csv") == 1 and server.log("/data/train.csv")[-1]["status"] == 304
    assert not list((cache / "partial").glob("*.part"))


def test_cache_without_validators_reuses_without_asking(server: FileServer, cache: Path) -> None:
    url = server.add("/plain.csv", CSV, content_type="text/csv")
    fetch(url, cache_dir=cache)
    assert fetch(url, cache_dir=cache).info["cached"] is True
    assert server.count("/plain.csv") == 1


def test_interrupted_download_resumes_with_range(server: FileServer, cache: Path) -> None:
    body = bytes(range(256)) * 4000
    url = server.add("/big.bin", body, etag='"e"', drop_after=300_000)
    fetched = fetch(url, cache_dir=cache)
    assert hashlib.sha256(fetched.path.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    log = server.log("/big.bin")
    assert [r["status"] for r in log] == [200, 206]
    assert log[1]["headers"]["Range"] == "bytes=300000-" and log[1]["headers"]["If-Range"] == '"e"'
    assert fetched.info["resumed_from"] == 300_000


def test_server_without_ranges_restarts_from_zero(server: FileServer, cache: Path) -> None:
    url = server.add("/norange.csv", CSV, ranges=False, drop_after=1000)
    fetched = fetch(url, cache_dir=cache)
    assert fetched.path.read_bytes() == CSV
    assert [r["status"] for r in server.log("/norange.csv")] == [200, 200]


def test_size_cap_by_content_length(server: FileServer, cache: Path) -> None:
    url = server.add("/huge.csv", CSV)
    with pytest.raises(DataError, match="over the 1,000-byte limit"):
        fetch(url, cache_dir=cache, max_bytes=1000)
    assert not list(cache.rglob("*.part")) and not (cache / "files").exists()


@pytest.mark.parametrize("length", ["omit", "chunked", "lie"])
def test_size_cap_while_streaming(length: str, server: FileServer, cache: Path) -> None:
    url = server.add(f"/stream-{length}.csv", CSV, length=length)
    with pytest.raises(DataError, match="more than the 1,000-byte limit"):
        fetch(url, cache_dir=cache, max_bytes=1000)
    assert not list(cache.rglob("*.part")) and not (cache / "files").exists()
    assert fetch(url, cache_dir=cache).path.read_bytes() == CSV  # and without the cap it arrives whole


@pytest.mark.parametrize(("status", "error"), [(404, DataError), (410, DataError), (500, TransientError),
                                               (503, TransientError), (429, TransientError), (403, ClientError)])
def test_http_statuses_map_to_error_classes(status: int, error: type, server: FileServer, cache: Path) -> None:
    url = server.add("/x.csv", CSV, status=status)
    with pytest.raises(error, match=f"HTTP {status}"):
        fetch(url, cache_dir=cache)


def test_connection_refused_is_transient(cache: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError, match="could not be reached"):
        fetch(f"http://127.0.0.1:{port}/data.csv", cache_dir=cache, timeout=2)


def test_silent_server_times_out_as_transient(cache: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/data.csv"
        with pytest.raises(TransientError, match="did not answer within 0.2 s"):
            fetch(url, cache_dir=cache, timeout=0.2)


def test_gzipped_tar_without_tar_in_its_name_is_unpacked_as_a_tar(server: FileServer, cache: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.csv")
        info.size = len(CSV)
        tar.addfile(info, io.BytesIO(CSV))
    url = server.add("/dl", buffer.getvalue(), content_type="application/gzip")
    fetched = fetch(url, cache_dir=cache)
    assert fetched.path.name == "train.csv" and fetched.path.read_bytes() == CSV


@pytest.mark.parametrize(("path", "options", "name"), [
    ("/download", {"content_type": "text/csv; charset=utf-8"}, "download.csv"),
    ("/export?id=3", {"content_type": "application/vnd.apache.parquet"}, "export.parquet"),
    ("/get", {"content_type": "application/octet-stream", "disposition": 'attachment; filename="sales 2024.tsv"'},
     "sales_2024.tsv"),
    ("/f/report.json", {"content_type": "text/plain"}, "report.json"),
    ("/blob", {"content_type": "application/octet-stream"}, "blob.gz"),  # magic bytes
])
def test_file_name_sniffing(path: str, options: dict, name: str, server: FileServer, cache: Path) -> None:
    body = gzip.compress(CSV) if name.endswith(".gz") else CSV
    fetched = fetch(server.add(path, body, **options), cache_dir=cache)
    if name.endswith(".gz"):  # sniffed as gzip, so it is unpacked to the table inside
        assert fetched.info["archive"].endswith("/blob.gz") and fetched.path.read_bytes() == CSV
        assert fetched.path.name == "blob"
    else:
        assert fetched.path.name == name


# ---------------------------------------------------------------- archives

def test_zip_with_one_csv_over_http_gives_the_csv(server: FileServer, cache: Path) -> None:
    url = server.add("/bundle", zip_bytes({"README.md": b"hi", "data/train.csv": CSV}), content_type="application/zip")
    fetched = fetch(url, cache_dir=cache)
    assert fetched.path.name == "train.csv" and fetched.path.read_bytes() == CSV
    assert fetched.path.is_relative_to(cache / "files") and fetched.info["members"] == 2
    assert fetch(url, cache_dir=cache).path == fetched.path


def test_zip_with_several_tables_gives_the_folder(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "two.zip"
    archive.write_bytes(zip_bytes({"train.csv": CSV, "test.csv": CSV}))
    fetched = fetch(str(archive), cache_dir=cache)
    assert fetched.path.is_dir() and sorted(p.name for p in fetched.path.iterdir()) == ["test.csv", "train.csv"]
    assert not (tmp_path / "two.zip.unpacked").exists()  # never unpacked next to the user's file


def test_zip_traversal_is_refused_and_writes_nothing(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok.csv": CSV, "../evil.txt": b"x"}))
    with pytest.raises(DataError, match="unsafe entry '../evil.txt'"):
        fetch(str(archive), cache_dir=cache)
    assert not (tmp_path / "evil.txt").exists() and not list(cache.rglob("ok.csv"))
    assert not list(cache.rglob("*.unpacked"))


def test_tar_with_symlink_is_refused(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("data.csv")
        info.size = len(CSV)
        tar.addfile(info, io.BytesIO(CSV))
        link = tarfile.TarInfo("passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="link or device"):
        fetch(str(archive), cache_dir=cache)


def test_tar_and_single_gz_unpack(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "set.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("inner/train.csv")
        info.size = len(CSV)
        tar.addfile(info, io.BytesIO(CSV))
    assert fetch(str(archive), cache_dir=cache).path.read_bytes() == CSV
    single = tmp_path / "train.csv.gz"
    single.write_bytes(gzip.compress(CSV))
    fetched = fetch(str(single), cache_dir=cache)
    assert fetched.path.name == "train.csv" and fetched.path.read_bytes() == CSV


def test_zip_bomb_over_the_cap_is_refused(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bytes({"zeros.csv": bytes(40 * 1024**2)}))
    assert archive.stat().st_size < 1024**2
    with pytest.raises(DataError, match="archive bomb"):
        fetch(str(archive), cache_dir=cache, max_bytes=10 * 1024**2)
    assert not list(cache.rglob("zeros.csv"))


def test_gz_bomb_is_stopped_while_streaming(tmp_path: Path, cache: Path) -> None:
    single = tmp_path / "zeros.csv.gz"
    single.write_bytes(gzip.compress(bytes(20 * 1024**2), compresslevel=1))
    with pytest.raises(DataError, match="archive bomb"):
        fetch(str(single), cache_dir=cache, max_bytes=5 * 1024**2)
    assert not list(cache.rglob("zeros.csv"))


def test_failed_download_leaves_only_a_part_file_and_the_next_fetch_resumes(
        server: FileServer, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tools.sources.STREAM_TRIES", 1)
    url = server.add("/train.csv", CSV, etag='"e"', drop_after=5000)
    with pytest.raises(TransientError, match="stopped after 5,000 bytes; fetching again resumes it"):
        fetch(url, cache_dir=cache)
    assert not (cache / "files").exists() and len(list((cache / "partial").glob("*.part"))) == 1
    assert fetch(url, cache_dir=cache).path.read_bytes() == CSV
    assert [r["status"] for r in server.log("/train.csv")] == [200, 206]
    assert not list((cache / "partial").iterdir())


def test_changed_remote_file_restarts_instead_of_resuming(
        server: FileServer, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tools.sources.STREAM_TRIES", 1)
    url = server.add("/train.csv", CSV, etag='"v1"', drop_after=5000)
    with pytest.raises(TransientError):
        fetch(url, cache_dir=cache)
    newer = CSV.replace(b"yes", b"YES")
    server.add("/train.csv", newer, etag='"v2"')
    assert fetch(url, cache_dir=cache).path.read_bytes() == newer
    assert server.log("/train.csv")[-1]["headers"]["If-Range"] == '"v1"'
    assert server.log("/train.csv")[-1]["status"] == 200


def test_changed_remote_file_is_downloaded_again_and_offline_uses_the_copy(
        server: FileServer, cache: Path) -> None:
    url = server.add("/train.csv", CSV, etag='"v1"')
    first = fetch(url, cache_dir=cache)
    newer = CSV.replace(b"yes", b"YES")
    server.add("/train.csv", newer, etag='"v2"')
    second = fetch(url, cache_dir=cache)
    assert second.path.read_bytes() == newer and second.info["cached"] is False
    assert [r["status"] for r in server.log("/train.csv")] == [200, 200]
    server.add("/train.csv", newer, status=503)
    stale = fetch(url, cache_dir=cache)
    assert stale.path == second.path and stale.info["stale"] is True and first.path.read_bytes() == CSV


def test_excel_workbooks_are_read_and_broken_ones_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.local_data import load_table

    book = tmp_path / "sales.xlsx"
    pd.DataFrame({"units": [3, 5, 8], "region": ["north", "south", "east"]}).to_excel(book, index=False)
    frame, info = load_table(book)
    assert frame["region"].tolist() == ["north", "south", "east"] and info["format"] == "xlsx"
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not a workbook")
    with pytest.raises(DataError, match="broken.xlsx is not a readable Excel workbook"):
        load_table(broken)

    def no_openpyxl(*args: object, **kwargs: object) -> None:
        raise ImportError("Missing optional dependency 'openpyxl'")

    monkeypatch.setattr(pd, "read_excel", no_openpyxl)
    with pytest.raises(UnsupportedError, match=r"needs the openpyxl package; install mltrainer\[excel\]"):
        load_table(book)
