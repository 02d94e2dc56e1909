"""Retention policy (validation, the file) and `apply_retention` on memory and SQLite stores."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.domain import EVENT_TYPES, PurchaseEvent, SearchEvent, ViewEvent
from shoploop.domain.events import Event
from shoploop.privacy.retention import (
    MAX_DAYS,
    POLICY_FILENAME,
    RetentionPolicy,
    RetentionPolicyError,
    apply_retention,
    load_policy,
    parse_policy,
    policy_text,
    save_policy,
)
from shoploop.store.home import Stores
from shoploop.store.memory import MemoryArtifactStore, MemoryCatalogStore, MemoryEventLog, MemoryQuarantine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


# ------------------------------------------------------------------------------ the policy


def test_policy_holds_checked_read_only_values():
    overrides = {"search": 90}
    policy = RetentionPolicy(events_days=365, quarantine_days=30.5, per_type=overrides)
    overrides["search"] = 1  # the caller's dict is copied, not kept
    assert policy.days_for("search") == 90.0
    assert policy.days_for("view") == 365.0
    assert policy.quarantine_days == 30.5
    with pytest.raises(TypeError):
        policy.per_type["view"] = 3  # type: ignore[index]
    assert policy == RetentionPolicy(365.0, 30.5, {"search": 90.0})
    assert not policy.keeps_everything and RetentionPolicy(None, None).keeps_everything


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "90", MAX_DAYS + 1])
@pytest.mark.parametrize("name", ["events_days", "quarantine_days"])
def test_bad_days_are_refused_naming_the_field(name, bad):
    settings: dict[str, object] = {"events_days": None, "quarantine_days": None, name: bad}
    with pytest.raises(RetentionPolicyError, match=f"^{name}: ") as caught:
        RetentionPolicy(**settings)  # type: ignore[arg-type]
    assert caught.value.field == name


@pytest.mark.parametrize(
    ("per_type", "field", "problem"),
    [
        ({"nosuchtype": 5}, "per_type.nosuchtype", "unknown event type"),
        ({"search": None}, "per_type.search", "number of days"),
        ({"search": -3}, "per_type.search", "> 0"),
        (["search"], "per_type", "must map"),
    ],
)
def test_bad_per_type_entries_name_the_type(per_type, field, problem):
    with pytest.raises(RetentionPolicyError) as caught:
        RetentionPolicy(365, None, per_type)
    assert caught.value.field == field and problem in str(caught.value)


def test_the_file_refuses_unknown_settings_and_bad_json():
    with pytest.raises(RetentionPolicyError, match=r"^event_days: unknown setting"):
        parse_policy('{"event_days": 30}')  # a typo must not silently keep data forever
    with pytest.raises(RetentionPolicyError, match=rf"^{POLICY_FILENAME}: not valid JSON"):
        parse_policy("{events_days: 30")
    with pytest.raises(RetentionPolicyError, match=r"^policy: "):
        parse_policy("[30]")
    assert parse_policy("{}") == RetentionPolicy(None, None)


def test_save_and_load_round_trip_atomically(tmp_path: Path):
    assert load_policy(tmp_path) is None  # no file: no policy, everything kept
    policy = RetentionPolicy(365, 30, {"search": 90, "impression": 400.5})
    path = save_policy(tmp_path, policy)
    assert path == tmp_path / POLICY_FILENAME
    assert json.loads(path.read_text()) == {
        "events_days": 365,
        "quarantine_days": 30,
        "per_type": {"impression": 400.5, "search": 90},
    }
    assert load_policy(tmp_path) == policy
    assert sorted(p.name for p in tmp_path.iterdir()) == [POLICY_FILENAME]  # no temp file left


def test_cutoffs_per_type_and_beyond_the_calendar():
    policy = RetentionPolicy(365, 7, {"search": 90})
    cutoffs = policy.event_cutoffs(NOW)
    assert set(cutoffs) == set(EVENT_TYPES)
    assert cutoffs["search"] == days_ago(90) and cutoffs["purchase"] == days_ago(365)
    assert policy.quarantine_cutoff(NOW) == days_ago(7)
    assert RetentionPolicy(None, None, {"view": 1}).event_cutoffs(NOW)["click"] is None
    # A million days before 2026 is before year 1: clamped, nothing can be older.
    assert RetentionPolicy(MAX_DAYS, None).event_cutoffs(NOW)["view"] == datetime.min.replace(tzinfo=UTC)


def test_warns_when_impressions_go_before_the_interactions_that_point_at_them():
    (warning,) = RetentionPolicy(365, None, {"impression": 30}).warnings()
    assert "impressions are kept 30 days" in warning and "click, add_to_cart, purchase" in warning
    assert RetentionPolicy(None, None, {"impression": 30, "click": 30}).warnings() != []  # carts kept forever
    assert RetentionPolicy(365, None, {"search": 30}).warnings() == []
    assert RetentionPolicy(30, None, {"impression": 60}).warnings() == []


# Property tests: whatever a hand-edited file holds, the parser either returns a valid policy
# that survives a save/load round trip, or refuses it with an error rooted at a named field.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 2 * MAX_DAYS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
_type_names = st.one_of(st.sampled_from(EVENT_TYPES), st.text(max_size=8))
_raw_policy = st.dictionaries(
    st.one_of(st.sampled_from(["events_days", "quarantine_days", "per_type"]), st.text(max_size=8)),
    st.one_of(_values, st.dictionaries(_type_names, _values, max_size=4)),
    max_size=4,
)


@given(_raw_policy)
def test_parser_accepts_exactly_valid_policies(raw: dict):
    try:
        policy = RetentionPolicy.from_dict(raw)
    except RetentionPolicyError as err:
        # The field is a key the data holds (or one of its per_type keys), never a guess.
        per_type = raw.get("per_type")
        type_fields = {f"per_type.{k}" for k in per_type} if isinstance(per_type, dict) else set()
        assert err.field in raw or err.field in type_fields
        assert str(err) == f"{err.field}: {err.problem}"
        return
    days = [policy.events_days, policy.quarantine_days, *policy.per_type.values()]
    assert all(d is None or (0 < d <= MAX_DAYS) for d in days)
    assert set(policy.per_type) <= set(EVENT_TYPES)
    assert parse_policy(policy_text(policy)) == policy


_days = st.one_of(st.integers(1, MAX_DAYS), st.floats(min_value=1e-6, max_value=MAX_DAYS, allow_nan=False))


@given(
    st.one_of(st.none(), _days),
    st.one_of(st.none(), _days),
    st.dictionaries(st.sampled_from(EVENT_TYPES), _days, max_size=len(EVENT_TYPES)),
)
def test_valid_policies_round_trip_and_overrides_win(events_days, quarantine_days, per_type):
    policy = RetentionPolicy(events_days, quarantine_days, per_type)
    assert parse_policy(policy_text(policy)) == policy
    for event_type in EVENT_TYPES:
        expected = per_type.get(event_type, events_days)
        assert policy.days_for(event_type) == (None if expected is None else float(expected))


# ----------------------------------------------------------------------- applying it


class Clock:
    """The quarantine's clock, set by the test to quarantine rows at known times."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def shop(request, tmp_path: Path) -> Iterator[tuple[Stores, Clock]]:
    clock = Clock()
    if request.param == "memory":
        stores = Stores(
            catalog=MemoryCatalogStore(),
            events=MemoryEventLog(),
            quarantine=MemoryQuarantine(clock=clock),
            registry=MemoryArtifactStore(tmp_path / "artifacts"),
            home=None,
        )
    else:
        from shoploop.store.sqlite import (
            SqliteArtifactStore,
            SqliteCatalogStore,
            SqliteDatabase,
            SqliteEventLog,
            SqliteQuarantine,
        )

        db = SqliteDatabase(tmp_path / "shoploop.sqlite")
        stores = Stores(
            catalog=SqliteCatalogStore(db),
            events=SqliteEventLog(db),
            quarantine=SqliteQuarantine(db, clock=clock),
            registry=SqliteArtifactStore(db, tmp_path / "artifacts"),
            home=tmp_path,
        )
    with stores:
        yield stores, clock


def _search(eid: str, when: datetime, user: str = "u1") -> SearchEvent:
    return SearchEvent(event_id=eid, user_id=user, timestamp=when, query="drill")


def _view(eid: str, when: datetime, user: str = "u1") -> ViewEvent:
    return ViewEvent(event_id=eid, user_id=user, timestamp=when, item_id="i1")


def _purchase(eid: str, when: datetime) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=eid, user_id="u2", timestamp=when, items=[{"item_id": "i1", "quantity": 1, "price": 3.0}]
    )


HISTORY: list[Event] = [
    _search("s-100d", days_ago(100)),
    _search("s-90d", days_ago(90)),  # exactly at the search cutoff: kept
    _search("s-80d", days_ago(80)),
    _view("v-400d", days_ago(400), user="bot"),
    _view("v-365d", days_ago(365)),  # exactly at the default cutoff: kept
    _view("v-300d", days_ago(300)),
    _purchase("p-400d", days_ago(400)),
    _purchase("p-1d", days_ago(1)),
]
POLICY = RetentionPolicy(events_days=365, quarantine_days=30, per_type={"search": 90})


def _fill(stores: Stores, clock: Clock) -> None:
    stores.events.append(HISTORY)
    stores.events.flag_users(["bot"], "too fast")
    clock.now = days_ago(45)
    stores.quarantine.add([(1, "price: must be > 0", {"user_id": "u1"})], source="old.csv", kind="event")
    clock.now = days_ago(30)  # exactly at the quarantine cutoff: kept
    stores.quarantine.add([(2, "timestamp: naive", {"user_id": "u2"})], source="mid.csv", kind="event")
    clock.now = days_ago(2)
    stores.quarantine.add([(3, "title: missing", {})], source="new.csv", kind="catalog")


def _rows(report) -> dict[str, int]:
    return {line.target: line.rows for line in report.events if line.rows}


def test_dry_run_counts_and_erases_nothing(shop):
    stores, clock = shop
    _fill(stores, clock)
    report = apply_retention(stores, POLICY, now=NOW, dry_run=True)
    assert report.dry_run and report.now == NOW
    assert _rows(report) == {"search": 1, "view": 1, "purchase": 1}
    assert report.quarantine.rows == 1
    assert report.flags.rows == 1  # "bot" has one event, and it is past the limit
    assert report.total_rows == 5
    assert len(stores.events) == len(HISTORY)
    assert stores.events.flagged_users() == {"bot": "too fast"}
    assert len(stores.quarantine.list()) == 3
    search = next(line for line in report.events if line.target == "search")
    assert search.days == 90 and search.cutoff == days_ago(90)
    assert report.quarantine.cutoff == days_ago(30)


def test_apply_erases_what_outlived_the_policy_and_only_that(shop):
    stores, clock = shop
    _fill(stores, clock)
    calls: list[tuple[int, int]] = []
    report = apply_retention(stores, POLICY, now=NOW, progress=lambda done, of: calls.append((done, of)))
    assert not report.dry_run
    assert _rows(report) == {"search": 1, "view": 1, "purchase": 1} and report.quarantine.rows == 1
    remaining = sorted(e.event_id for e in stores.events.scan())
    assert remaining == ["p-1d", "s-80d", "s-90d", "v-300d", "v-365d"]
    assert [r.source for r in stores.quarantine.list()] == ["mid.csv", "new.csv"]
    # the flag names a shopper, and none of their events is left for it to keep out of training
    assert stores.events.flagged_users() == {} and report.flags.rows == 1
    # progress counts up to the total it announced
    assert calls and calls[-1] == (4, 4)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    report_dict = report.to_dict()
    assert report_dict["total_rows"] == 5 and report_dict["events_rows"] == 3
    assert report_dict["bot_flags"]["rows"] == 1


def test_a_flag_stays_while_the_shopper_has_events_left(shop):
    stores, clock = shop
    _fill(stores, clock)
    stores.events.append([_view("v-bot-new", days_ago(3), user="bot")])
    stores.events.flag_users(["ghost"], "flagged before its events were erased")
    assert apply_retention(stores, POLICY, now=NOW, dry_run=True).flags.rows == 1  # the ghost
    report = apply_retention(stores, POLICY, now=NOW)
    assert stores.events.flagged_users() == {"bot": "too fast"} and report.flags.rows == 1
    assert [e.event_id for e in stores.events.scan(user_id="bot")] == ["v-bot-new"]


def test_applying_twice_erases_nothing_the_second_time(shop):
    stores, clock = shop
    _fill(stores, clock)
    apply_retention(stores, POLICY, now=NOW)
    again = apply_retention(stores, POLICY, now=NOW)
    assert again.total_rows == 0
    assert len(stores.events) == len(HISTORY) - 3


def test_per_type_override_alone_leaves_other_types_forever(shop):
    stores, clock = shop
    _fill(stores, clock)
    policy = RetentionPolicy(events_days=None, quarantine_days=None, per_type={"view": 350})
    report = apply_retention(stores, policy, now=NOW)
    assert _rows(report) == {"view": 2}
    assert report.quarantine.rows == 0 and report.quarantine.cutoff is None
    by_type = {line.target: line for line in report.events}
    assert by_type["search"].days is None and by_type["search"].cutoff is None
    assert sorted(e.event_id for e in stores.events.scan(types=["view"])) == ["v-300d"]
    assert len(stores.quarantine.list()) == 3


def test_override_can_keep_a_type_longer_than_the_default(shop):
    stores, clock = shop
    _fill(stores, clock)
    report = apply_retention(stores, RetentionPolicy(30, None, {"purchase": 3650}), now=NOW)
    assert _rows(report) == {"search": 3, "view": 3}
    assert sorted(e.event_id for e in stores.events.scan()) == ["p-1d", "p-400d"]


def test_now_must_be_timezone_aware(shop):
    stores, _ = shop
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_retention(stores, POLICY, now=NOW.replace(tzinfo=None))


def test_ab_exposures_follow_the_impressions_limit(shop):
    from shoploop.evaluation.ab import Exposure, MemoryExperimentStore

    stores, clock = shop
    _fill(stores, clock)
    experiments = MemoryExperimentStore()
    experiments.record_exposures(
        [
            Exposure("home-v2", "u1", "control", days_ago(400)),
            Exposure("home-v2", "u2", "treatment", days_ago(365)),  # exactly at the cutoff: kept
            Exposure("search-v3", "u1", "control", days_ago(10)),
        ]
    )
    preview = apply_retention(stores, POLICY, now=NOW, dry_run=True, experiments=experiments)
    assert preview.exposures is not None and preview.exposures.rows == 1
    assert preview.exposures.cutoff == days_ago(365) and preview.exposures.days == 365
    assert preview.total_rows == 6 and experiments.count_exposures_before(days_ago(365)) == 1  # + the flag
    report = apply_retention(stores, POLICY, now=NOW, experiments=experiments)
    assert report.exposures.rows == 1 and report.to_dict()["experiment_exposures"]["rows"] == 1
    assert [e.user_id for e in experiments.exposures("home-v2")] == ["u2"]
    assert len(experiments.exposures("search-v3")) == 1
    assert apply_retention(stores, POLICY, now=NOW).exposures is None  # not asked: not reported


def test_import_reports_go_with_the_quarantine_limit(shop):
    import os

    from shoploop.data.report import REPORT_STAMP

    stores, clock = shop
    _fill(stores, clock)
    if stores.home is None:  # an in-memory shop keeps no report files
        assert apply_retention(stores, POLICY, now=NOW).reports is None
        return
    reports = stores.home / "reports"
    reports.mkdir()
    old = reports / f"{days_ago(40).strftime(REPORT_STAMP)}-events-old.json"
    edge = reports / f"{days_ago(30).strftime(REPORT_STAMP)}-events-edge.json"  # at the cutoff: kept
    unstamped = reports / "hand-copied.json"  # dated by its file time instead
    for path in (old, edge, unstamped):
        path.write_text('{"flagged_users": ["bot"]}')
    stamp = days_ago(31).timestamp()
    os.utime(unstamped, (stamp, stamp))
    preview = apply_retention(stores, POLICY, now=NOW, dry_run=True)
    assert preview.reports is not None and preview.reports.rows == 2 and old.exists()
    assert preview.reports.cutoff == days_ago(30) and preview.to_dict()["import_reports"]["rows"] == 2
    report = apply_retention(stores, POLICY, now=NOW)
    assert report.reports.rows == 2 and report.total_rows == 4 + 2 + 1  # + the bot flag
    assert sorted(p.name for p in reports.iterdir()) == [edge.name]
