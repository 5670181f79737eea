"""The credential vault and secret redaction.

A secret a user types (an API key pasted into a chat or a spec file) must never reach an LLM
request, the database, logs, events or files. Every user message goes through :func:`redact`
first: each secret is stored in the vault (``vault.json``, mode 0600, the only place a secret is
ever written) and replaced in the text by a reference such as ``⟨secret:hf_token:1⟩``. A reference
turns back into its value only in :meth:`Vault.resolve_arguments`, for the arguments of a tool
call about to run, and only from the current job's own entries. Tool results, error messages and
events go through :func:`mask`, which hides even secrets the vault has never seen.

The kind names are in :data:`CREDENTIAL_KINDS`; references, patterns and discovery share them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mltrainer import settings
from orchestrator.errors import CredentialError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

VAULT_FILE = "vault.json"
#: Every kind name this module uses: kind → what it is and where it comes from.
CREDENTIAL_KINDS: dict[str, str] = {
    "hf_token": "Hugging Face token hf_… (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, `hf auth login`)",
    "hf_org_token": "Hugging Face organisation token api_org_…",
    "openai_api_key": "OpenAI sk-…, sk-proj-…, sk-svcacct-…, sk-admin-… (OPENAI_API_KEY)",
    "anthropic_api_key": "Anthropic sk-ant-api03-… / sk-ant-admin01-… (ANTHROPIC_API_KEY)",
    "groq_api_key": "Groq gsk_… (GROQ_API_KEY)",
    "google_api_key": "Google AIza…, 39 characters (GOOGLE_API_KEY)",
    "gemini_api_key": "GEMINI_API_KEY (an AIza… key: in text it is found as google_api_key)",
    "mistral_api_key": "MISTRAL_API_KEY", "together_api_key": "TOGETHER_API_KEY",
    "openrouter_api_key": "OPENROUTER_API_KEY", "deepseek_api_key": "DEEPSEEK_API_KEY",
    "kaggle_username": "Kaggle user name (KAGGLE_USERNAME, kaggle.json); not a secret",
    "kaggle_key": "legacy 32-hex Kaggle key (KAGGLE_KEY, kaggle.json)",
    "kaggle_api_token": "Kaggle API token KGAT_… (KAGGLE_API_TOKEN, ~/.kaggle/access_token)",
    "modal_token_id": "Modal token id ak-… (MODAL_TOKEN_ID, ~/.modal.toml)",
    "modal_token_secret": "Modal token secret as-… (MODAL_TOKEN_SECRET, ~/.modal.toml)",
    "bearer_token": "a token after `Authorization: Bearer`",
    "password": "a value of 8+ characters assigned to password/passwd/passphrase",
    "generic_secret": "a random-looking value of 8+ characters assigned to a key/token/secret name",
}
PUBLIC_KINDS = frozenset({"kaggle_username"})  # discovered alongside secrets, but safe to show
REF_PATTERN = re.compile(r"⟨secret:([a-z0-9_]+):([0-9]+)⟩")
NEAR_WINDOW = 120  # characters either side in which a bare 32-hex key must see "kaggle"/"username"
MIN_LITERAL = 6  # known vault values shorter than this are not masked literally (too many hits)


class VaultError(CredentialError):
    """The vault file cannot be read or written; the message names the file and the fix."""


@dataclass(frozen=True)
class SecretPattern:
    """One secret format. The ``secret`` group (else the whole match) is what gets replaced; the
    ``prefix`` group is kept visible by :func:`mask` (``hf_***``) so a person sees which key it was."""

    kind: str
    regex: re.Pattern[str]
    description: str
    check: Callable[[str], bool] | None = None  # extra test on the value, against prose
    near: re.Pattern[str] | None = None  # must occur within NEAR_WINDOW characters


_START = r"(?<![A-Za-z0-9_-])"  # not glued to a longer word: "risk-free" holds no "sk-"
_END = r"(?![A-Za-z0-9_-])"
_MIXED = r"(?=[A-Za-z0-9_-]*[0-9A-Z])"  # a digit or a capital somewhere: random, not a word
_STOP = "\\s\"'`,;&<>()\\[\\]{}⟨⟩|\\\\"  # characters that end an assigned value
_PLACEHOLDER = re.compile(r"[*xX.#_-]+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # ****, YOUR_API_KEY


def _token(prefix: str, body: str) -> re.Pattern[str]:
    return re.compile(rf"{_START}(?P<secret>(?P<prefix>{prefix}){_MIXED}{body}){_END}")


def _assignment(names: str) -> re.Pattern[str]:
    return re.compile(
        rf"{_START}(?:[A-Za-z0-9]+[_-])*(?:{names})[\"']?\s*(?:=>|:=|[:=])[ \t]*[\"']?"
        rf"(?P<secret>(?!\$)[^{_STOP}]++)(?!\()",
        re.IGNORECASE,
    )


def _looks_random(value: str) -> bool:
    """A digit, or a capital after the first letter: 'Understanding' is prose, 'x9Kq…' is not."""
    return not _PLACEHOLDER.fullmatch(value) and (
        any(c.isdigit() for c in value) or any(c.isupper() for c in value[1:]))


#: Order is priority: where two matches overlap, the earlier pattern wins (so a key assigned to
#: ``api_key=`` keeps its real kind, and ``sk-ant-`` is never taken for OpenAI).
SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern("anthropic_api_key", _token(r"sk-ant-(?:api|admin|sid|oat)[0-9]{2}-", r"[A-Za-z0-9_-]{20,}"),
                  "Anthropic API or admin key"),
    SecretPattern("openai_api_key", _token(r"sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?", r"[A-Za-z0-9_-]{20,}"),
                  "OpenAI key (user, project, service account or admin)"),
    SecretPattern("hf_token", _token(r"hf_", r"[A-Za-z0-9]{30,}"), "Hugging Face user access token"),
    SecretPattern("hf_org_token", _token(r"api_org_", r"[A-Za-z0-9]{30,}"), "Hugging Face organisation token"),
    SecretPattern("groq_api_key", _token(r"gsk_", r"[A-Za-z0-9]{20,}"), "Groq API key"),
    SecretPattern("google_api_key", _token(r"AIza", r"[0-9A-Za-z_-]{35}"), "Google / Gemini API key"),
    SecretPattern("kaggle_api_token", _token(r"KGAT_", r"[A-Za-z0-9]{20,}"), "Kaggle API token"),
    SecretPattern("modal_token_id", _token(r"ak-", r"[A-Za-z0-9]{16,}"), "Modal token id"),
    SecretPattern("modal_token_secret", _token(r"as-", r"[A-Za-z0-9]{16,}"), "Modal token secret"),
    SecretPattern("kaggle_key", re.compile(r"(?<![0-9A-Za-z_])(?P<secret>[0-9a-fA-F]{32})(?![0-9A-Za-z_])"),
                  "legacy Kaggle key: 32 hex digits near a Kaggle username or inside kaggle.json",
                  near=re.compile(r"kaggle|username", re.IGNORECASE)),
    SecretPattern("bearer_token", re.compile(r"\b[Bb]earer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
                  "a token sent as an HTTP bearer credential", check=_looks_random),
    SecretPattern("password", _assignment(r"password|passwd|passphrase"),
                  "a value assigned to a password (8 characters or more)",
                  check=lambda value: not _PLACEHOLDER.fullmatch(value)),
    SecretPattern("generic_secret",
                  _assignment(r"api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|"
                              r"client[_-]?secret|secret[_-]?key|secret|token|key"),
                  "a random-looking value (8+ characters) assigned to a key, token or secret",
                  check=_looks_random),
)


_Hit = tuple[int, int, str, str]  # start, end, kind, visible prefix


def _scan(text: str, known: Mapping[str, tuple[str, str]] | None = None) -> list[_Hit]:
    """All secrets in ``text``, non-overlapping, in order; references already there are skipped.
    ``known`` maps literal values (from the vault) to (kind, prefix): found wherever they appear."""
    taken: list[tuple[int, int]] = [m.span() for m in REF_PATTERN.finditer(text)]
    candidates: list[tuple[int, int, int, str, str]] = []
    for priority, pattern in enumerate(SECRET_PATTERNS):
        for m in pattern.regex.finditer(text):
            start, end = m.span("secret") if "secret" in pattern.regex.groupindex else m.span()
            while end > start and text[end - 1] in ".:":  # a sentence ends, the secret did earlier
                end -= 1
            value = text[start:end]
            if len(value) < 8 or (pattern.check is not None and not pattern.check(value)):
                continue
            if pattern.near is not None and not pattern.near.search(
                    text, max(0, start - NEAR_WINDOW), min(len(text), end + NEAR_WINDOW)):
                continue
            prefix = m.groupdict().get("prefix") or ""
            candidates.append((priority, start, end, pattern.kind, prefix))
    for value, (kind, prefix) in sorted((known or {}).items(), key=lambda kv: -len(kv[0])):
        if len(value) < MIN_LITERAL:
            continue
        at = text.find(value)
        while at >= 0:
            candidates.append((-1, at, at + len(value), kind, prefix))  # a known value beats a guess
            at = text.find(value, at + 1)
    hits: list[_Hit] = []
    for _, start, end, kind, prefix in sorted(candidates):
        if not any(start < e and s < end for s, e in taken):
            taken.append((start, end))
            hits.append((start, end, kind, prefix))
    return sorted(hits)


def _prefix_of(value: str) -> str:
    """The visible prefix ``mask`` keeps for a known value (``hf_``), or '' if it has none."""
    hits = _scan(value)
    return hits[0][3] if len(hits) == 1 and hits[0][:2] == (0, len(value)) else ""


def _walk(obj: Any, on_str: Callable[[str], str], keys: bool) -> Any:
    """Copy nested dicts/lists/tuples, passing every string (and dict keys if asked) through ``on_str``."""
    if isinstance(obj, str):
        return on_str(obj)
    if isinstance(obj, dict):
        return {(on_str(k) if keys and isinstance(k, str) else k): _walk(v, on_str, keys) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, on_str, keys) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_walk(v, on_str, keys) for v in obj)
    return obj


class Vault:
    """Secrets per job in one 0600 JSON file: ``{"version": 1, "jobs": {job: {ref: {kind, value}}}}``."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else settings.home() / VAULT_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Written aside then linked into place: another process never sees a half-written
                # (empty) vault, and link() refuses to clobber one that appeared meanwhile.
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.new")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump({"version": 1, "jobs": {}}, handle)
                try:
                    with contextlib.suppress(FileExistsError):
                        os.link(tmp, self.path)
                finally:
                    tmp.unlink()
            os.chmod(self.path, 0o600)  # also tightens a vault someone loosened
        except OSError as err:
            raise VaultError(f"Cannot create the credential vault {self.path} ({err.strerror}); "
                             "check that its folder is writable.") from err

    # -- file ------------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, dict[str, str]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise VaultError(f"Cannot read the credential vault {self.path} ({err.strerror}); "
                             "check its owner and permissions.") from err
        except ValueError as err:
            raise VaultError(f"The credential vault {self.path} is not valid JSON; move it aside and "
                             "enter your keys again.") from err
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            raise VaultError(f"The credential vault {self.path} does not have the expected layout; "
                             "move it aside and enter your keys again.")
        jobs: dict[str, dict[str, dict[str, str]]] = data["jobs"]
        return jobs

    def _save(self, jobs: dict[str, dict[str, dict[str, str]]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.chmod(tmp, 0o600)
                json.dump({"version": 1, "jobs": jobs}, handle, ensure_ascii=False, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise VaultError(f"Cannot write the credential vault {self.path} ({err.strerror}); "
                             "check free disk space and that the folder is writable.") from err

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between processes (unlocked where fcntl is missing)."""
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- API -------------------------------------------------------------------------------------
    def put_many(self, job_id: str, items: list[tuple[str, str]]) -> list[str]:
        """Store several (kind, value) pairs in one write; a value already stored keeps its ref."""
        if any(not value for _, value in items):
            raise VaultError("Refusing to store an empty secret; pass the key's actual value.")
        with self._locked():
            jobs = self._load()
            entries = jobs.setdefault(job_id, {})
            by_value = {entry["value"]: ref for ref, entry in entries.items()}
            refs, changed = [], False
            for kind, value in items:
                ref = by_value.get(value)
                if ref is None:
                    kind = re.sub(r"[^a-z0-9_]", "_", kind.lower()) or "secret"
                    ref = f"⟨secret:{kind}:{len(entries) + 1}⟩"
                    entries[ref] = {"kind": kind, "value": value}
                    by_value[value] = ref
                    changed = True
                refs.append(ref)
            if changed:
                self._save(jobs)
        return refs

    def put(self, job_id: str, kind: str, value: str) -> str:
        """Store one secret for a job; returns its reference ``⟨secret:{kind}:{n}⟩``."""
        return self.put_many(job_id, [(kind, value)])[0]

    def get(self, job_id: str, ref: str) -> str | None:
        """The value behind a reference of this job, or None (other job's, unknown or forged)."""
        entry = self._load().get(job_id, {}).get(ref)
        return entry["value"] if entry else None

    def refs(self, job_id: str) -> dict[str, str]:
        """ref → kind for a job: what may be shown or given to an LLM (no values)."""
        return {ref: entry["kind"] for ref, entry in self._load().get(job_id, {}).items()}

    def values(self, job_id: str | None = None) -> list[str]:
        """Every stored value of a job (or of all jobs), for masking output."""
        return list(self.kinds_by_value(job_id))

    def kinds_by_value(self, job_id: str | None = None) -> dict[str, str]:
        """value → kind, the literal values :func:`redact` and :func:`mask` look for."""
        jobs = self._load()
        chosen = [jobs.get(job_id, {})] if job_id is not None else list(jobs.values())
        return {entry["value"]: entry["kind"] for entries in chosen for entry in entries.values()}

    def resolve_arguments(self, job_id: str, obj: Any) -> Any:
        """A copy of a tool call's arguments with this job's refs replaced by their values.
        Refs of other jobs, unknown and forged refs stay exactly as written (inert)."""
        entries = self._load().get(job_id, {})

        def swap(text: str) -> str:
            return REF_PATTERN.sub(lambda m: entries[m.group(0)]["value"] if m.group(0) in entries
                                   else m.group(0), text)

        return _walk(obj, swap, keys=False)

    def forget(self, job_id: str) -> None:
        """Drop every secret of a job (the job was deleted, or the user withdrew the keys)."""
        with self._locked():
            jobs = self._load()
            if jobs.pop(job_id, None) is not None:
                self._save(jobs)


@dataclass(frozen=True)
class Finding:
    """One secret found by :func:`redact`: where it was in the original text, never its value."""

    kind: str
    ref: str
    start: int
    end: int


def secret_kinds(text: str, known: list[str] | None = None) -> list[str]:
    """The kinds of every secret in ``text`` (pattern matches, plus any of the ``known`` literal values)."""
    return [kind for _, _, kind, _ in _scan(text, {value: ("secret", "") for value in known or []})]


def redact(text: str, vault: Vault, job_id: str) -> tuple[str, list[Finding]]:
    """Store every secret in ``text`` in the vault and replace it by its reference.

    Values this job already stored are replaced wherever they appear, even without a pattern.
    Idempotent: references are not secrets, so redacted text comes back unchanged."""
    known = {value: (kind, "") for value, kind in vault.kinds_by_value(job_id).items()}
    hits = _scan(text, known)
    if not hits:
        return text, []
    refs = vault.put_many(job_id, [(kind, text[start:end]) for start, end, kind, _ in hits])
    parts, findings, last = [], [], 0
    for (start, end, kind, _), ref in zip(hits, refs, strict=True):
        parts += [text[last:start], ref]
        findings.append(Finding(kind, ref, start, end))
        last = end
    parts.append(text[last:])
    return "".join(parts), findings


def _masker(vault: Vault | None, job_id: str | None) -> Callable[[str], str]:
    known = {value: (kind, _prefix_of(value))
             for value, kind in (vault.kinds_by_value(job_id) if vault else {}).items()}

    def apply(text: str) -> str:
        out, last = [], 0
        for start, end, _, prefix in _scan(text, known):
            out += [text[last:start], prefix, "***"]
            last = end
        out.append(text[last:])
        return "".join(out)

    return apply


def mask(text: str, vault: Vault | None = None, job_id: str | None = None) -> str:
    """Hide secrets in output meant for people, logs or events: known vault values (of ``job_id``,
    or of every job) and anything shaped like a secret become ``***``, keeping the visible prefix
    (``hf_***``, ``sk-proj-***``). References are left as they are."""
    return _masker(vault, job_id)(text)


def mask_obj(obj: Any, vault: Vault | None = None, job_id: str | None = None) -> Any:
    """:func:`mask` over every string (dict keys included) of nested dicts, lists and tuples."""
    return _walk(obj, _masker(vault, job_id), keys=True)


# -- discovery of credentials the user already has -------------------------------------------------
PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "MISTRAL_API_KEY", "TOGETHER_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _read_config(path: Path, parse: Callable[[str], Any]) -> dict[str, Any]:
    """A JSON/TOML config as a dict; a broken file must not stop a job that never needs it."""
    text = _read_text(path)
    try:
        data = parse(text) if text else {}
    except ValueError:  # json.JSONDecodeError and tomllib.TOMLDecodeError both are
        return {}
    return data if isinstance(data, dict) else {}


def _modal_profile(path: Path, wanted: str | None) -> dict[str, Any]:
    profiles = _read_config(path, tomllib.loads)
    tables = {name: p for name, p in profiles.items() if isinstance(p, dict)}
    if wanted:
        return tables.get(wanted, {})
    active = [p for p in tables.values() if p.get("active")]
    return active[0] if active else next(iter(tables.values())) if len(tables) == 1 else {}


def discover_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    """Credentials the user already set up, where each tool's own CLI would find them; env wins
    over files. Returns kind → value (kinds in the module table); missing ones are absent."""
    env = os.environ if env is None else env
    home = Path(home) if home is not None else Path(env.get("HOME") or Path.home())

    def var(name: str) -> str | None:
        return (env.get(name) or "").strip() or None

    def path(value: str) -> Path:
        return home / value[2:] if value.startswith("~/") else Path(value)

    found: dict[str, str | None] = {}
    hf_home = path(var("HF_HOME") or str(path(var("XDG_CACHE_HOME") or "~/.cache") / "huggingface"))
    found["hf_token"] = (var("HF_TOKEN") or var("HUGGING_FACE_HUB_TOKEN")
                         or _read_text(path(var("HF_TOKEN_PATH") or str(hf_home / "token"))))

    config_dir = path(var("KAGGLE_CONFIG_DIR") or "~/.kaggle")
    files = [config_dir / "kaggle.json"] + ([] if var("KAGGLE_CONFIG_DIR") else [home / ".config/kaggle/kaggle.json"])
    saved = next((d for f in files if (d := _read_config(f, json.loads))), {})
    key = var("KAGGLE_KEY") or _str(saved.get("key"))  # env wins field by field, as in the kaggle CLI
    found["kaggle_username"], found["kaggle_key"] = var("KAGGLE_USERNAME") or _str(saved.get("username")), key
    found["kaggle_api_token"] = (var("KAGGLE_API_TOKEN") or _read_text(config_dir / "access_token")
                                 or (key if key and key.startswith("KGAT_") else None))

    profile = _modal_profile(path(var("MODAL_CONFIG_PATH") or "~/.modal.toml"), var("MODAL_PROFILE"))
    found["modal_token_id"] = var("MODAL_TOKEN_ID") or _str(profile.get("token_id"))
    found["modal_token_secret"] = var("MODAL_TOKEN_SECRET") or _str(profile.get("token_secret"))

    for name in PROVIDER_ENV:
        found[name.lower()] = var(name)
    return {kind: value for kind, value in found.items() if value}
