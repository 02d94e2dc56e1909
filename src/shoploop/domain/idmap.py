"""String ids outside, dense ints inside.

Models index embedding tables and sparse matrices by position, so every string id gets
a dense int. Index 0 is reserved for padding (sequence models pad short histories with
it), so the first real id is 1 and `len(idmap)` is the number of real ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

PADDING = 0


class IdMap:
    """Bidirectional map between external string ids and dense ints starting at 1."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str] = [""]  # slot 0 = padding
        for external in ids:
            self.add(external)

    def add(self, external: str) -> int:
        """Index of `external`, assigning the next free int if it is new."""
        found = self._index.get(external)
        if found is not None:
            return found
        if not isinstance(external, str) or not external:
            raise ValueError(f"id must be a non-empty string, got {external!r}")
        index = len(self._ids)
        self._index[external] = index
        self._ids.append(external)
        return index

    def index(self, external: str) -> int:
        """Index of a known id; KeyError naming the id when unknown."""
        try:
            return self._index[external]
        except KeyError:
            raise KeyError(f"unknown id {external!r}") from None

    def get(self, external: str, default: int = PADDING) -> int:
        return self._index.get(external, default)

    def external(self, index: int) -> str:
        if index <= PADDING or index >= len(self._ids):
            raise IndexError(f"index {index} is padding or out of range 1..{len(self)}")
        return self._ids[index]

    def indices(self, externals: Sequence[str], *, skip_unknown: bool = False) -> list[int]:
        if skip_unknown:
            return [i for i in (self._index.get(e) for e in externals) if i is not None]
        return [self.index(e) for e in externals]

    def externals(self, indices: Iterable[int]) -> list[str]:
        return [self.external(int(i)) for i in indices]

    def __contains__(self, external: object) -> bool:
        return external in self._index

    def __len__(self) -> int:
        return len(self._ids) - 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids[1:])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    @property
    def size_with_padding(self) -> int:
        """Rows an embedding table needs: every id plus the padding row."""
        return len(self._ids)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self._ids[1:]), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> IdMap:
        return cls(json.loads(path.read_text(encoding="utf-8")))
