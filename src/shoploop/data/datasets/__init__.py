"""Adapters for the public datasets in `../shared/data`.

Two shapes: `load_dataset(name, directory)` gives a shop-shaped `DatasetBundle`
(Products + typed events, ready for `shoploop.data.ingest.import_records`); the
`read_*` functions give benchmark-shaped data (`SequenceSplit`, `BanditLog`, frames).
Event ids are derived from the source rows, so importing the same files twice is a no-op.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from shoploop.data.datasets.amazon_scientific import load_amazon_scientific, parse_item_text, read_unisrec
from shoploop.data.datasets.homedepot import load_homedepot, read_homedepot
from shoploop.data.datasets.movielens import load_ml1m, load_ml100k, read_gsasrec
from shoploop.data.datasets.obd import load_obd, read_obd
from shoploop.data.datasets.retrotech import load_retrotech, read_retrotech_products, read_retrotech_sessions
from shoploop.data.datasets.sequences import read_sequences
from shoploop.data.datasets.types import BanditLog, DatasetBundle, SequenceSplit

DatasetName = Literal["homedepot", "retrotech", "amazon-scientific", "ml-100k", "ml-1m", "obd"]

LOADERS: dict[str, Callable[..., DatasetBundle]] = {
    "homedepot": load_homedepot,
    "retrotech": load_retrotech,
    "amazon-scientific": load_amazon_scientific,
    "ml-100k": load_ml100k,
    "ml-1m": load_ml1m,
    "obd": load_obd,
}
DATASET_NAMES: tuple[str, ...] = tuple(LOADERS)


def load_dataset(name: DatasetName, directory: Path, **opts: Any) -> DatasetBundle:
    """Load a public dataset as Products + events. `directory` is the dataset's own folder
    (e.g. `../shared/data/retrotech`); `opts` go to the dataset's `load_*` function.
    `progress=True` shows a progress bar for the large ones (retrotech sessions, ml-1m)."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}") from None
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{name}: dataset directory {directory} is missing")
    if "progress" in opts and "progress" not in inspect.signature(loader).parameters:
        opts.pop("progress")  # small datasets load in a second and take no progress flag
    return loader(directory, **opts)


__all__ = [
    "DATASET_NAMES",
    "BanditLog",
    "DatasetBundle",
    "DatasetName",
    "SequenceSplit",
    "load_amazon_scientific",
    "load_dataset",
    "load_homedepot",
    "load_ml1m",
    "load_ml100k",
    "load_obd",
    "load_retrotech",
    "parse_item_text",
    "read_gsasrec",
    "read_homedepot",
    "read_obd",
    "read_retrotech_products",
    "read_retrotech_sessions",
    "read_sequences",
    "read_unisrec",
]
