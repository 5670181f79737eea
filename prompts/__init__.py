"""Agent prompts as text files; ``load(name)`` reads one. Agents decide what context goes in."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(name: str) -> str:
    """The prompt text of ``name`` (e.g. 'intent'); a missing prompt is a packaging bug."""
    return (HERE / f"{name}.md").read_text(encoding="utf-8")
