"""Tiny catalog + a deterministic fake encoder so retrieval tests run in milliseconds."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from shoploop.domain.products import Product
from shoploop.retrieval.config import HybridConfig
from shoploop.retrieval.dense import DenseConfig
from shoploop.retrieval.hybrid import HybridSearcher
from shoploop.text.normalize import tokenize


class FakeEncoder:
    """Bag-of-hashed-tokens vectors: similar texts get similar vectors, no model load."""

    dim = 64
    model_id = "fake"

    def __init__(self) -> None:
        self.n_encoded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for tok in tokenize(text):
            h = int.from_bytes(hashlib.md5(tok.encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode(self, texts, *, progress=False):
        self.n_encoded += len(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_query(self, text):
        return self._vec(text)


def catalog() -> list[Product]:
    rows = [
        ("p1", "Cordless Drill 18-Volt Lithium", ("Tools", "Power Tools", "Drills"), "DeWalt", 129.0, True),
        ("p2", "Hammer Drill 1/2 in. Corded", ("Tools", "Power Tools", "Drills"), "Bosch", 89.0, True),
        ("p3", "Claw Hammer 16 oz. Fiberglass", ("Tools", "Hand Tools", "Hammers"), "Estwing", 25.0, True),
        ("p4", "Interior Paint Eggshell 1 gal. White", ("Paint", "Interior Paint"), "Behr", 32.0, False),
        ("p5", "Deck Stain Semi-Transparent 5 gal.", ("Paint", "Exterior Stain"), "Behr", 149.0, True),
        ("p6", "Rain Shower Head 8 in. Chrome", ("Bath", "Showers", "Shower Heads"), "Delta", 45.0, True),
        ("p7", "Angle Bracket 12-Gauge Galvanized", ("Hardware", "Brackets"), "Simpson", 3.5, True),
        ("p8", "Leather Sofa Three Seat Brown", ("Furniture", "Living Room"), "Ashley", 899.0, True),
        ("p9", "Television 32 in. LED Smart", ("Electronics", "TVs"), "Samsung", 199.0, True),
        ("p10", "Paint Roller 9 in. Cover", ("Paint", "Paint Tools"), "Wooster", 6.0, True),
        ("p11", "Drill Bit Set Titanium 21-Piece", ("Tools", "Power Tool Accessories"), "DeWalt", 29.0, True),
        ("p12", "Garden Hose 50 ft. Heavy Duty", ("Outdoors", "Garden"), "Flexzilla", 39.0, True),
    ]
    return [
        Product(item_id=i, title=t, category_path=c, brand=b, price=pr, in_stock=s)
        for i, t, c, b, pr, s in rows
    ]


@pytest.fixture
def products() -> list[Product]:
    return catalog()


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def searcher(products, fake_encoder) -> HybridSearcher:
    cfg = HybridConfig(dense=DenseConfig(backend="usearch"))
    return HybridSearcher(cfg, encoder=fake_encoder).fit(products)
