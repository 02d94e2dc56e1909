"""Dataset adapters: tiny hand-written files (always run) and the real data (skip when absent)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoploop.data.datasets import (
    DATASET_NAMES,
    load_dataset,
    parse_item_text,
    read_gsasrec,
    read_homedepot,
    read_obd,
    read_retrotech_products,
    read_retrotech_sessions,
    read_sequences,
    read_unisrec,
)
from shoploop.domain import ClickEvent, ImpressionEvent, SearchEvent, event_item_ids

# ---------------------------------------------------------------- tiny synthetic files


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def homedepot_dir(tmp_path: Path) -> Path:
    _write(
        tmp_path / "products.csv",
        "product_uid,product_title\n100001,Angle Bracket\n100002,Deck Paint 1-gal.\n",
    )
    _write(
        tmp_path / "judgments.csv",
        "id,product_uid,product_title,search_term,relevance\n"
        "2,100001,Angle Bracket,angle bracket,3\n3,100001,Angle Bracket,l bracket,2.33\n",
    )
    return tmp_path


def test_homedepot_reader_and_loader(homedepot_dir: Path):
    products, judgments = read_homedepot(homedepot_dir)
    assert products["product_uid"].tolist() == ["100001", "100002"]
    assert judgments["relevance"].tolist() == [3.0, 2.33]
    assert judgments["product_uid"].tolist() == ["100001", "100001"]
    bundle = load_dataset("homedepot", homedepot_dir)
    assert [p.item_id for p in bundle.products] == ["100001", "100002"]
    assert bundle.events == []  # judgments are labels, not behaviour


def test_missing_file_error_names_it(tmp_path: Path):
    _write(tmp_path / "products.csv", "product_uid,product_title\n1,x\n")
    with pytest.raises(FileNotFoundError, match=r"judgments\.csv"):
        read_homedepot(tmp_path)


def test_missing_column_error_names_it(tmp_path: Path):
    _write(tmp_path / "products.csv", "uid,product_title\n1,x\n")
    _write(tmp_path / "judgments.csv", "id,product_uid,product_title,search_term,relevance\n")
    with pytest.raises(ValueError, match="product_uid"):
        read_homedepot(tmp_path)


def test_unknown_dataset_and_missing_directory(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dataset("ml-100k", tmp_path / "absent")


@pytest.fixture
def retrotech_dir(tmp_path: Path) -> Path:
    _write(
        tmp_path / "products.csv",
        '"upc","name","manufacturer","short_description","long_description"\n'
        '"012345678901","Nook Reader - \\"Glow\\"","Barnes","Read &amp; relax"," "\n'
        '"012345678901","Nook","Barnes"," "," "\n'
        '"222222222222","Kindle","UNKNOWN"," ","Long text"\n',
    )
    rows = (
        "sess_id,query,rank,clicked_doc_id,clicked\n"
        "5,nook,0.0,12345678901,True\n"  # leading zero lost in the file
        "5,nook,1.0,222222222222,False\n"
        "5,nook,2.0,999999999999,True\n"  # not in the catalog
        "6,nook,0.0,222222222222,False\n"
    )
    path = tmp_path / "sessions" / "nook_sessions.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt") as handle:
        handle.write(rows)
    return tmp_path


def test_retrotech_catalog_dedupes_and_cleans(retrotech_dir: Path):
    bundle = load_dataset("retrotech", retrotech_dir, with_sessions=False)
    by_id = {p.item_id: p for p in bundle.products}
    assert set(by_id) == {"012345678901", "222222222222"}
    nook = by_id["012345678901"]
    assert nook.title == 'Nook Reader - "Glow"'  # the longer duplicate wins; escapes read
    assert nook.description == "Read & relax"  # HTML entities unescaped
    assert nook.brand == "Barnes"
    assert by_id["222222222222"].brand is None  # "UNKNOWN" is no brand


def test_retrotech_sessions_become_linked_events(retrotech_dir: Path):
    bundle = load_dataset("retrotech", retrotech_dir)
    assert bundle.event_counts() == {"search": 2, "impression": 2, "click": 1}
    imp = next(e for e in bundle.events if isinstance(e, ImpressionEvent) and e.user_id == "rt-5")
    assert [(it.item_id, it.position) for it in imp.items] == [("012345678901", 1), ("222222222222", 2)]
    click = next(e for e in bundle.events if isinstance(e, ClickEvent))
    assert (click.request_id, click.position, click.item_id) == (imp.request_id, 1, "012345678901")
    search = next(e for e in bundle.events if isinstance(e, SearchEvent))
    assert search.query == "nook" and search.request_id == imp.request_id
    assert bundle.notes["dropped_unknown_rows"] == 1
    again = load_dataset("retrotech", retrotech_dir)
    assert [e.event_id for e in again.events] == [e.event_id for e in bundle.events]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Gorilla Glue, 8 ounce. Industrial & Scientific Tapes Adhesives. Gorilla. ",
            ("Gorilla Glue, 8 ounce", ("Industrial & Scientific", "Tapes Adhesives"), "Gorilla"),
        ),
        ("Dry Lube 10 OZ (Pack of 1). . WD-40. ", ("Dry Lube 10 OZ (Pack of 1)", (), "WD-40")),
        (
            "No. 2 Pencil. Industrial & Scientific. Acme. ",
            ("No. 2 Pencil", ("Industrial & Scientific",), "Acme"),
        ),
        ("just a title", ("just a title", (), None)),
    ],
)
def test_parse_item_text(text, expected):
    assert parse_item_text(text) == expected


@pytest.fixture
def unisrec_dir(tmp_path: Path) -> Path:
    _write(tmp_path / "X.item2index", "A1\t0\nA2\t1\nA3\t2\nA4\t3\n")
    _write(tmp_path / "X.user2index", "U1\t0\nU2\t1\n")
    _write(
        tmp_path / "X.text",
        "item_id:token\ttext:token_seq\nA1\tOne. Industrial & Scientific Glue. B1. \n"
        "A2\tTwo. Industrial & Scientific Tape. B2. \nA3\tThree. . B3. \n"
        "A4\tFour. Industrial & Scientific. B4. \n",
    )
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    _write(tmp_path / "X.train.inter", header + "0\t0\t1\n0\t0 1\t2\n1\t3\t2\n")
    _write(tmp_path / "X.valid.inter", header + "0\t0 1 2\t3\n1\t3 2\t1\n")
    _write(tmp_path / "X.test.inter", header + "0\t0 1 2 3\t0\n1\t3 2 1\t0\n")
    return tmp_path


def test_read_unisrec_maps_to_one_based_ids(unisrec_dir: Path):
    split = read_unisrec(unisrec_dir, "X")
    assert split.n_items == 4
    assert split.train == [[1, 2, 3], [4, 3]]  # longest train row + its target, +1
    assert split.valid_history == [[1, 2, 3], [4, 3]] and split.valid_target == [4, 2]
    assert split.test_history == [[1, 2, 3, 4], [4, 3, 2]] and split.test_target == [1, 1]
    assert split.item_text is not None and split.item_text[1].startswith("One.")
    assert split.item_ids == {1: "A1", 2: "A2", 3: "A3", 4: "A4"}


def test_load_amazon_scientific_views_keep_order(unisrec_dir: Path):
    bundle = load_dataset("amazon-scientific", unisrec_dir, prefix="X")
    assert [p.brand for p in bundle.products] == ["B1", "B2", "B3", "B4"]
    views = [e for e in bundle.events if e.user_id == "sci-0"]
    assert [e.item_id for e in views] == ["A1", "A2", "A3"]
    assert all(a.timestamp < b.timestamp for a, b in itertools.pairwise(views))
    held = load_dataset("amazon-scientific", unisrec_dir, prefix="X", include_held_out=True)
    assert [e.item_id for e in held.events if e.user_id == "sci-0"] == ["A1", "A2", "A3", "A4", "A1"]


def test_read_gsasrec_recovers_validation_users_history(tmp_path: Path):
    # user 0 ordinary: full 1 2 3 4 5 -> train 1 2 3, test 5 (4 unknown)
    # user 1 validation: full 6 7 8 9 10 -> train 6 7, val_input 6 7 8, val 9, test 10
    _write(tmp_path / "train_input.txt", "1 2 3\n6 7\n")
    _write(tmp_path / "test_output.txt", "5\n10\n")
    _write(tmp_path / "val_input.txt", "6 7 8\n")
    _write(tmp_path / "val_output.txt", "9\n")
    split = read_gsasrec(tmp_path)
    assert split.n_items == 10
    assert split.train == [[1, 2, 3], [6, 7]]
    assert split.test_history == [[1, 2, 3], [6, 7, 8, 9]]
    assert split.test_target == [5, 10]
    assert (split.valid_history, split.valid_target) == ([[6, 7, 8]], [9])
    assert split.test_exact == [1]  # only user 1's test history is complete


def test_read_gsasrec_rejects_mismatched_lengths(tmp_path: Path):
    _write(tmp_path / "train_input.txt", "1 2 3\n6 7\n")
    _write(tmp_path / "test_output.txt", "5\n")
    _write(tmp_path / "val_input.txt", "")
    _write(tmp_path / "val_output.txt", "")
    with pytest.raises(ValueError, match=r"test_output\.txt"):
        read_gsasrec(tmp_path)


def test_read_sequences_leave_one_out(tmp_path: Path):
    path = _write(tmp_path / "seq.txt", "u1 1 2 3 4\nu2 5 6\nu3 7\nu3 8\nu3 9\n")
    split = read_sequences(path)
    assert split.n_items == 9
    assert split.train == [[1, 2], [7]]  # u2 is too short; u3 spans several lines
    assert split.valid_target == [3, 8] and split.test_target == [4, 9]
    assert split.test_history == [[1, 2, 3], [7, 8]]


def test_read_sequences_rejects_padding_id(tmp_path: Path):
    with pytest.raises(ValueError, match="padding"):
        read_sequences(_write(tmp_path / "s.txt", "u1 0 1 2\n"))
    with pytest.raises(FileNotFoundError, match="sequence file"):
        read_sequences(tmp_path / "absent.txt")


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    _write(
        tmp_path / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction\n",
    )
    _write(
        tmp_path / "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t2\t4\t881250949\n7\t1\t5\t881250000\n",
    )
    return tmp_path


def test_ml100k(ml100k_dir: Path):
    bundle = load_dataset("ml-100k", ml100k_dir)
    toy = bundle.products[0]
    assert toy.title == "Toy Story" and toy.category_path == ("Movies", "Animation")
    assert toy.attributes == {"genres": "Animation|Children's|Comedy", "year": 1995}
    assert [(e.item_id, e.rating) for e in bundle.events] == [("1", 5), ("2", 4)]  # time order
    assert bundle.events[0].timestamp.timestamp() == 881250000


@pytest.fixture
def obd_dir(tmp_path: Path) -> Path:
    base = tmp_path / "random" / "men"
    _write(
        base / "item_context.csv",
        ",item_id,item_feature_0,item_feature_1\n0,0,-0.5,aa\n1,1,0.25,bb\n2,2,0.0,aa\n",
    )
    _write(
        base / "men.csv",
        ",timestamp,item_id,position,click,propensity_score,user_feature_0,user-item_affinity_0\n"
        "0,2019-11-24 00:03:13.4+00:00,2,3,0,0.25,x,0.0\n"
        "1,2019-11-24 00:04:00+00:00,0,1,1,0.5,y,1.0\n",
    )
    return tmp_path


def test_read_obd_shapes_and_zero_based_positions(obd_dir: Path):
    log = read_obd(obd_dir, "random")
    assert log.position.tolist() == [2, 0]
    assert log.action.tolist() == [2, 0]
    assert log.reward.tolist() == [0.0, 1.0]
    assert log.pscore.tolist() == [0.25, 0.5]
    assert (log.n_actions, log.len_list) == (3, 3)
    assert log.context.shape == (2, 1)  # one-hot of 2 levels, first dropped
    assert log.action_context.tolist() == [[0.0, -0.5], [1.0, 0.25], [0.0, 0.0]]
    assert read_obd(obd_dir, "random", include_affinity=True).context.shape == (2, 2)
    assert log.timestamp.dtype == np.dtype("datetime64[us]")
    with pytest.raises(FileNotFoundError, match="bts/men"):
        read_obd(obd_dir, "bts")


def test_load_obd_events_carry_propensity(obd_dir: Path):
    bundle = load_dataset("obd", obd_dir)
    assert bundle.event_counts() == {"impression": 2, "click": 1}
    imp = bundle.events[1]
    assert isinstance(imp, ImpressionEvent)
    assert imp.items[0].position == 1 and imp.items[0].propensity == 0.5
    catalog = {p.item_id for p in bundle.products}
    assert all(set(event_item_ids(e)) <= catalog for e in bundle.events)


# ---------------------------------------------------------------- the real data


@pytest.mark.data
def test_real_homedepot_counts(shared_data: Path):
    products, judgments = read_homedepot(shared_data / "homedepot")
    assert len(products) == 54_667
    assert len(judgments) == 51_841
    assert judgments["search_term"].nunique() == 8_267
    assert judgments["relevance"].between(1.0, 3.0).all()


@pytest.mark.data
def test_real_unisrec_counts(shared_data: Path):
    split = read_unisrec(shared_data / "amazon-scientific", "Scientific")
    assert (split.n_users, split.n_items) == (8_442, 4_385)
    assert len(split.valid_target) == len(split.test_target) == 8_442
    # train + valid + test targets = all interactions (README: 59k)
    assert split.n_interactions() + len(split.valid_target) == 59_390
    assert split.item_text is not None and len(split.item_text) == 4_385


@pytest.mark.data
def test_real_gsasrec_counts(shared_data: Path):
    split = read_gsasrec(shared_data / "ml-1m")
    assert (split.n_users, split.n_items) == (6_040, 3_416)
    assert len(split.valid_target) == 512
    recovered = sum(len(t) != len(h) for t, h in zip(split.test_history, split.train, strict=True))
    assert recovered == 512  # every validation user's full history is rebuilt
    assert split.test_exact is not None and len(split.test_exact) == 512


@pytest.mark.data
def test_real_obd(shared_data: Path):
    random_log = read_obd(shared_data / "obd", "random")
    bts_log = read_obd(shared_data / "obd", "bts")
    for log in (random_log, bts_log):
        assert log.n_rounds == 10_000 and log.n_actions == 34 and log.len_list == 3
        assert set(np.unique(log.position)) == {0, 1, 2}
        assert log.context.shape[0] == 10_000 and log.action_context.shape == (34, 4)
    assert np.allclose(random_log.pscore, 1 / 34)  # uniform random over 34 items
    assert bts_log.ctr() > random_log.ctr()


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "opts"), [("ml-100k", {"limit": 5000}), ("amazon-scientific", {}), ("obd", {})]
)
def test_real_bundles_reference_their_catalog(shared_data: Path, name: str, opts: dict):
    bundle = load_dataset(name, shared_data / name, **opts)
    catalog = {p.item_id for p in bundle.products}
    assert bundle.events
    assert all(set(event_item_ids(e)) <= catalog for e in bundle.events)


@pytest.mark.data
def test_real_retrotech_frames(shared_data: Path):
    products = read_retrotech_products(shared_data / "retrotech")
    assert len(products) == 48_194 - 2_038 and products["upc"].is_unique
    sessions = read_retrotech_sessions(shared_data / "retrotech", queries=["nook"])
    assert len(sessions) == 150_000
    assert sessions.groupby("sess_id").ngroups == 5_000
    assert sessions["rank"].min() == 0 and sessions["clicked_doc_id"].str.len().ge(12).all()  # zero-padded


@pytest.mark.data
@pytest.mark.slow
def test_real_retrotech_sample(shared_data: Path):
    bundle = load_dataset("retrotech", shared_data / "retrotech", queries=["nook"], max_sessions=300)
    assert len(bundle.products) == 48_194 - 2_038  # duplicates by UPC collapsed
    counts = bundle.event_counts()
    assert counts["search"] == 300 and counts["impression"] == 300
    catalog = {p.item_id for p in bundle.products}
    assert all(set(event_item_ids(e)) <= catalog for e in bundle.events)


@pytest.mark.data
@pytest.mark.slow
def test_real_every_dataset_loads(shared_data: Path):
    for name in DATASET_NAMES:
        opts = {"max_sessions": 5000} if name == "retrotech" else {}
        bundle = load_dataset(name, shared_data / name, **opts)
        assert bundle.products, name


def test_unisrec_malformed_line_names_file_and_line(unisrec_dir: Path):
    with (unisrec_dir / "X.valid.inter").open("a", encoding="utf-8") as handle:
        handle.write("7\t1 2\n")
    with pytest.raises(ValueError, match=r"X\.valid\.inter:4"):
        read_unisrec(unisrec_dir, "X")


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(1, 50), min_size=0, max_size=8), min_size=1, max_size=12))
def test_read_sequences_property(tmp_path_factory, sequences):
    path = tmp_path_factory.mktemp("seq") / "s.txt"
    path.write_text(
        "".join(f"u{k} {' '.join(map(str, s))}\n" for k, s in enumerate(sequences)), encoding="utf-8"
    )
    split = read_sequences(path)
    kept = [s for s in sequences if len(s) >= 3]
    assert split.n_users == len(kept)
    for seq, train, vh, vt, th, tt in zip(
        kept,
        split.train,
        split.valid_history,
        split.valid_target,
        split.test_history,
        split.test_target,
        strict=True,
    ):
        assert [*th, tt] == seq  # the test case sees everything but the last item
        assert [*vh, vt] == th and train == vh  # validation holds out one more
    split.validate()
