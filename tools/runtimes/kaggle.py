"""Kaggle runtime: the generated train.py runs as a private Kaggle kernel (script) on a free GPU.

``submit`` packs the prepared splits into one tar (fixed timestamps, so the same data gives the
same bytes), uploads it as a private dataset named after its sha256 (a resumed job finds it there
and uploads nothing), then pushes a kernel named after the submission (job id + stage + attempt)
whose source is a short bootstrap with train.py inside: it unpacks the splits and runs the script
with ``--out-dir /kaggle/working/out``. ``status`` polls the kernel session, ``logs`` parses the log
Kaggle publishes when the session ends (METRIC lines reach the observer from there), ``fetch``
downloads the files under ``out/``. The kernel folder (source + ``kernel-metadata.json``) is also
written to ``run/kaggle/`` so a person can read what was pushed.

Kaggle keeps every kernel version, so no credential ever goes into the kernel's source or metadata;
the kernel needs none (its data is attached, internet is off unless ``runtime_options.internet``).
Calls go through kagglesdk's HTTP client with the explicit credentials of
:func:`tools.kaggle_source._auth` (``import kaggle`` never happens); ``MLTRAINER_KAGGLE_ENDPOINT``
replaces ``https://api.kaggle.com``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ClientError, CredentialError, TransientError
from tools.runtimes.base import Poll, RemoteStatus, Runtime, TrainingRun, slug

if TYPE_CHECKING:
    from orchestrator.context import JobContext

DATA_ARCHIVE = "mltrainer-data.tar"
KERNEL_FILE = "mltrainer_kernel.py"
METADATA_FILE = "kernel-metadata.json"
OUTPUT_PREFIX = "out/"
#: runtime_options.gpu → Kaggle's machine shape (accelerator).
ACCELERATORS = {"T4": "NvidiaTeslaT4", "P100": "NvidiaTeslaP100"}
#: Kaggle's kernel worker states → the runtime interface's.
STATES = {"QUEUED": "queued", "NEW_SCRIPT": "queued", "RUNNING": "running", "COMPLETE": "done", "ERROR": "failed",
          "CANCEL_REQUESTED": "cancelled", "CANCEL_ACKNOWLEDGED": "cancelled"}
DATASET_READY_WAIT = 1800.0
SETTINGS_PAGE = "https://www.kaggle.com/settings"


def job_credentials(context: JobContext) -> dict[str, str]:
    """Kaggle credentials for a job: those given in its intake (from the vault), else the user's own
    (KAGGLE_API_TOKEN / KAGGLE_USERNAME + KAGGLE_KEY / ~/.kaggle)."""
    from tools.vault import Vault, discover_credentials

    found = {k: v for k, v in discover_credentials().items() if k.startswith("kaggle_")}
    refs = (context.intake or {}).get("credentials") or {}
    if any(kind.startswith("kaggle_") for kind in refs):
        vault = Vault()
        for kind, ref in refs.items():
            value = vault.get(context.job_id, ref) if kind.startswith("kaggle_") else None
            if value:
                found[kind] = value
    return found


def pack_data(data_dir: Path, archive: Path) -> str:
    """Tar ``data_dir`` reproducibly (sorted names, zero times and owners); returns the archive's sha256."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".part")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(data_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    os.replace(partial, archive)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kernel_source(run: TrainingRun, data_ref: str, script_text: str) -> str:
    """The kernel: unpack the splits, run train.py with the run's arguments, exit with its status."""
    return f'''"""mltrainer: job {run.job_id}, {run.stage} attempt {run.attempt} — runs the generated train.py.

The prepared splits come from the private dataset {data_ref} ({DATA_ARCHIVE}); the script writes its
model, metrics and checkpoints to /kaggle/working/{OUTPUT_PREFIX}, which mltrainer downloads.
"""
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

INPUT = Path(os.environ.get("MLTRAINER_KAGGLE_INPUT", "/kaggle/input"))
ARCHIVE = {DATA_ARCHIVE!r}
ARGS = {list(run.args)!r}
GPUS = {int(run.gpu_count)}
TRAIN_PY = {script_text!r}


def data_dir() -> Path:
    for path in sorted(INPUT.rglob(ARCHIVE)):
        target = Path(tempfile.mkdtemp(prefix="mltrainer-data-"))
        with tarfile.open(path) as archive:
            try:
                archive.extractall(target, filter="data")
            except TypeError:  # Python without extraction filters
                archive.extractall(target)
        return target
    for meta in sorted(INPUT.rglob("meta.json")):  # Kaggle unpacked the archive itself
        return meta.parent
    sys.exit(f"mltrainer: {{ARCHIVE}} is not under {{INPUT}}; attach the dataset {data_ref} to this kernel")


def main() -> None:
    script = Path(tempfile.mkdtemp(prefix="mltrainer-run-")) / "train.py"
    script.write_text(TRAIN_PY)
    out = Path.cwd() / {OUTPUT_PREFIX.rstrip("/")!r}
    launcher = [sys.executable, "-u"]
    if GPUS > 1 and "LOCAL_RANK" in TRAIN_PY:  # the script can spread over several GPUs
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={{GPUS}}"]
    sys.exit(subprocess.call([*launcher, str(script), "--data-dir", str(data_dir()), "--out-dir", str(out), *ARGS]))


if __name__ == "__main__":
    main()
'''


def kernel_metadata(run: TrainingRun, user: str, kernel_slug: str, data_ref: str) -> dict[str, Any]:
    """kernel-metadata.json as the kaggle CLI reads it: no credential is (or may be) in here."""
    gpu = run.gpu or "T4"
    datasets, competitions = [data_ref], []
    if run.source.startswith("kaggle://"):  # the raw data already lives on Kaggle: attach it too
        from tools.kaggle_source import parse_kaggle

        source = parse_kaggle(run.source)
        if source.kind == "competition":
            competitions.append(source.name)
        else:
            datasets.append(f"{source.owner}/{source.name}")
    return {
        "id": f"{user}/{kernel_slug}", "title": kernel_slug, "code_file": KERNEL_FILE, "language": "python",
        "kernel_type": "script", "is_private": True, "enable_gpu": gpu != "none", "enable_tpu": False,
        "enable_internet": bool(run.internet), "dataset_sources": datasets, "competition_sources": competitions,
        "kernel_sources": [], "model_sources": [], "machine_shape": ACCELERATORS.get(gpu),
        "session_timeout_seconds": int(run.timeout),
    }


def parse_log(text: str | None) -> list[tuple[str, str]]:
    """Kaggle's kernel log (a JSON list of {stream_name, data} chunks, or plain text) → (stream, line)."""
    if not text:
        return []
    try:
        chunks = json.loads(text)
    except ValueError:
        chunks = None
    if not isinstance(chunks, list):
        return [("stdout", line) for line in text.splitlines()]
    lines: list[tuple[str, str]] = []
    pending: dict[str, str] = {}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        stream = "stderr" if chunk.get("stream_name") == "stderr" else "stdout"
        buffer = pending.get(stream, "") + str(chunk.get("data") or "")
        *complete, pending[stream] = buffer.split("\n")
        lines.extend((stream, line.rstrip("\r")) for line in complete)
    lines.extend((stream, rest) for stream, rest in pending.items() if rest)
    return lines


def _refused(err: Any, what: str) -> Exception:
    """An HTTP error from Kaggle → one sentence saying what to do."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        return CredentialError(f"Kaggle refused {what} ({status}); check the Kaggle API token (create one at "
                               f"{SETTINGS_PAGE}) and that its account may run kernels.")
    if status is None or status >= 500 or status in (408, 429):
        return TransientError(f"Kaggle answered {status or 'nothing'} while {what}; try again in a moment.")
    message = ""
    try:
        message = str(err.response.json().get("message") or "")
    except (AttributeError, ValueError):
        pass
    return ClientError(f"Kaggle refused {what} (HTTP {status}{': ' + message[:200] if message else ''}); check "
                       "runtime_options and the spec.")


class KaggleRuntime(Runtime):
    name = "kaggle"
    poll = Poll(first=15.0, factor=1.5, cap=90.0)

    def __init__(self, *, credentials: Mapping[str, str] | None = None, endpoint: str | None = None,
                 http_timeout: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = dict(credentials or {})
        self.endpoint = endpoint
        self.http_timeout = http_timeout
        self._user: str | None = None
        self._outputs: dict[str, tuple[list[Any], str | None]] = {}

    # -- plumbing --------------------------------------------------------------------------------
    def _auth(self) -> Any:
        from tools.kaggle_source import _auth

        given = any(self.credentials.get(k) for k in ("kaggle_api_token", "kaggle_key"))
        if not given and not (os.environ.get("KAGGLE_API_TOKEN") or os.environ.get("KAGGLE_KEY")):
            raise CredentialError(f"runtime kaggle needs Kaggle credentials; create an API token at {SETTINGS_PAGE} "
                                  "and set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), then resume.")
        return _auth(self.credentials)[0]

    @contextmanager
    def _client(self) -> Iterator[Any]:
        from tools.kaggle_source import ENDPOINT_ENV
        from tools.kaggle_validator import _sdk_client

        auth = self._auth()
        client, _base = _sdk_client(endpoint=self.endpoint or os.environ.get(ENDPOINT_ENV) or None, auth=auth,
                                    timeout=self.http_timeout)
        with client:
            yield client

    def _call(self, what: str, call: Callable[[Any], Any]) -> Any:
        import requests

        try:
            with self._client() as client:
                return call(client)
        except requests.exceptions.HTTPError as err:
            raise _refused(err, what) from None
        except requests.exceptions.RequestException as err:
            raise TransientError(f"Could not reach Kaggle while {what} ({type(err).__name__}); check the network "
                                 "and resume.") from None

    def username(self) -> str:
        """The account the kernel and dataset belong to: the given user name, else the token's owner."""
        if self._user:
            return self._user
        user = (self.credentials.get("kaggle_username") or os.environ.get("KAGGLE_USERNAME") or "").strip()
        if not user:
            from kagglesdk.security.services.oauth_service import OAuthClient
            from kagglesdk.security.types.oauth_service import IntrospectTokenRequest

            auth = self._auth()
            request = IntrospectTokenRequest()
            request.token = str(getattr(auth, "token", "") or "")
            if not request.token:
                raise CredentialError("A legacy Kaggle key needs the Kaggle user name too; add it as KAGGLE_USERNAME.")
            reply = self._call("identifying the token's user", lambda c: OAuthClient(c).introspect_token(request))
            user = (reply.username or "").strip()
            if not user:
                raise CredentialError("Kaggle did not say whose API token this is; add the user name as KAGGLE_USERNAME.")
        self._user = user
        return user

    # -- data ------------------------------------------------------------------------------------
    def _dataset_state(self, user: str, data_slug: str) -> str | None:
        """The dataset's processing state, or None when it does not exist."""
        import requests
        from kagglesdk.datasets.services.dataset_api_service import DatasetApiClient
        from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetStatusRequest

        request = ApiGetDatasetStatusRequest()
        request.owner_slug, request.dataset_slug = user, data_slug
        try:
            with self._client() as client:
                reply = DatasetApiClient(client).get_dataset_status(request)
        except requests.exceptions.HTTPError as err:
            if getattr(err.response, "status_code", None) == 404:
                return None
            raise _refused(err, f"the status of dataset {user}/{data_slug}") from None
        except requests.exceptions.RequestException as err:
            raise TransientError(f"Could not reach Kaggle ({type(err).__name__}); check the network and resume.") from None
        return getattr(reply.status, "name", str(reply.status))

    def _upload_blob(self, archive: Path) -> str:
        import requests
        from kagglesdk.blobs.services.blob_api_service import BlobApiClient
        from kagglesdk.blobs.types.blob_api_service import ApiBlobType, ApiStartBlobUploadRequest

        request = ApiStartBlobUploadRequest()
        request.type, request.name = ApiBlobType.DATASET, archive.name
        request.content_length = archive.stat().st_size
        request.content_type = "application/x-tar"
        request.last_modified_epoch_seconds = 0
        started = self._call("starting the data upload", lambda c: BlobApiClient(c).start_blob_upload(request))
        try:
            with open(archive, "rb") as body:
                reply = requests.put(started.create_url, data=body, timeout=self.http_timeout,
                                     headers={"Content-Type": "application/x-tar",
                                              "Content-Length": str(request.content_length)})
            reply.raise_for_status()
        except requests.exceptions.RequestException as err:
            raise TransientError(f"Uploading the prepared data to Kaggle failed ({type(err).__name__}); resume to "
                                 "try again.") from None
        return str(started.token)

    def upload_data(self, run: TrainingRun) -> str:
        """The prepared splits as a private dataset named by their hash; uploads only when Kaggle lacks it."""
        from kagglesdk.datasets.services.dataset_api_service import DatasetApiClient
        from kagglesdk.datasets.types.dataset_api_service import ApiCreateDatasetRequest, ApiDatasetNewFile

        user = self.username()
        archive = run.out_dir.parent / "kaggle" / DATA_ARCHIVE
        digest = pack_data(run.data_dir, archive)
        data_slug = f"mltrainer-data-{digest[:16]}"
        state = self._dataset_state(user, data_slug)
        if state is None:
            new_file = ApiDatasetNewFile()
            new_file.token = self._upload_blob(archive)
            request = ApiCreateDatasetRequest()
            request.owner_slug, request.slug = user, data_slug
            request.title = f"mltrainer data {digest[:12]}"
            request.license_name, request.is_private, request.files = "unknown", True, [new_file]
            request.description = f"Prepared train/val/test splits of mltrainer job {run.job_id} (sha256 {digest})."
            reply = self._call("creating the data set", lambda c: DatasetApiClient(c).create_dataset(request))
            if reply.error:
                raise ClientError(f"Kaggle refused the data set {user}/{data_slug}: {reply.error}")
            state = self._dataset_state(user, data_slug)
        waited = 0.0
        while state not in ("READY", None):
            if state in ("FAILED", "DELETED") or waited > DATASET_READY_WAIT:
                raise TransientError(f"Kaggle did not get the data set {user}/{data_slug} ready (state {state}); "
                                     "resume to try again.")
            delay = min(self.poll.cap, self.poll.first)
            self.sleep(delay)
            waited += delay
            state = self._dataset_state(user, data_slug)
        return f"{user}/{data_slug}"

    # -- the remote protocol -----------------------------------------------------------------------
    def submit(self, run: TrainingRun) -> str:
        from kagglesdk.kernels.services.kernels_api_service import KernelsApiClient
        from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelRequest

        data_ref = self.upload_data(run)
        user = self.username()
        kernel_slug = slug(run.name, 50)
        meta = kernel_metadata(run, user, kernel_slug, data_ref)
        source = kernel_source(run, data_ref, run.script.read_text(encoding="utf-8"))
        folder = run.out_dir.parent / "kaggle" / kernel_slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / KERNEL_FILE).write_text(source, encoding="utf-8")
        (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        request = ApiSaveKernelRequest()
        request.slug, request.new_title, request.text = meta["id"], meta["title"], source
        request.language, request.kernel_type, request.is_private = "python", "script", True
        request.enable_gpu, request.enable_tpu, request.enable_internet = meta["enable_gpu"], False, meta["enable_internet"]
        request.dataset_data_sources, request.competition_data_sources = meta["dataset_sources"], meta["competition_sources"]
        request.kernel_data_sources, request.model_data_sources, request.category_ids = [], [], []
        request.session_timeout_seconds = meta["session_timeout_seconds"]
        if meta["machine_shape"]:
            request.machine_shape = meta["machine_shape"]
        reply = self._call(f"the kernel {meta['id']}", lambda c: KernelsApiClient(c).save_kernel(request))
        invalid = list(reply.invalid_dataset_sources or []) + list(reply.invalid_competition_sources or [])
        if reply.error or invalid:
            why = reply.error or f"it cannot attach {', '.join(invalid)}"
            raise ClientError(f"Kaggle refused the kernel {meta['id']}: {why}")
        return meta["id"]

    def status(self, run: TrainingRun, remote_id: str) -> RemoteStatus:
        from kagglesdk.kernels.services.kernels_api_service import KernelsApiClient
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        request = ApiGetKernelSessionStatusRequest()
        request.user_name, request.kernel_slug = remote_id.split("/", 1)
        reply = self._call(f"the status of kernel {remote_id}",
                           lambda c: KernelsApiClient(c).get_kernel_session_status(request))
        name = getattr(reply.status, "name", str(reply.status))
        state = STATES.get(name, "running")
        message = reply.failure_message or ""
        if state == "failed" and not message:
            message = f"the Kaggle kernel {remote_id} failed; its log is in run/kaggle/"
        return RemoteStatus(state, message)

    def _output(self, remote_id: str) -> tuple[list[Any], str | None]:
        """Every output file entry and the log of a finished kernel (fetched once)."""
        if remote_id not in self._outputs:
            from kagglesdk.kernels.services.kernels_api_service import KernelsApiClient
            from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

            files: list[Any] = []
            log: str | None = None
            token: str | None = None
            while True:
                request = ApiListKernelSessionOutputRequest()
                request.user_name, request.kernel_slug = remote_id.split("/", 1)
                request.page_size = 100
                if token:
                    request.page_token = token
                reply = self._call(f"the output of kernel {remote_id}",
                                   lambda c, r=request: KernelsApiClient(c).list_kernel_session_output(r))
                files.extend(reply.files or [])
                log = log or reply.log
                token = reply.next_page_token
                if not token:
                    break
            self._outputs[remote_id] = (files, log)
        return self._outputs[remote_id]

    def logs(self, run: TrainingRun, remote_id: str, final: bool) -> list[tuple[str, str]]:
        if not final:
            return []  # Kaggle publishes a kernel's log when its session ends
        _, log = self._output(remote_id)
        if log:
            folder = run.out_dir.parent / "kaggle"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{remote_id.split('/', 1)[1]}.log").write_text(log, encoding="utf-8")
        return parse_log(log)

    def fetch(self, run: TrainingRun, remote_id: str) -> list[str]:
        import requests

        files, _ = self._output(remote_id)
        written: list[str] = []
        run.out_dir.mkdir(parents=True, exist_ok=True)
        for entry in files:
            name = str(entry.file_name or "")
            relative = PurePosixPath(name.removeprefix(OUTPUT_PREFIX))
            if not name.startswith(OUTPUT_PREFIX) or not entry.url or relative.is_absolute() or ".." in relative.parts:
                continue
            target = run.out_dir.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            try:
                with requests.get(entry.url, stream=True, timeout=self.http_timeout) as reply:
                    reply.raise_for_status()
                    with open(partial, "wb") as out:
                        for block in reply.iter_content(1 << 20):
                            out.write(block)
            except requests.exceptions.RequestException as err:
                partial.unlink(missing_ok=True)
                raise TransientError(f"Downloading {name} from kernel {remote_id} failed ({type(err).__name__}); "
                                     "resume to fetch it again.") from None
            os.replace(partial, target)
            written.append(str(relative))
        return written

    def cancel(self, run: TrainingRun, remote_id: str) -> str:
        # Kaggle's public API cancels by session id, which a pushed kernel does not return.
        return f"stop it at https://www.kaggle.com/code/{remote_id} if it is still running"
