"""Modal runtime: the generated train.py runs in the app of :mod:`tools.runtimes.modal_app` on a Modal GPU.

``submit`` uploads the script and the prepared splits into a Volume named after the job (one
folder per submission, named after it), then spawns the ``train`` function in a detached app run,
so the remote run outlives mltrainer; the function call id is what the store records and what a
resumed job reattaches to. ``logs`` reads the stdout/stderr files the function keeps committing to
the Volume (METRIC lines reach the observer while it runs), ``fetch`` copies ``out/`` back.

Everything that talks to Modal is in :class:`ModalClient`, the small surface the runtime uses
(upload, spawn, poll, read, download, cancel); tests replace it with a fake that runs the same
``train`` function through ``.local()``. Tokens: the job's (from the vault) or the user's own
(``MODAL_TOKEN_ID``/``MODAL_TOKEN_SECRET`` or ``~/.modal.toml``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ClientError, CredentialError, TransientError
from tools.runtimes.base import Poll, RemoteStatus, Runtime, TrainingRun, slug
from tools.runtimes.modal_app import AppSpec, script_requirements

if TYPE_CHECKING:
    from orchestrator.context import JobContext

TOKEN_HELP = ("runtime modal needs a Modal token: run 'modal token new', or set MODAL_TOKEN_ID and "
              "MODAL_TOKEN_SECRET")


def job_client(context: JobContext) -> ModalClient:
    """A client with the job's Modal token (vault), else the user's; CredentialError when there is none."""
    from tools.vault import Vault, discover_credentials

    found = {k: v for k, v in discover_credentials().items() if k.startswith("modal_")}
    refs = (context.intake or {}).get("credentials") or {}
    if any(kind.startswith("modal_") for kind in refs):
        vault = Vault()
        for kind, ref in refs.items():
            value = vault.get(context.job_id, ref) if kind.startswith("modal_") else None
            if value:
                found[kind] = value
    if not (found.get("modal_token_id") and found.get("modal_token_secret")):
        raise CredentialError(TOKEN_HELP + ".")
    return ModalClient(found["modal_token_id"], found["modal_token_secret"])


def _modal_error(err: BaseException, what: str) -> Exception:
    """A Modal SDK exception → one of our error classes, in one sentence."""
    import modal.exception as me

    name = type(err).__name__
    if isinstance(err, (me.AuthError, me.PermissionDeniedError)):
        return CredentialError(f"Modal refused {what} ({name}); {TOKEN_HELP}.")
    if isinstance(err, (me.InvalidError, me.NotFoundError, me.ImageBuildError)):
        return ClientError(f"Modal refused {what}: {str(err).splitlines()[0][:300] if str(err) else name}.")
    return TransientError(f"Modal failed while {what} ({name}); resume to try again.")


class ModalClient:
    """The part of the Modal SDK the runtime uses; every call goes out with this client's token."""

    def __init__(self, token_id: str, token_secret: str) -> None:
        self._token = (token_id, token_secret)
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import modal

            self._client = modal.Client.from_credentials(*self._token)
        return self._client

    def _volume(self, name: str) -> Any:
        import modal

        return modal.Volume.from_name(name, create_if_missing=True, client=self.client())

    def upload(self, volume: str, files: dict[str, Path]) -> None:
        """Put local files and folders at the given Volume paths (overwriting)."""
        try:
            with self._volume(volume).batch_upload(force=True) as batch:
                for remote, local in files.items():
                    if local.is_dir():
                        batch.put_directory(str(local), remote)
                    else:
                        batch.put_file(str(local), remote)
        except Exception as err:  # noqa: BLE001 - the SDK raises many kinds; each gets a sentence
            raise _modal_error(err, f"the upload to Volume {volume}") from None

    def spawn(self, spec: AppSpec, run_dir: str, args: list[str], gpu_count: int) -> str:
        """Start ``train`` in a detached app run; returns the function call id."""
        from tools.runtimes.modal_app import build_app

        built = build_app(spec)
        try:
            with built.app.run(detach=True, client=self.client()):
                call = built.function.spawn(run_dir, args, gpu_count)
        except Exception as err:  # noqa: BLE001
            raise _modal_error(err, f"starting app {spec.app_name}") from None
        return str(call.object_id)

    def poll(self, call_id: str) -> tuple[str, Any]:
        """('running', None), ('done', the function's result) or ('failed', why)."""
        import modal
        import modal.exception as me

        try:
            result = modal.FunctionCall.from_id(call_id, client=self.client()).get(timeout=0)
        except (TimeoutError, me.TimeoutError) as err:
            if isinstance(err, me.FunctionTimeoutError):
                return "failed", "the Modal function ran past its timeout"
            return "running", None
        except me.OutputExpiredError:
            return "failed", "Modal no longer holds this run's result (it expired); resume to run it again"
        except (me.AuthError, me.PermissionDeniedError, me.ConnectionError) as err:
            raise _modal_error(err, f"checking call {call_id}") from None
        except Exception as err:  # noqa: BLE001 - the remote function raised
            return "failed", f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
        return "done", result

    def read(self, volume: str, path: str) -> bytes | None:
        try:
            return b"".join(self._volume(volume).read_file(path))
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001
            import modal.exception as me

            if isinstance(err, me.NotFoundError):
                return None
            raise _modal_error(err, f"reading {path}") from None

    def download(self, volume: str, remote_dir: str, local_dir: Path) -> list[str]:
        from modal.volume import FileEntryType

        vol = self._volume(volume)
        written = []
        try:
            for entry in vol.listdir(remote_dir, recursive=True):
                if entry.type != FileEntryType.FILE:
                    continue
                relative = PurePosixPath(entry.path.lstrip("/")).relative_to(remote_dir.strip("/"))
                target = local_dir.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                with open(partial, "wb") as out:
                    vol.read_file_into_fileobj(entry.path, out)
                os.replace(partial, target)
                written.append(relative.as_posix())
        except Exception as err:  # noqa: BLE001
            raise _modal_error(err, f"downloading {remote_dir}") from None
        return written

    def cancel(self, call_id: str) -> None:
        import modal

        modal.FunctionCall.from_id(call_id, client=self.client()).cancel()


class ModalRuntime(Runtime):
    name = "modal"
    poll = Poll(first=5.0, factor=1.5, cap=30.0)

    def __init__(self, *, client: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    @staticmethod
    def volume(run: TrainingRun) -> str:
        return slug(f"mltrainer-{run.job_id}", 60)

    def app_spec(self, run: TrainingRun) -> AppSpec:
        script = run.script.read_text(encoding="utf-8")
        return AppSpec(app_name=slug(f"mltrainer-{run.job_id}", 60), volume_name=self.volume(run),
                       gpu=run.gpu or "T4", gpu_count=run.gpu_count, timeout=int(run.timeout),
                       requirements=script_requirements(script))

    def submit(self, run: TrainingRun) -> str:
        spec = self.app_spec(run)
        self.client.upload(spec.volume_name, {f"{run.name}/train.py": run.script, f"{run.name}/data": run.data_dir})
        return str(self.client.spawn(spec, run.name, list(run.args), run.gpu_count))

    def status(self, run: TrainingRun, remote_id: str) -> RemoteStatus:
        state, value = self.client.poll(remote_id)
        if state == "running":
            return RemoteStatus("running")
        if state == "done" and isinstance(value, dict):
            code = int(value.get("returncode", 1))
            message = "" if code == 0 else f"train.py exited with status {code} on Modal"
            return RemoteStatus("done" if code == 0 else "failed", message, code, value.get("seconds"))
        return RemoteStatus("failed", str(value or "the Modal run failed"))

    def _lines(self, run: TrainingRun, name: str, final: bool) -> list[str]:
        data = self.client.read(self.volume(run), f"{run.name}/{name}")
        if not data:
            return []
        lines = data.decode("utf-8", errors="replace").split("\n")
        tail = lines.pop()  # after the last newline: '' or a line still being written
        return lines + ([tail] if final and tail else [])

    def logs(self, run: TrainingRun, remote_id: str, final: bool) -> list[tuple[str, str]]:
        return ([("stdout", line) for line in self._lines(run, "stdout.txt", final)]
                + [("stderr", line) for line in self._lines(run, "stderr.txt", final)])

    def fetch(self, run: TrainingRun, remote_id: str) -> list[str]:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        return list(self.client.download(self.volume(run), f"{run.name}/out", run.out_dir))

    def cancel(self, run: TrainingRun, remote_id: str) -> str:
        try:
            self.client.cancel(remote_id)
        except Exception as err:  # noqa: BLE001 - report, do not mask the reason we are cancelling
            return f"cancelling failed ({type(err).__name__}); stop it in the Modal dashboard"
        return "cancelled"
