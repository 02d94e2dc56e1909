"""Keyed pseudonymisation of shopper ids.

A shop pseudonymises once it has a key: `HOME/pseudonym.key` (made by `shoploop privacy
pseudonymize`, or by an engine configured with `pseudonymize_user_ids=True`) or
$SHOPLOOP_PSEUDONYM_KEY. Every way in then maps ids the same way — the server's intake and
serving, `shoploop import events`, A/B exposures, access requests and erasure — so the engine
stores `p_<hmac>` instead of the shop's own user id. A leaked database then does not name
customers; the key stays in a separate file (or the environment), and the shop can still
answer and erase a shopper because the same id always maps to the same pseudonym.
HMAC-SHA256 rather than a plain hash: without the key an attacker cannot test guesses such as
e-mail addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV = "SHOPLOOP_PSEUDONYM_KEY"
KEY_FILE = "pseudonym.key"
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
            return cls(_key_bytes(env, f"${KEY_ENV}"))
        path = home / KEY_FILE
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return cls(_key_bytes(path.read_text().strip(), str(path)))


def _key_bytes(text: str, where: str) -> bytes:
    """The key's bytes, or a ValueError that says where the bad key is (not a bare fromhex error)."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(
            f"{where} is not a pseudonymisation key: expected hex digits (64 from `shoploop privacy "
            "pseudonymize`); `shoploop doctor` checks it"
        ) from None
    if len(key) < 16:
        raise ValueError(f"{where} is too short for a pseudonymisation key: at least 32 hex digits")
    return key


def shop_pseudonymizer(home: Path | None) -> Pseudonymizer | None:
    """The shop's pseudonymiser if it has opted in (a key in the environment or in the home),
    else None. Never creates a key: only turning the option on does."""
    if os.environ.get(KEY_ENV) or (home is not None and (Path(home) / KEY_FILE).is_file()):
        return Pseudonymizer.from_home(Path(home) if home is not None else Path("."))
    return None
