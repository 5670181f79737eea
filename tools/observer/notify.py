"""Optional notifications: a JSON POST to a webhook URL, with the same cooldown as alerts.

The body carries ``text`` (Slack, Telegram's sendMessage with chat_id in the URL, Mattermost) and
``content`` (Discord) plus the structured fields, so one URL of any of them works. Off unless a
URL is configured (spec ``monitor.webhook`` or the variable named by ``monitor.webhook_env``); a
failing endpoint never fails training.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tools.observer.resources import AlertGate

TIMEOUT = 5.0


class Webhook:
    def __init__(self, url: str, *, cooldown: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 timeout: float = TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook URL must start with http:// or https://")
        self.url = url
        self.gate = AlertGate(cooldown)
        self.clock = clock
        self.timeout = timeout
        self.sent = 0
        self.failed = 0

    def send(self, kind: str, text: str, fields: dict[str, Any] | None = None) -> bool:
        """POST once per ``kind`` per cooldown; True when the endpoint answered 2xx."""
        if not self.gate.allow(kind, self.clock()):
            return False
        body = json.dumps({"text": text, "content": text, "kind": kind, **(fields or {})}, default=str).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "mltrainer"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's URL
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        self.sent += ok
        self.failed += not ok
        return ok
