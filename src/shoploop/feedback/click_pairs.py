"""(query, product text, label) pairs for fine-tuning the text models from shopper feedback.

Labels come from what shoppers did with a served search list, graded like the ranker's
gains (purchase > cart > click). Negatives use the skip-above rule (Joachims, 2002): an
item shown *above* a clicked one and passed over was examined and judged worse, while an
unclicked item below the last click may simply not have been seen, so it is not used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shoploop.feedback.training_data import GRADE, LoggedList
from shoploop.ranking.training_pairs import GradedPair

MAX_GRADE = max(GRADE.values())


@dataclass(frozen=True)
class ClickPairs:
    train: list[GradedPair]
    valid: list[GradedPair]
    positives: int
    negatives: int
    queries: int


def click_pairs(
    lists: Sequence[LoggedList],
    product_text: Callable[[str], str | None],
    *,
    valid_frac: float = 0.1,
    seed: int = 0,
) -> ClickPairs:
    """Graded pairs from clicked search lists, split by query so validation is unseen text."""
    pairs: dict[str, list[GradedPair]] = {}
    positives = negatives = 0
    for served in lists:
        if not served.query or not served.clicked:
            continue
        query = served.query.strip().lower()
        deepest = int(served.positions[served.labels > 0].max())
        for item, position, grade in zip(served.items, served.positions, served.labels, strict=True):
            text = product_text(item)
            if text is None:
                continue
            if grade > 0:
                pairs.setdefault(query, []).append(GradedPair(query, text, float(grade) / MAX_GRADE))
                positives += 1
            elif position < deepest:
                pairs.setdefault(query, []).append(GradedPair(query, text, 0.0))
                negatives += 1
    queries = sorted(pairs)
    random.Random(seed).shuffle(queries)
    n_valid = round(len(queries) * valid_frac) if len(queries) >= 10 else 0
    valid_q = set(queries[:n_valid])
    train = [p for q in queries if q not in valid_q for p in pairs[q]]
    valid = [p for q in queries if q in valid_q for p in pairs[q]]
    return ClickPairs(train, valid, positives, negatives, len(queries))
