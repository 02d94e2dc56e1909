"""`FeatureAssembler.transform` builds exactly (bit for bit, float32) the features the plain
per-row implementation it replaced built, over random candidates, explanations, shoppers and
online counters: missing products, missing or malformed explanation keys, NaN / inf values,
unknown shoppers, with and without a query. The reference below is that implementation, kept
verbatim as the oracle."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoploop.domain import ClickEvent, ImpressionEvent, PurchaseEvent, ShownItem
from shoploop.feedback.features import FEATURE_NAMES, FeatureAssembler, FeatureContext, query_key
from shoploop.feedback.online import OnlineConfig, OnlineState, UserProfile

# ---- the reference: the per-row transform as it was ---------------------------------------


def _ref_nested(expl: Mapping[str, Any], *path: str) -> float | None:
    value: Any = expl
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _ref_first(expl: Mapping[str, Any], *paths: tuple[str, ...]) -> float:
    for path in paths:
        value = _ref_nested(expl, *path)
        if value is not None:
            return value
    return 0.0


def reference_transform(
    item_ids: Sequence[str], explanations: Sequence[Mapping[str, Any]], ctx: FeatureContext
) -> np.ndarray:
    n = len(item_ids)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    if n == 0:
        return out
    online = ctx.online
    cfg = online.config
    prior = cfg.ctr_prior_clicks / cfg.ctr_prior_impressions
    qkey = query_key(ctx.query)
    profile = ctx.profile
    known = profile is not None and profile.is_known
    recent_vecs = None
    if known and ctx.item_vector is not None and profile is not None:
        vecs = [v for i in profile.recent_items[-10:] if (v := ctx.item_vector(i)) is not None]
        recent_vecs = np.stack(vecs) if vecs else None
    surface = ctx.surface
    for row, (item_id, expl) in enumerate(zip(item_ids, explanations, strict=True)):
        f = out[row]
        f[0] = _ref_first(expl, ("retrieval_score",), ("model_score",), ("featured_score",))
        f[1] = _ref_first(expl, ("scores", "bm25"))
        f[2] = _ref_first(expl, ("scores", "dense"))
        f[3] = _ref_first(expl, ("cross_encoder",), ("cross_encoder_score",))
        f[4] = _ref_first(expl, ("model_score",))
        product = ctx.products(item_id)
        if known and profile is not None:
            if product is not None:
                cat = max((profile.category_affinity.get(c, 0.0) for c in product.category_path), default=0.0)
                brand = profile.brand_affinity.get(product.brand or "", 0.0)
                f[5] = math.copysign(math.log1p(abs(cat)), cat)
                f[6] = math.copysign(math.log1p(abs(brand)), brand)
            if recent_vecs is not None and ctx.item_vector is not None:
                vec = ctx.item_vector(item_id)
                if vec is not None:
                    f[7] = float(np.max(recent_vecs @ vec))
            f[8] = 1.0 if item_id in profile.disliked else 0.0
            f[21] = math.log1p(profile.fatigue.get(item_id, 0.0))
        shown = online.item_count(item_id, "impression", surface=surface)
        clicks = online.item_count(item_id, "click", surface=surface)
        f[9] = math.log1p(shown)
        f[10] = math.log1p(clicks)
        f[11] = online.item_ctr(item_id, surface=surface)
        f[12] = math.log1p(online.item_count(item_id, "purchase"))
        if qkey:
            q_shown = online.query_item_signal(qkey, item_id, "impression")
            q_clicks = online.query_item_signal(qkey, item_id, "click")
            f[13] = math.log1p(q_shown)
            f[14] = math.log1p(q_clicks)
            f[15] = online.query_item_ctr(qkey, item_id)
            f[16] = f[15] - prior
        price = product.price if product is not None else None
        if price is not None and price > 0:
            f[17] = math.log1p(price)
            f[18] = 1.0
        rank = _ref_nested(expl, "retrievers", "bm25", "rank")
        f[19] = math.log1p(rank if rank else 1000.0)
        matched = expl.get("matched_terms")
        f[20] = float(len(matched)) if isinstance(matched, list | tuple) else 0.0
    return out


# ---- random worlds -------------------------------------------------------------------------

ITEMS = tuple(f"sku-{k}" for k in range(12))
CATEGORIES = ("Tools", "Drills", "Home", "Lamps", "Garden")
BRANDS = ("acme", "bolt", "")
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FakeProduct:
    """What the features read of a product, without `Product`'s validation (NaN / 0 / negative
    prices, empty category paths)."""

    category_path: tuple[str, ...]
    brand: str | None
    price: float | None


class Odd(Mapping):
    """A Mapping that is not a dict: the general (slow) path of explanation parsing."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


weird_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-40, 3.4e38, 3.5e38, 1e300, -1e300, float("nan"), float("inf")]),
)
numbers = st.one_of(
    weird_floats,
    st.sampled_from([0, 1, -1, 0.0]),  # falsy values are values: they stop `_first`'s search
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.sampled_from(["1.5", " 2 ", "nan", "inf", "abc", "", None, [1.0], {"x": 1.0}]),
    st.builds(np.float32, st.floats(-1e6, 1e6, width=32)),
    st.builds(np.int64, st.integers(-1000, 1000)),
)
ranks = st.one_of(st.none(), st.integers(0, 5000), st.floats(0, 1e4), st.sampled_from([0, "7", float("nan")]))


@st.composite
def explanations(draw) -> Mapping[str, Any]:
    expl: dict[str, Any] = {}
    for key in ("retrieval_score", "model_score", "featured_score", "cross_encoder", "cross_encoder_score"):
        if draw(st.booleans()):
            expl[key] = draw(numbers)
    if draw(st.booleans()):
        scores = draw(
            st.one_of(
                st.dictionaries(st.sampled_from(["bm25", "dense", "other"]), numbers, max_size=3),
                st.sampled_from([None, 1.0, "bm25"]),
            )
        )
        expl["scores"] = Odd(scores) if isinstance(scores, dict) and draw(st.booleans()) else scores
    if draw(st.booleans()):
        expl["retrievers"] = draw(
            st.one_of(
                st.fixed_dictionaries({"bm25": st.fixed_dictionaries({"rank": ranks})}),
                st.fixed_dictionaries({"bm25": st.just({})}),
                st.just({"dense": {"rank": 3}}),
                st.just("bm25"),
            )
        )
    if draw(st.booleans()):
        expl["matched_terms"] = draw(
            st.one_of(
                st.lists(st.text(max_size=4), max_size=4),
                st.tuples(st.text(max_size=3)),
                st.sampled_from(["drill", None, 3, {"a": 1}]),
            )
        )
    expl["popularity"] = draw(weird_floats)  # an explanation key the features ignore
    return Odd(expl) if draw(st.integers(0, 9)) == 0 else expl


@st.composite
def products(draw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in ITEMS:
        if draw(st.integers(0, 4)) == 0:
            continue  # not in the catalog (deleted, or never imported)
        path = tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=3, unique=True)))
        brand = draw(st.one_of(st.none(), st.sampled_from(BRANDS)))
        price = draw(st.one_of(st.none(), weird_floats, st.floats(0.01, 5000)))
        out[item] = FakeProduct(path, brand, price)
    return out


@st.composite
def online_states(draw) -> OnlineState:
    theta = draw(st.sampled_from([None, (1.0, 0.6, 0.4, 0.3)]))
    online = OnlineState(OnlineConfig(examination=theta), lookup=lambda _i: None)
    for r in range(draw(st.integers(0, 12))):
        surface = draw(st.sampled_from(["search", "browse", "home"]))
        query = draw(st.sampled_from([None, "Drill", " drill ", "red lamp"])) if surface == "search" else None
        shown = draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=6, unique=True))
        ts = T0 + timedelta(hours=draw(st.integers(0, 500)))
        rid = f"r{r}"
        online.update(
            ImpressionEvent(
                user_id="u",
                timestamp=ts,
                request_id=rid,
                surface=surface,
                query=query,
                items=tuple(ShownItem(item_id=i, position=p + 1) for p, i in enumerate(shown)),
            )
        )
        for i in draw(st.lists(st.sampled_from(shown), max_size=3)):
            online.update(ClickEvent(user_id="u", timestamp=ts, item_id=i, request_id=rid))
        if draw(st.booleans()):
            online.update(
                PurchaseEvent.model_validate(
                    {
                        "user_id": "u",
                        "timestamp": ts,
                        "items": [{"item_id": shown[0], "quantity": 2, "price": 9.5}],
                    }
                )
            )
    return online


# decayed counts: mostly ordinary (negative after dislikes), sometimes absurd; the category map
# often covers every category, so a product's max over its path can be negative or NaN
affinity_values = st.one_of(st.floats(-50, 50), weird_floats)
category_affinities = st.one_of(
    st.fixed_dictionaries({c: affinity_values for c in CATEGORIES}),
    st.dictionaries(st.sampled_from(CATEGORIES), affinity_values, max_size=5),
)
brand_affinities = st.dictionaries(st.sampled_from(BRANDS), affinity_values, max_size=3)
profiles = st.one_of(
    st.none(),
    st.just(UserProfile("nobody", (), (), {}, {}, frozenset(), frozenset())),  # unknown shopper
    st.builds(
        UserProfile,
        user_id=st.just("u"),
        recent_items=st.lists(st.sampled_from((*ITEMS, "gone")), min_size=1, max_size=12).map(tuple),
        recent_queries=st.lists(st.sampled_from(["drill", "lamp"]), max_size=2).map(tuple),
        category_affinity=category_affinities,
        brand_affinity=brand_affinities,
        purchased=st.frozensets(st.sampled_from(ITEMS), max_size=3),
        disliked=st.frozensets(st.sampled_from(ITEMS), max_size=3),
        # decayed, position-weighted showings: never negative
        fatigue=st.dictionaries(st.sampled_from(ITEMS), st.floats(0, 40), max_size=4),
    ),
)


@st.composite
def item_vectors(draw):
    if draw(st.booleans()):
        return None
    vectors = {
        item: np.asarray(draw(st.lists(st.floats(-2, 2, width=32), min_size=4, max_size=4)), dtype=np.float32)
        for item in ITEMS
        if draw(st.booleans())
    }
    return vectors.get


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and a.tobytes() == b.tobytes()


def outcome(fn, *args):
    """The matrix, or the type of the exception raised (log1p of a negative rank, an int too large
    for a float): the fast path must fail where the reference fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # float32 overflow in the cast, in both
        try:
            return fn(*args)
        except Exception as exc:  # compared below, not swallowed
            return type(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.sampled_from((*ITEMS, "not-in-catalog")), max_size=10),
    data=st.data(),
    catalog=products(),
    online=online_states(),
    profile=profiles,
    query=st.sampled_from([None, "", "   ", "drill", "Drill", " DRILL ", "red lamp", "never searched"]),
    surface=st.sampled_from(["search", "browse", "home"]),
    vectors=item_vectors(),
)
def test_transform_matches_the_per_row_reference_bit_for_bit(
    items, data, catalog, online, profile, query, surface, vectors
):
    expls = [data.draw(explanations()) for _ in items]
    ctx = FeatureContext(
        online, catalog.get, query=query, profile=profile, surface=surface, item_vector=vectors
    )
    want = outcome(reference_transform, items, expls, ctx)
    got = outcome(FeatureAssembler().transform, items, expls, ctx)
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), got
        assert same_bits(got, want), np.argwhere(got.view(np.uint32) != want.view(np.uint32))
    else:
        assert got is want


def test_a_query_sets_the_query_columns_and_float32_excess_as_before():
    online = OnlineState(lookup=lambda _i: None)
    ts = T0
    online.update(
        ImpressionEvent(
            user_id="u",
            timestamp=ts,
            request_id="r",
            surface="search",
            query="Drill",
            items=(ShownItem(item_id="a", position=1), ShownItem(item_id="b", position=2)),
        )
    )
    online.update(ClickEvent(user_id="u", timestamp=ts, item_id="a", request_id="r"))
    ctx = FeatureContext(online, lambda _i: None, query=" drill")
    got = FeatureAssembler().transform(["a", "b", "c"], [{}, {"retrieval_score": 2}, {}], ctx)
    assert same_bits(got, reference_transform(["a", "b", "c"], [{}, {"retrieval_score": 2}, {}], ctx))
    ctr = FEATURE_NAMES.index("query_ctr")
    assert got[0, ctr] > got[1, ctr] > 0 and got[2, FEATURE_NAMES.index("query_ctr_excess")] == 0.0


def test_lengths_must_agree_and_empty_is_empty():
    ctx = FeatureContext(OnlineState(lookup=lambda _i: None), lambda _i: None)
    assert FeatureAssembler().transform([], [], ctx).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError):
        FeatureAssembler().transform(["a", "b"], [{}], ctx)
