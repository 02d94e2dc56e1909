import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shoploop.domain import IdMap, Product


def test_category_path_from_string_and_text():
    p = Product(
        item_id="1", title="Cordless Drill", category_path="Tools > Power Tools ", brand=" ", price=99.0
    )
    assert p.category_path == ("Tools", "Power Tools")
    assert p.category == "Power Tools" and p.top_category == "Tools"
    assert p.brand is None
    assert p.text() == "Cordless Drill. Tools > Power Tools"


@pytest.mark.parametrize(
    ("field", "value"), [("price", 0), ("price", -5), ("currency", "usd"), ("title", ""), ("item_id", "   ")]
)
def test_bad_product_fields_are_named(field, value):
    raw = {"item_id": "1", "title": "t", field: value}
    with pytest.raises(ValidationError) as err:
        Product(**raw)
    assert field in str(err.value)


def test_idmap_reserves_zero_for_padding(tmp_path):
    m = IdMap(["a", "b", "a"])
    assert len(m) == 2 and m.size_with_padding == 3
    assert m.index("a") == 1 and m.index("b") == 2 and m.get("zzz") == 0
    assert m.externals([2, 1]) == ["b", "a"]
    with pytest.raises(IndexError):
        m.external(0)
    with pytest.raises(KeyError, match="zzz"):
        m.index("zzz")
    m.save(tmp_path / "ids.json")
    assert IdMap.load(tmp_path / "ids.json") == m


@given(st.lists(st.text(min_size=1, max_size=8)))
def test_idmap_is_a_bijection(ids):
    m = IdMap(ids)
    assert len(m) == len(set(ids))
    for external in ids:
        assert m.external(m.index(external)) == external
    assert sorted(m.indices(list(set(ids)))) == list(range(1, len(m) + 1))
