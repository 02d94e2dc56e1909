"""Amazon 2018 "Industrial & Scientific" in the UniSRec / RecBole atomic-file format.

Files (for `name="Scientific"`):
- `Scientific.item2index` / `Scientific.user2index`: "ASIN<TAB>index", indices 0-based.
- `Scientific.text`: "item_id:token<TAB>text:token_seq"; the text is
  "<title>. <category words>. <brand>. " (the category levels arrive joined by spaces).
- `Scientific.{train,valid,test}.inter`: "user_id<TAB>item_id_list<TAB>item_id", with
  0-based item indices. Train rows enumerate every prefix of a user's training sequence,
  so the user's training history is the longest train row plus its target; the valid row
  is (training history -> next item) and the test row (that plus the valid item -> last).

`read_unisrec` maps indices to dense ids 1..n_items (index + 1; 0 stays padding).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from shoploop.data.datasets._common import clean_text, require_file, synthetic_time
from shoploop.data.datasets.types import DatasetBundle, SequenceSplit
from shoploop.domain import Event, Product, ViewEvent

ROOT_CATEGORY = "Industrial & Scientific"


def parse_item_text(text: str) -> tuple[str, tuple[str, ...], str | None]:
    """(title, category_path, brand) from "<title>. <category>. <brand>. ".

    The title may itself contain ". ", so we split from the right: the last segment is
    the brand, the one before it the category. Category levels are not delimited in the
    file, so the path is (root, rest-of-words) when it starts with the root category.
    """
    body = clean_text(text)
    if body.endswith("."):
        body = body[:-1].rstrip()
    parts = body.rsplit(". ", 2)
    if len(parts) < 3:
        return body or text.strip(), (), None
    title, category, brand = (p.strip().strip(".").strip() for p in parts)
    if not title:
        title = body
    path: tuple[str, ...] = ()
    if category.startswith(ROOT_CATEGORY):
        rest = category[len(ROOT_CATEGORY) :].strip()
        path = (ROOT_CATEGORY, rest) if rest else (ROOT_CATEGORY,)
    elif category:
        path = (category,)
    return title, path, brand or None


def _read_index(path: Path) -> list[str]:
    """External ids in index order (line "ASIN<TAB>index")."""
    pairs: list[tuple[int, str]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{line_no}: expected 'id<TAB>index', got {line!r}")
            pairs.append((int(fields[1]), fields[0]))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise ValueError(f"{path}: indices are not 0..{len(pairs) - 1}")
    return [ext for _, ext in pairs]


def _read_text(path: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
        if not header.startswith("item_id"):
            raise ValueError(f"{path}: expected header 'item_id:token<TAB>text:token_seq', got {header!r}")
        for line in handle:
            line = line.rstrip("\n")
            if line:
                item, _, text = line.partition("\t")
                texts[item] = text
    return texts


def _read_inter(path: Path) -> list[tuple[int, list[int], int]]:
    rows: list[tuple[int, list[int], int]] = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if len(header) != 3 or not header[1].startswith("item_id_list"):
            raise ValueError(f"{path}: expected header user_id, item_id_list, item_id; got {header}")
        for line_no, line in enumerate(handle, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise ValueError(f"{path}:{line_no}: expected 3 tab-separated fields, got {len(fields)}")
            user, history, target = fields
            try:
                rows.append((int(user), [int(i) for i in history.split()], int(target)))
            except ValueError:
                raise ValueError(f"{path}:{line_no}: non-integer id in {line!r}") from None
    return rows


def read_unisrec(directory: Path, name: str = "Scientific") -> SequenceSplit:
    """Leave-one-out split with dense ids 1..n_items and item text keyed by dense id."""
    directory = Path(directory)
    files = {
        kind: require_file(directory / f"{name}.{kind}", f"UniSRec {name}")
        for kind in ("item2index", "text", "train.inter", "valid.inter", "test.inter")
    }
    asins = _read_index(files["item2index"])
    texts = _read_text(files["text"])
    n_items = len(asins)

    longest: dict[int, tuple[list[int], int]] = {}
    for user, history, target in _read_inter(files["train.inter"]):
        if user not in longest or len(history) >= len(longest[user][0]):
            longest[user] = (history, target)
    valid = {u: (h, t) for u, h, t in _read_inter(files["valid.inter"])}
    test = {u: (h, t) for u, h, t in _read_inter(files["test.inter"])}
    users = sorted(set(longest) | set(valid) | set(test))

    def dense(seq: list[int]) -> list[int]:
        return [i + 1 for i in seq]

    train: list[list[int]] = []
    valid_history: list[list[int]] = []
    valid_target: list[int] = []
    test_history: list[list[int]] = []
    test_target: list[int] = []
    for user in users:
        history, target = longest.get(user, ([], -1))
        # Users with a single training interaction have no train row; their valid
        # history is then the whole training sequence.
        train_seq = [*history, target] if target >= 0 else list(valid.get(user, ([], 0))[0])
        train.append(dense(train_seq))
        if user in valid:
            valid_history.append(dense(valid[user][0]))
            valid_target.append(valid[user][1] + 1)
        if user in test:
            test_history.append(dense(test[user][0]))
            test_target.append(test[user][1] + 1)
    split = SequenceSplit(
        n_items=n_items,
        train=train,
        valid_history=valid_history,
        valid_target=valid_target,
        test_history=test_history,
        test_target=test_target,
        item_text={i + 1: clean_text(texts.get(asin, "")) for i, asin in enumerate(asins)},
        item_ids={i + 1: asin for i, asin in enumerate(asins)},
    )
    split.validate()
    return split


def load_amazon_scientific(
    directory: Path, *, prefix: str = "Scientific", include_held_out: bool = False
) -> DatasetBundle:
    """Items as Products (title / category / brand parsed from the text) + view events.

    Views replay each user's training sequence (plus the valid and test items when
    `include_held_out`) on a synthetic clock: user u's k-th view happens at
    SYNTHETIC_EPOCH + u hours + k minutes, so order within a user is preserved.
    """
    split = read_unisrec(directory, prefix)
    assert split.item_ids is not None and split.item_text is not None
    products = []
    for dense_id, asin in split.item_ids.items():
        title, path, brand = parse_item_text(split.item_text[dense_id])
        products.append(Product(item_id=asin, title=title or asin, category_path=path, brand=brand))
    events: list[Event] = []
    aligned = len(split.valid_target) == len(split.test_target) == len(split.train)
    for user, seq in enumerate(split.train):
        items = list(seq)
        if include_held_out and aligned:
            items += [split.valid_target[user], split.test_target[user]]
        start = synthetic_time(user, seconds_per_step=3600)
        for k, dense_id in enumerate(items):
            events.append(
                ViewEvent(
                    event_id=f"{prefix.lower()}-u{user}-v{k}",
                    user_id=f"sci-{user}",
                    item_id=split.item_ids[dense_id],
                    timestamp=start + timedelta(minutes=k),
                )
            )
    return DatasetBundle(
        products=products,
        events=events,
        name="amazon-scientific",
        notes={"timestamps": "synthetic", "include_held_out": include_held_out},
    )
