"""MovieLens: ml-100k (RecBole atomic files, with titles and real timestamps) and ml-1m
as split by gSASRec (dense ids, no titles, no timestamps).

gSASRec ml-1m split (see `datasets/ml1m/preprocess_ml1m.py` in asash/gSASRec-pytorch):
for most users `train_input.txt` holds items[:-2] and `test_output.txt` items[-1]; for
512 validation users `train_input.txt` holds items[:-3], `val_input.txt` items[:-2] and
`val_output.txt` items[-2]. No test input file is shipped, so for ordinary users the
test history we can build is the training line, which lacks the second-to-last item
(the gSASRec README notes this costs a little). For validation users the full test
history is recoverable (val_input + val_output), and we use it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from shoploop.data.datasets._common import (
    clean_text,
    progress_iter,
    require_columns,
    require_file,
    synthetic_time,
)
from shoploop.data.datasets.types import DatasetBundle, SequenceSplit
from shoploop.domain import Event, Product, RatingEvent, ViewEvent

ML100K_ITEM_COLUMNS = ("item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq")
ML100K_INTER_COLUMNS = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


def load_ml100k(directory: Path, *, limit: int | None = None, progress: bool = False) -> DatasetBundle:
    """Movies as Products (genres -> category, year attribute) + rating events with real timestamps."""
    directory = Path(directory)
    item_path = require_file(directory / "ml-100k.item", "ml-100k items")
    inter_path = require_file(directory / "ml-100k.inter", "ml-100k interactions")
    items = pd.read_csv(item_path, sep="\t", dtype=str, keep_default_na=False, encoding="latin-1")
    require_columns(items, ML100K_ITEM_COLUMNS, item_path)
    products = []
    for row in items.to_dict("records"):
        genres = [g for g in str(row["class:token_seq"]).split() if g]
        attributes: dict[str, str | int] = {"genres": "|".join(genres)} if genres else {}
        year = str(row["release_year:token"]).strip()
        if year.isdigit():
            attributes["year"] = int(year)
        title = clean_text(row["movie_title:token_seq"]) or f"movie {row['item_id:token']}"
        products.append(
            Product(
                item_id=str(row["item_id:token"]).strip(),
                title=title,
                category_path=("Movies", genres[0]) if genres else ("Movies",),
                attributes=attributes,
            )
        )
    inter = pd.read_csv(inter_path, sep="\t", nrows=limit)
    require_columns(inter, ML100K_INTER_COLUMNS, inter_path)
    inter = inter.sort_values(["timestamp:float", "user_id:token"], kind="stable")
    events: list[Event] = []
    rows = inter[list(ML100K_INTER_COLUMNS)].itertuples(index=False)
    for user, item, rating, ts in progress_iter(
        rows, total=len(inter), label="ml-100k ratings", enabled=progress
    ):
        events.append(
            RatingEvent(
                event_id=f"ml100k-{int(user)}-{int(item)}",
                user_id=f"ml-{int(user)}",
                item_id=str(int(item)),
                rating=round(float(rating)),
                timestamp=datetime.fromtimestamp(float(ts), tz=UTC),
            )
        )
    return DatasetBundle(products=products, events=events, name="ml-100k")


def _read_lines(path: Path) -> list[list[int]]:
    out: list[list[int]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                out.append([int(tok) for tok in line.split()])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: expected space-separated integer item ids") from None
    return out


def _read_targets(path: Path) -> list[int]:
    targets = _read_lines(path)
    for line_no, row in enumerate(targets, start=1):
        if len(row) != 1:
            raise ValueError(f"{path}:{line_no}: expected exactly one item id, got {row}")
    return [row[0] for row in targets]


def read_gsasrec(directory: Path) -> SequenceSplit:
    """The gSASRec ml-1m split. Row u of train/test is user u (line number in train_input.txt).

    valid_* cover the 512 validation users only. The split ships no test input: test_history
    is the train line, which lacks the user's second-to-last item, except for validation
    users where the exact history (val_input + val_output) is known; `test_exact` lists
    those users, the only test cases evaluated exactly as in the gSASRec paper.
    """
    directory = Path(directory)
    train = _read_lines(require_file(directory / "train_input.txt", "gSASRec train input"))
    test_target = _read_targets(require_file(directory / "test_output.txt", "gSASRec test output"))
    valid_history = _read_lines(require_file(directory / "val_input.txt", "gSASRec validation input"))
    valid_target = _read_targets(require_file(directory / "val_output.txt", "gSASRec validation output"))
    if len(train) != len(test_target):
        raise ValueError(f"train_input.txt has {len(train)} users but test_output.txt {len(test_target)}")
    if len(valid_history) != len(valid_target):
        raise ValueError(
            f"val_input.txt has {len(valid_history)} lines but val_output.txt {len(valid_target)}"
        )
    test_history = [list(seq) for seq in train]
    exact: list[int] = []
    # A validation user's train line is its val_input minus the last item.
    by_train = {tuple(seq): u for u, seq in enumerate(train)}
    for history, target in zip(valid_history, valid_target, strict=True):
        user = by_train.get(tuple(history[:-1]))
        if user is not None:
            test_history[user] = [*history, target]
            exact.append(user)
    n_items = max(
        max((max(s) for s in train if s), default=0),
        max(test_target, default=0),
        max(valid_target, default=0),
        max((max(s) for s in valid_history if s), default=0),
    )
    stats_path = directory / "dataset_stats.json"
    if stats_path.is_file():
        import json

        n_items = max(n_items, int(json.loads(stats_path.read_text()).get("num_items", 0)))
    split = SequenceSplit(
        n_items=n_items,
        train=train,
        valid_history=valid_history,
        valid_target=valid_target,
        test_history=test_history,
        test_target=test_target,
        test_exact=sorted(exact),
    )
    split.validate()
    return split


def load_ml1m(directory: Path, *, include_held_out: bool = False, progress: bool = False) -> DatasetBundle:
    """gSASRec ml-1m as Products named "item N" + view events in each user's order.

    Timestamps are synthetic: user u's k-th view is at SYNTHETIC_EPOCH + u hours + k minutes.
    One view a minute keeps even the heaviest users (~2,300 items) far below ingestion's
    bot thresholds; users' histories may overlap in time, which no rule minds.
    """
    split = read_gsasrec(directory)
    products = [Product(item_id=str(i), title=f"item {i}") for i in range(1, split.n_items + 1)]
    events: list[Event] = []
    users = progress_iter(enumerate(split.train), total=split.n_users, label="ml-1m users", enabled=progress)
    for user, seq in users:
        items = list(seq)
        if include_held_out:
            items = [*split.test_history[user], split.test_target[user]]
        start = synthetic_time(user, seconds_per_step=3600)
        for k, item in enumerate(items):
            events.append(
                ViewEvent(
                    event_id=f"ml1m-u{user}-v{k}",
                    user_id=f"ml1m-{user}",
                    item_id=str(item),
                    timestamp=start + timedelta(minutes=k),
                )
            )
    return DatasetBundle(products=products, events=events, name="ml-1m", notes={"timestamps": "synthetic"})
