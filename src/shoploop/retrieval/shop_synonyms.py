"""The shop's own synonym rules, kept in `HOME/synonyms.txt` and applied on top of the packaged
defaults, live: a merchandiser who sees "unicorn lamp" find nothing adds
"unicorn lamp => night light" and the next search uses it, no index rebuild (synonyms act on
the query, not on the indexed products).

The format is the packaged file's: "a, b, c" (a group: any member also matches the others) or
"a, b => c" (a one-way rewrite); "#" starts a comment. Saved text is checked line by line, so a
rule that would do nothing is refused with its line number instead of being ignored.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from shoploop.retrieval.query_understanding import SynonymTable
from shoploop.store.files import atomic_write_text

log = logging.getLogger(__name__)
FILE_NAME = "synonyms.txt"
MAX_CHARS = 200_000
MAX_RULES = 5_000


def check_rules(text: str) -> SynonymTable:
    """Parse a shop's rules; ValueError names the first line that is not a working rule."""
    if len(text) > MAX_CHARS:
        raise ValueError(f"at most {MAX_CHARS:,} characters, got {len(text):,}")
    rules = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        rules += 1
        try:
            table = SynonymTable.parse(line)
        except ValueError:
            raise ValueError(f"line {lineno}: {raw.strip()!r} has nothing after '=>'") from None
        if not table.groups and not table.rewrites:
            raise ValueError(
                f"line {lineno}: {raw.strip()!r} is not a rule; "
                "write 'a, b' (same meaning) or 'a => b' (rewrite)"
            )
    if rules > MAX_RULES:
        raise ValueError(f"at most {MAX_RULES:,} rules, got {rules:,}")
    return SynonymTable.parse(text)


class ShopSynonyms:
    """The rules text and where it lives (None: in memory only, for engines without a home)."""

    def __init__(self, home: Path | None) -> None:
        self.path = Path(home) / FILE_NAME if home is not None else None
        self._lock = threading.Lock()
        self.text = ""
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self.reload()

    def table(self) -> SynonymTable:
        return SynonymTable.parse(self.text)

    def set(self, text: str) -> SynonymTable:
        """Check, save atomically and keep `text`; raises ValueError (with the line) if it is bad."""
        table = check_rules(text)
        with self._lock:
            if self.path is not None:
                atomic_write_text(self.path, text)
                self._stamp = self._file_stamp()
            self.text = text
        return table

    def reload(self) -> bool:
        """Re-read the file if another process changed it since; True when the rules changed.
        A file edited by hand into something unparsable is left unapplied (the old rules stay)."""
        if self.path is None:
            return False
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            text = self.path.read_text(encoding="utf-8") if stamp is not None else ""
            try:
                check_rules(text)
            except ValueError as err:
                log.warning("%s not applied, the previous rules stay: %s", self.path, err)
                return False
            changed = text != self.text
            self.text = text
            return changed

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size
