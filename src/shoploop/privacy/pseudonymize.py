"""Keyed pseudonymisation of shopper ids.

With `pseudonymize_user_ids` on, the engine stores `p_<hmac>` instead of the shop's own
user id, so a leaked database does not name customers; the key stays in a separate
file (or the environment) and the shop can still erase a shopper because the same id
always maps to the same pseudonym. HMAC-SHA256 rather than a plain hash: without the
key an attacker cannot test guesses such as e-mail addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV = "SHOPLOOP_PSEUDONYM_KEY"
PREFIX = "p_"


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonymisation key must be at least 16 bytes")
        self._key = key

    def __call__(self, user_id: str) -> str:
        if user_id.startswith(PREFIX):  # already pseudonymised (idempotent re-sends)
            return user_id
        digest = hmac.new(self._key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    @classmethod
    def from_home(cls, home: Path) -> Pseudonymizer:
        """Key from $SHOPLOOP_PSEUDONYM_KEY (hex), else `home/pseudonym.key`, created 0600 once."""
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(bytes.fromhex(env))
        path = home / "pseudonym.key"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return cls(bytes.fromhex(path.read_text().strip()))
