"""Small files a shop home keeps beside its database (rules, synonyms, import reports)."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader (or a crash) sees the old file or the new
    one, never half of it: write a temporary file beside it, fsync, rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix or ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckedTextFile(Generic[T]):
    """A small text file in the shop home that merchandisers edit (synonyms, a blocklist):
    checked before it is saved (`check` raises ValueError naming the line), saved atomically,
    and re-read when another process or a person changed it. `home=None` keeps it in memory."""

    def __init__(self, home: Path | None, name: str, check: Callable[[str], T]) -> None:
        self.path = Path(home) / name if home is not None else None
        self.check = check
        self._lock = threading.Lock()
        self.text = ""
        self.value: T = check("")  # what `text` parses to, kept so readers never re-parse
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self.reload()

    def set(self, text: str) -> T:
        """Check, save and keep `text`; raises ValueError (nothing changes) if it is bad."""
        parsed = self.check(text)
        with self._lock:
            if self.path is not None:
                atomic_write_text(self.path, text)
                self._stamp = self._file_stamp()
            self.text, self.value = text, parsed
        return parsed

    def reload(self) -> bool:
        """Re-read the file if it changed since the last read; True when the text changed. A
        file edited into something that does not check is logged and left unapplied."""
        if self.path is None:
            return False
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            text = self.path.read_text(encoding="utf-8") if stamp is not None else ""
            try:
                value = self.check(text)
            except ValueError as err:
                log.warning("%s not applied, the previous version stays: %s", self.path, err)
                return False
            changed = text != self.text
            self.text, self.value = text, value
            return changed

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size
