"""hf:// and kaggle:// sources against loopback fakes that speak the real protocols (offline)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from orchestrator.errors import CredentialError, DataError, TransientError
from tests.fakes.hf_data_server import FakeHfData, card_configs, fake_hf_data
from tests.fakes.kaggle_data_server import FakeKaggleData, fake_kaggle_data, zip_of
from tools.sources import fetch

HF_TOKEN = "hf_" + "T" * 34
KAGGLE_USER, KAGGLE_KEY, KAGGLE_TOKEN = "alice", "0123456789abcdef0123456789abcdef", "KGAT_" + "k" * 32
CSV = b"a,b,label\n" + b"".join(b"%d,%d,%s\n" % (i, i * 2, b"yes" if i % 2 else b"no") for i in range(200))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ---------------------------------------------------------------- hf://

def parquet(rows: dict[str, list[Any]], *, with_tags: bool = True) -> bytes:
    """A parquet file as ``push_to_hub`` writes it: ClassLabel features in the schema metadata."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    features = {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}
    if with_tags:
        features["tags"] = List(ClassLabel(names=["short", "long"]))
    buffer = io.BytesIO()
    Dataset.from_dict(rows, features=Features(features)).to_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        "en/train-00000-of-00001.parquet": parquet({"text": ["good", "bad", "meh"], "label": [1, 0, -1],
                                                    "tags": [[0], [1, 0], []]}),
        "en/test-00000-of-00001.parquet": parquet({"text": ["fine"], "label": [1], "tags": [[1]]}),
        "fr/train-00000-of-00001.parquet": parquet({"text": ["bon", "mal"], "label": [1, 0], "tags": [[0], [0]]}),
    }


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> Iterator[FakeHfData]:
    """The fake Hub behind HF_ENDPOINT, with huggingface_hub's import-time offline switch turned off."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with fake_hf_data() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        fake.add_repo("acme/reviews", files, card=card_configs(
            {"en": {"train": "en/train-*", "test": "en/test-*"}, "fr": {"train": "fr/*.parquet"}}, default="en"))
        yield fake


def test_hf_config_and_split_with_label_names(hub: FakeHfData, cache: Path) -> None:
    fetched = fetch("hf://acme/reviews:en@train", cache_dir=cache)
    assert fetched.path == cache / "hf" / "acme__reviews__en__train" / "data.parquet"
    frame = pd.read_parquet(fetched.path)
    assert frame["text"].tolist() == ["good", "bad", "meh"] and "__split__" not in frame
    assert frame["label"].tolist()[:2] == ["pos", "neg"] and pd.isna(frame["label"][2])
    assert [list(t) for t in frame["tags"]] == [["short"], ["long", "short"], []]
    info = fetched.info
    assert info["scheme"] == "hf" and info["repo"] == "acme/reviews" and info["config"] == "en"
    assert info["split"] == "train" and info["splits"] == {"train": 3} and info["cached"] is False
    assert info["revision"] == hub.repos["acme/reviews"].sha and info["sha256"] and info["bytes"] > 0
    assert info["features"]["label"] == {"names": ["neg", "pos"], "_type": "ClassLabel"}
    assert info["available_splits"] == ["train", "test"] and info["configs"] == ["en", "fr"]


def test_hf_all_splits_get_a_split_column_and_the_default_config(hub: FakeHfData, cache: Path) -> None:
    fetched = fetch("hf://acme/reviews", cache_dir=cache)
    frame = pd.read_parquet(fetched.path)
    assert fetched.path.parent.name == "acme__reviews" and fetched.info["config"] == "en"
    assert frame["__split__"].tolist() == ["train"] * 3 + ["test"]
    assert fetched.info["splits"] == {"train": 3, "test": 1}
    french = pd.read_parquet(fetch("hf://acme/reviews:fr", cache_dir=cache).path)
    assert french["label"].tolist() == ["pos", "neg"]


def test_hf_second_fetch_reuses_the_parquet(hub: FakeHfData, cache: Path) -> None:
    first = fetch("hf://acme/reviews:en@test", cache_dir=cache)
    downloads = len(hub.data_requests())
    assert downloads >= 1
    second = fetch("hf://acme/reviews:en@test", cache_dir=cache)
    assert second.path == first.path and second.info["cached"] is True
    assert second.info["sha256"] == first.info["sha256"] and len(hub.data_requests()) == downloads


@pytest.mark.parametrize(("source", "message"), [
    ("hf://acme/reviews:en@dev", "no split 'dev'.*available splits: train, test"),
    ("hf://acme/reviews:de", "no config 'de'; available configs: en, fr"),
    ("hf://acme/reviews:en:x", "not a valid Hugging Face source"),
])
def test_hf_unknown_names_list_what_exists(source: str, message: str, hub: FakeHfData, cache: Path) -> None:
    with pytest.raises(DataError, match=message):
        fetch(source, cache_dir=cache)
    assert not hub.data_requests()


def test_hf_several_configs_without_a_default_ask_for_one(hub: FakeHfData, files: dict[str, bytes],
                                                         cache: Path) -> None:
    hub.add_repo("acme/multi", files, card=card_configs({"en": {"train": "en/*"}, "fr": {"train": "fr/*"}}))
    with pytest.raises(DataError, match=r"several configs \(en, fr\); pick one as hf://acme/multi:<config>"):
        fetch("hf://acme/multi", cache_dir=cache)


def test_hf_not_found(hub: FakeHfData, cache: Path) -> None:
    hub.add_token(HF_TOKEN)
    with pytest.raises(DataError, match="hf://acme/nope was not found on the Hub.*check the id"):
        fetch("hf://acme/nope", cache_dir=cache, credentials={"hf_token": HF_TOKEN})
    with pytest.raises(CredentialError, match="not found on the Hub or is private or gated; check the id"):
        fetch("hf://acme/nope", cache_dir=cache)  # anonymous: the Hub answers 401 for both


def test_hf_private_needs_a_token_and_never_stores_it(hub: FakeHfData, files: dict[str, bytes],
                                                      cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("acme/secret", {"data/train-00000-of-00001.parquet": files["en/test-00000-of-00001.parquet"]},
                 private=True)
    hub.add_token(HF_TOKEN, {"acme/secret"})
    with pytest.raises(CredentialError, match="private or gated.*HF_TOKEN"):
        fetch("hf://acme/secret", cache_dir=cache)
    fetched = fetch("hf://acme/secret", cache_dir=cache, credentials={"hf_token": HF_TOKEN})
    assert pd.read_parquet(fetched.path)["label"].tolist() == ["pos"]
    assert HF_TOKEN not in repr(fetched.info) and HF_TOKEN not in str(fetched.path)
    assert all(HF_TOKEN.encode() not in p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert all(r["authorization"] == f"Bearer {HF_TOKEN}" for r in hub.requests[1:] if "/cdn/" not in r["path"])
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)  # the environment works too
    assert fetch("hf://acme/secret@train", cache_dir=cache).info["splits"] == {"train": 1}


def test_hf_rejected_token(hub: FakeHfData, cache: Path) -> None:
    with pytest.raises(CredentialError, match="rejected the Hugging Face token.*create a new one") as caught:
        fetch("hf://acme/reviews", cache_dir=cache, credentials={"hf_token": HF_TOKEN})
    assert HF_TOKEN not in str(caught.value)


def test_hf_image_column_passes_through(hub: FakeHfData, cache: Path) -> None:
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as Picture

    images = []
    for colour in ("red", "blue"):
        png = io.BytesIO()
        Picture.new("RGB", (2, 2), colour).save(png, "PNG")
        images.append({"bytes": png.getvalue(), "path": f"{colour}.png"})
    buffer = io.BytesIO()
    features = Features({"image": Image(), "label": ClassLabel(names=["red", "blue"])})
    Dataset.from_dict({"image": images, "label": [1, 0]}, features=features).to_parquet(buffer)
    hub.add_repo("acme/pictures", {"data/train-00000-of-00001.parquet": buffer.getvalue()})
    frame = pd.read_parquet(fetch("hf://datasets/acme/pictures@train", cache_dir=cache).path)
    assert frame["label"].tolist() == ["blue", "red"] and frame["image"][0]["bytes"] == images[0]["bytes"]


def test_hf_gated_without_access(hub: FakeHfData, files: dict[str, bytes], cache: Path) -> None:
    hub.add_repo("acme/gated", {"data/train-00000-of-00001.parquet": files["en/test-00000-of-00001.parquet"]},
                 gated="manual")
    hub.add_token(HF_TOKEN, set())
    with pytest.raises(CredentialError, match="gated; accept its conditions at .*/datasets/acme/gated"):
        fetch("hf://acme/gated", cache_dir=cache)
    with pytest.raises(CredentialError, match="token has no access yet"):
        fetch("hf://acme/gated", cache_dir=cache, credentials={"hf_token": HF_TOKEN})


def test_hf_over_the_cap_downloads_nothing(hub: FakeHfData, files: dict[str, bytes], cache: Path) -> None:
    size = sum(len(files[f"en/{s}-00000-of-00001.parquet"]) for s in ("train", "test"))
    with pytest.raises(DataError, match=f"is {size:,} bytes, over the 1,000-byte limit; raise data.max_bytes or pick"):
        fetch("hf://acme/reviews:en", cache_dir=cache, max_bytes=1000)
    assert not hub.data_requests()


def test_hf_unreachable_and_failing_hub_are_transient(hub: FakeHfData, cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError, match="Could not reach the Hub.*check the network and resume"):
        fetch("hf://acme/reviews", cache_dir=cache, timeout=2)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    hub.status_override = 503
    with pytest.raises(TransientError, match="HTTP 503"):
        fetch("hf://acme/reviews", cache_dir=cache)


def test_hf_offline_resume_uses_the_cached_copy(hub: FakeHfData, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = fetch("hf://acme/reviews:en@test", cache_dir=cache)
    hub.status_override = 500
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = fetch("hf://acme/reviews:en@test", cache_dir=cache)
    assert again.path == first.path and again.info["cached"] is True and again.info["stale"] is True
    with pytest.raises(DataError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        fetch("hf://acme/reviews:fr", cache_dir=cache)


def test_hf_parquet_conversion_branch_for_repos_without_parquet(hub: FakeHfData, files: dict[str, bytes],
                                                                cache: Path) -> None:
    hub.add_repo("acme/scripted", {"scripted.py": b"# a loading script\n"},
                 converted={"default/train/0000.parquet": files["en/train-00000-of-00001.parquet"],
                            "default/test/0000.parquet": files["en/test-00000-of-00001.parquet"]})
    fetched = fetch("hf://acme/scripted@test", cache_dir=cache)
    assert fetched.info["branch"] == "refs/convert/parquet" and fetched.info["revision"] == \
        hub.repos["acme/scripted"].convert_sha
    assert pd.read_parquet(fetched.path)["label"].tolist() == ["pos"]


def test_hf_csv_repo_with_split_files(hub: FakeHfData, cache: Path) -> None:
    hub.add_repo("acme/table", {"train.csv": CSV, "test.csv": CSV[:40]})
    fetched = fetch("hf://acme/table", cache_dir=cache)
    frame = pd.read_parquet(fetched.path)
    assert fetched.info["format"] == "csv" and fetched.info["splits"]["train"] == 200
    assert set(frame["__split__"]) == {"train", "test"} and list(frame.columns) == ["a", "b", "label", "__split__"]


# ---------------------------------------------------------------- kaggle://

@pytest.fixture()
def kaggle(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKaggleData]:
    with fake_kaggle_data() as fake:
        monkeypatch.setenv("MLTRAINER_KAGGLE_ENDPOINT", fake.url)
        fake.add_legacy_key(KAGGLE_USER, KAGGLE_KEY)
        fake.add_token(KAGGLE_TOKEN, KAGGLE_USER)
        fake.add_dataset("acme", "churn", {"churn.csv": CSV})
        fake.add_dataset("acme", "bundle", {"train.csv": CSV, "test.csv": CSV[:50], "docs/README.txt": b"hi"})
        fake.add_competition("titanic", {"train.csv": CSV, "test.csv": CSV[:60]}, accepted={KAGGLE_USER})
        fake.add_competition("closed", {"train.csv": CSV})
        yield fake


LEGACY = {"kaggle_username": KAGGLE_USER, "kaggle_key": KAGGLE_KEY}


def test_kaggle_dataset_download_unzips_and_is_cached(kaggle: FakeKaggleData, cache: Path) -> None:
    fetched = fetch("kaggle://acme/churn", cache_dir=cache, credentials=LEGACY)
    assert fetched.path.name == "churn.csv" and fetched.path.read_bytes() == CSV
    assert fetched.info["scheme"] == "kaggle" and fetched.info["cached"] is False and fetched.info["members"] == 1
    call = kaggle.requests[0]
    assert call["method"] == "POST" and call["path"] == "/v1/datasets.DatasetApiService/DownloadDataset"
    assert call["body"]["ownerSlug"] == "acme" and call["body"]["datasetSlug"] == "churn"
    assert call["authorization"].startswith("Basic ")
    assert kaggle.requests[1]["path"].startswith("/blobs/") and kaggle.requests[1]["authorization"] == ""
    seen = len(kaggle.requests)
    again = fetch("kaggle://acme/churn", cache_dir=cache)  # cached: needs neither credentials nor the network
    assert again.path == fetched.path and again.info["cached"] is True and len(kaggle.requests) == seen
    assert KAGGLE_KEY.encode() not in (cache / "urls.json").read_bytes()


def test_kaggle_bundle_and_one_file(kaggle: FakeKaggleData, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_API_TOKEN", KAGGLE_TOKEN)
    folder = fetch("kaggle://acme/bundle", cache_dir=cache)
    assert folder.path.is_dir() and sorted(p.name for p in folder.path.rglob("*.csv")) == ["test.csv", "train.csv"]
    assert kaggle.requests[0]["authorization"] == f"Bearer {KAGGLE_TOKEN}"
    one = fetch("kaggle://acme/bundle/test.csv", cache_dir=cache)
    assert one.path.name == "test.csv" and one.path.read_bytes() == CSV[:50]
    assert kaggle.requests[-2]["body"]["fileName"] == "test.csv"


def test_kaggle_competition(kaggle: FakeKaggleData, cache: Path) -> None:
    fetched = fetch("kaggle://competitions/titanic", cache_dir=cache, credentials={"kaggle_api_token": KAGGLE_TOKEN})
    assert fetched.path.is_dir() and (fetched.path / "train.csv").read_bytes() == CSV
    assert kaggle.requests[0]["path"] == "/v1/competitions.CompetitionApiService/DownloadDataFiles"
    assert kaggle.requests[0]["body"] == {"competitionName": "titanic"}
    assert fetch("kaggle://c/titanic", cache_dir=cache).info["cached"] is True
    single = fetch("kaggle://c/titanic/test.csv", cache_dir=cache, credentials=LEGACY)
    assert single.path.read_bytes() == CSV[:60]


def test_kaggle_competition_rules_not_accepted(kaggle: FakeKaggleData, cache: Path) -> None:
    with pytest.raises(CredentialError, match="accept the competition's rules at "
                                              r"https://www.kaggle.com/competitions/closed/rules"):
        fetch("kaggle://competitions/closed", cache_dir=cache, credentials=LEGACY)


@pytest.mark.parametrize(("source", "credentials", "error", "message"), [
    ("kaggle://acme/missing", LEGACY, DataError, "not found on Kaggle; check the owner and dataset name"),
    ("kaggle://c/missing", LEGACY, DataError, "not found on Kaggle; check the competition name"),
    ("kaggle://acme/churn", {}, CredentialError, "need Kaggle credentials; create an API token"),
    ("kaggle://acme/churn", {"kaggle_key": KAGGLE_KEY}, CredentialError, "needs the Kaggle user name"),
    ("kaggle://acme/churn", {"kaggle_username": KAGGLE_USER, "kaggle_key": "f" * 32}, CredentialError,
     "rejected the credentials"),
    ("kaggle://acme", LEGACY, DataError, "not a valid Kaggle source"),
])
def test_kaggle_errors(source: str, credentials: dict[str, str], error: type[Exception], message: str,
                       kaggle: FakeKaggleData, cache: Path) -> None:
    with pytest.raises(error, match=message) as caught:
        fetch(source, cache_dir=cache, credentials=credentials)
    assert KAGGLE_KEY not in str(caught.value) and "f" * 32 not in str(caught.value)
    assert not list(cache.rglob("*.part"))


def test_kaggle_path_traversal_zip_is_refused(kaggle: FakeKaggleData, cache: Path) -> None:
    kaggle.add_dataset("evil", "set", {}, archive=zip_of({"../../escape.csv": CSV}))
    with pytest.raises(DataError, match="unsafe entry '../../escape.csv'"):
        fetch("kaggle://evil/set", cache_dir=cache, credentials=LEGACY)
    assert not list(cache.rglob("escape.csv"))


def test_kaggle_size_cap_and_server_errors(kaggle: FakeKaggleData, cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="over the 100-byte limit; raise data.max_bytes"):
        fetch("kaggle://acme/churn", cache_dir=cache, credentials=LEGACY, max_bytes=100)
    assert not list(cache.rglob("*.part")) and not (cache / "files").exists()
    kaggle.status_override = 503
    with pytest.raises(TransientError, match="HTTP 503"):
        fetch("kaggle://acme/churn", cache_dir=cache, credentials=LEGACY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLTRAINER_KAGGLE_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError, match="check the network and resume"):
        fetch("kaggle://acme/churn", cache_dir=cache, credentials=LEGACY, timeout=2)
