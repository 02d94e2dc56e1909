"""Home Depot product search relevance (Kaggle 2016).

`products.csv` (product_uid, product_title) is the catalog; `judgments.csv` holds graded
relevance labels (1.0-3.0) for (query, product) pairs. The judgments are labels, not
shopper behaviour, so `load_homedepot` returns the catalog only and benchmarks read the
labels through `read_homedepot`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shoploop.data.datasets._common import clean_text, require_columns, require_file
from shoploop.data.datasets.types import DatasetBundle
from shoploop.domain import Product

PRODUCT_COLUMNS = ("product_uid", "product_title")
JUDGMENT_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")


def read_homedepot(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(products, judgments) frames; product_uid is a string in both, relevance a float."""
    directory = Path(directory)
    products_path = require_file(directory / "products.csv", "homedepot catalog")
    judgments_path = require_file(directory / "judgments.csv", "homedepot judgments")
    products = pd.read_csv(products_path, dtype={"product_uid": str}, encoding="utf-8")
    require_columns(products, PRODUCT_COLUMNS, products_path)
    judgments = pd.read_csv(judgments_path, dtype={"product_uid": str, "search_term": str}, encoding="utf-8")
    require_columns(judgments, JUDGMENT_COLUMNS, judgments_path)
    judgments["relevance"] = judgments["relevance"].astype(float)
    products["product_title"] = products["product_title"].fillna("").astype(str)
    return products[list(PRODUCT_COLUMNS)], judgments[list(JUDGMENT_COLUMNS)]


def load_homedepot(directory: Path, *, limit: int | None = None) -> DatasetBundle:
    """The Home Depot catalog as Products (title only; the dataset has no prices or categories)."""
    directory = Path(directory)
    path = require_file(directory / "products.csv", "homedepot catalog")
    frame = pd.read_csv(path, dtype={"product_uid": str}, encoding="utf-8", nrows=limit)
    require_columns(frame, PRODUCT_COLUMNS, path)
    products: list[Product] = []
    skipped = 0
    for uid, title in zip(frame["product_uid"], frame["product_title"], strict=True):
        title = clean_text(title)
        if not title or not isinstance(uid, str):
            skipped += 1
            continue
        products.append(Product(item_id=uid.strip(), title=title))
    return DatasetBundle(products=products, events=[], name="homedepot", notes={"skipped_rows": skipped})
