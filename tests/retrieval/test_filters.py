from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shoploop.retrieval.filters import CatalogColumns, Filters


def _columns(products):
    cols = CatalogColumns()
    for key, p in enumerate(products):
        cols.set(key, p)
    return cols


def test_filters_mask(products):
    cols = _columns(products)
    ids = lambda m: {products[i].item_id for i in range(len(products)) if m[i]}  # noqa: E731
    assert ids(cols.mask(Filters(category="Tools > Power Tools"))) == {"p1", "p2"}
    assert ids(cols.mask(Filters(category="tools"))) == {"p1", "p2", "p3", "p11"}
    assert ids(cols.mask(Filters(brand="behr"))) == {"p4", "p5"}
    assert ids(cols.mask(Filters(brand="Behr", in_stock=True))) == {"p5"}
    assert ids(cols.mask(Filters(min_price=100, max_price=200))) == {"p1", "p5", "p9"}
    assert cols.mask(Filters()) is None


def test_facets_count_the_given_keys(products):
    cols = _columns(products)
    f = cols.facets([0, 1, 3, 4])  # two drills, two Behr paints
    assert f["category"] == {"Tools": 2, "Paint": 2}
    assert f["brand"] == {"Behr": 2, "DeWalt": 1, "Bosch": 1}
    assert f["price"] == {"100-250": 2, "50-100": 1, "25-50": 1}
    assert f["in_stock"] == {"in_stock": 3, "out_of_stock": 1}


def test_removed_product_is_filtered_out(products):
    cols = _columns(products)
    cols.remove(0)
    assert not cols.mask(Filters(brand="DeWalt"))[0]


def test_bad_price_range_names_the_field():
    with pytest.raises(ValidationError, match="max_price"):
        Filters(min_price=50, max_price=10)


def test_several_brands_mean_any_of_them(products):
    cols = _columns(products)
    ids = lambda m: {products[i].item_id for i in range(len(products)) if m[i]}  # noqa: E731
    assert ids(cols.mask(Filters(brand=["behr", "DeWalt "]))) == ids(cols.mask(Filters(brand="behr"))) | ids(
        cols.mask(Filters(brand="DeWalt"))
    )
    assert Filters(brand=["Behr", " Behr "]).brand == "Behr"  # one brand stays a plain string
    assert Filters(brand=["", "  "]).brand is None
    with pytest.raises(ValidationError, match="at most 50 brands"):
        Filters(brand=[f"b{i}" for i in range(51)])


@given(st.lists(st.text(max_size=12), max_size=8))
def test_brand_keys_are_the_given_brands_folded(names):
    wanted = {n.strip().casefold() for n in names if n.strip()}
    flt = Filters(brand=names)
    assert flt.brand_keys() == wanted
    assert (flt.brand is None) == (not wanted)
    assert Filters(brand=flt.brand).brand_keys() == wanted  # round trip through the stored form
