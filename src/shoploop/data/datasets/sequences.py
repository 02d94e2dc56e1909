"""Generic "user item item ..." sequence files, split leave-one-out."""

from __future__ import annotations

from pathlib import Path

from shoploop.data.datasets._common import require_file
from shoploop.data.datasets.types import SequenceSplit


def read_sequences(path: Path, *, min_length: int = 3) -> SequenceSplit:
    """Per line a user token followed by item ids (positive ints) in time order.

    Lines repeating a user token extend that user's sequence, so the one-interaction-
    per-line "user item" format (SASRec's ml-1m.txt) reads too. Leave-one-out: the last
    item is the test target, the second-to-last the validation target, and train is
    everything before those two. Users with fewer than `min_length` items (at least 3:
    one to train on, one to validate, one to test) are skipped. n_items is the largest id.
    """
    path = require_file(Path(path), "sequence file")
    sequences: dict[str, list[int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                items = [int(tok) for tok in tokens[1:]]
            except ValueError:
                raise ValueError(f"{path}:{line_no}: item ids must be integers: {line.strip()!r}") from None
            if any(i < 1 for i in items):
                raise ValueError(f"{path}:{line_no}: item ids must be >= 1 (0 is padding)")
            sequences.setdefault(tokens[0], []).extend(items)
    n_items = max((max(seq) for seq in sequences.values() if seq), default=0)
    split = SequenceSplit(
        n_items=n_items, train=[], valid_history=[], valid_target=[], test_history=[], test_target=[]
    )
    for items in sequences.values():
        if len(items) < max(min_length, 3):
            continue
        split.train.append(items[:-2])
        split.valid_history.append(items[:-2])
        split.valid_target.append(items[-2])
        split.test_history.append(items[:-1])
        split.test_target.append(items[-1])
    return split
