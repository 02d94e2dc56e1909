"""EventLog contract, run on every implementation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store_factories import cart, click, impression, minutes, purchase, view

from shoploop.domain import ImpressionEvent
from shoploop.store.protocols import AppendResult, EventLog


def ids(events) -> list[str]:
    return [e.event_id for e in events]


def test_is_an_event_log(events):
    assert isinstance(events, EventLog)


def test_append_reports_inserted_and_round_trips(events, t0):
    batch = [
        view("e1", "u1", t0),
        click("e2", "u1", minutes(t0, 1), request_id="r1"),
        purchase("e3", "u2", t0),
    ]
    result = events.append(batch)
    assert result == AppendResult(inserted=["e1", "e2", "e3"], duplicates=[])
    assert len(events) == 3
    stored = list(events.scan())
    assert sorted(ids(stored)) == ["e1", "e2", "e3"]
    assert {e.event_id: e for e in stored} == {e.event_id: e for e in batch}


def test_resending_a_batch_inserts_nothing_and_reports_duplicates(events, t0):
    batch = [view("e1", "u1", t0), view("e2", "u1", t0)]
    events.append(batch)
    again = events.append(batch)
    assert again.inserted == [] and again.duplicates == ["e1", "e2"]
    assert len(events) == 2
    mixed = events.append([view("e2", "u1", t0), view("e3", "u1", t0)])
    assert mixed == AppendResult(inserted=["e3"], duplicates=["e2"])
    assert len(events) == 3


def test_same_id_twice_in_one_batch_is_stored_once(events, t0):
    first = view("dup", "u1", t0)
    second = view("dup", "u2", minutes(t0, 5))
    result = events.append([first, second, view("x", "u1", t0)])
    assert result == AppendResult(inserted=["dup", "x"], duplicates=["dup"])
    assert len(events) == 2
    # the first occurrence wins
    assert [e.user_id for e in events.scan() if e.event_id == "dup"] == ["u1"]


def test_empty_batch(events):
    assert events.append([]) == AppendResult()
    assert len(events) == 0


def test_scan_orders_by_time_then_insertion(events, t0):
    events.append([view("late", "u", minutes(t0, 10)), view("a", "u", t0), view("b", "u", t0)])
    events.append([view("early", "u", minutes(t0, -1)), view("c", "u", t0)])
    assert ids(events.scan()) == ["early", "a", "b", "c", "late"]


def test_scan_time_window_is_since_inclusive_until_exclusive(events, t0):
    events.append([view(f"e{i}", "u", minutes(t0, i)) for i in range(5)])
    assert ids(events.scan(since=minutes(t0, 1), until=minutes(t0, 3))) == ["e1", "e2"]
    assert ids(events.scan(since=minutes(t0, 3))) == ["e3", "e4"]
    assert ids(events.scan(until=minutes(t0, 1))) == ["e0"]
    # one microsecond before e2 is still before it
    assert ids(events.scan(since=minutes(t0, 2) - timedelta(microseconds=1), until=minutes(t0, 2))) == []


def test_scan_with_other_timezone_compares_instants(events, t0):
    from datetime import timezone

    events.append([view("e0", "u", t0), view("e1", "u", minutes(t0, 60))])
    plus_two = timezone(timedelta(hours=2))
    assert ids(events.scan(since=minutes(t0, 30).astimezone(plus_two))) == ["e1"]


def test_scan_rejects_naive_datetimes(events, t0):
    with pytest.raises(ValueError, match="aware"):
        list(events.scan(since=t0.replace(tzinfo=None)))


def test_scan_filters_user_and_types(events, t0):
    events.append(
        [
            view("v1", "u1", t0),
            click("c1", "u1", minutes(t0, 1)),
            cart("a1", "u2", minutes(t0, 2)),
            purchase("p1", "u1", minutes(t0, 3)),
            impression("i1", "u2", minutes(t0, 4), "r1"),
        ]
    )
    assert ids(events.scan(user_id="u1")) == ["v1", "c1", "p1"]
    assert ids(events.scan(types=["click", "purchase"])) == ["c1", "p1"]
    assert ids(events.scan(types="add_to_cart")) == ["a1"]
    assert ids(events.scan(types=[])) == []
    assert ids(events.scan(user_id="u2", types=["impression"], since=minutes(t0, 4))) == ["i1"]
    assert events.count() == 5
    assert events.count(types=["click", "view"]) == 2


def test_flags_and_exclude_flagged(events, t0):
    events.append([view("a", "bot", t0), view("b", "human", minutes(t0, 1))])
    assert events.flag_users(["bot", "bot2"], "too many clicks") == 2
    assert events.flag_users(["bot"], "again") == 0
    assert events.flagged_users() == {"bot": "too many clicks", "bot2": "too many clicks"}
    assert ids(events.scan(exclude_flagged=True)) == ["b"]
    assert ids(events.scan()) == ["a", "b"]  # the log keeps everything
    assert ids(events.scan(exclude_flagged=True, user_id="bot")) == []
    assert events.unflag_users(["bot", "bot", "never-flagged"]) == 1
    assert events.flagged_users() == {"bot2": "too many clicks"}
    assert ids(events.scan(exclude_flagged=True)) == ["a", "b"]


def test_get_impression(events, t0):
    imp = impression("i1", "u", t0, "req-1", items=("x", "y", "z"))
    events.append([imp, click("c1", "u", minutes(t0, 1), item="y", request_id="req-1")])
    got = events.get_impression("req-1")
    assert isinstance(got, ImpressionEvent)
    assert got == imp
    assert [s.item_id for s in got.items] == ["x", "y", "z"]
    assert got.items[0].propensity == 0.5
    assert events.get_impression("missing") is None


def test_delete_user_removes_events_and_flags(events, t0):
    events.append(
        [view("a", "u1", t0), impression("i", "u1", t0, "r1"), view("b", "u2", t0), click("c", "u1", t0)]
    )
    events.flag_users(["u1"], "bot")
    assert events.delete_user("u1") == 3
    assert ids(events.scan()) == ["b"]
    assert events.get_impression("r1") is None
    assert events.flagged_users() == {}
    assert events.delete_user("u1") == 0
    assert len(events) == 1
    # erased ids may be written again (e.g. re-import after a mistaken deletion)
    assert events.append([view("a", "u1", t0)]).inserted == ["a"]


def test_append_is_all_or_nothing_when_an_event_is_invalid(events, t0):
    from shoploop.domain import ViewEvent

    # model_construct skips validation, like a record built by buggy code: its naive
    # timestamp cannot be stored, and the whole batch must be refused.
    broken = ViewEvent.model_construct(
        event_id="bad", user_id="u", item_id="i", timestamp=t0.replace(tzinfo=None), session_id=None
    )
    with pytest.raises(ValueError, match="aware"):
        events.append([view("ok", "u", t0), broken])
    assert len(events) == 0
    assert events.append([view("ok", "u", t0)]).inserted == ["ok"]


def test_known_id_after_new_ones_is_reported_as_duplicate(events, t0):
    events.append([view("old", "u", t0)])
    result = events.append([view("new1", "u", t0), view("old", "u", t0), view("new2", "u", t0)])
    assert result == AppendResult(inserted=["new1", "new2"], duplicates=["old"])
    assert sorted(ids(events.scan())) == ["new1", "new2", "old"]


def test_scan_is_a_snapshot_taken_at_the_call(events, t0):
    events.append([view("a", "u", t0), view("b", "u", minutes(t0, 1))])
    iterator = events.scan()
    events.append([view("c", "u", minutes(t0, 2))])
    first = next(iterator)
    events.append([view("d", "u", minutes(t0, 3))])  # appending while iterating is allowed
    assert [first.event_id, *ids(iterator)] == ["a", "b"]
    assert ids(events.scan()) == ["a", "b", "c", "d"]


def test_tail_follows_appends_in_order_with_their_seqs(events, t0):
    assert events.last_seq() == 0 and events.tail(0) == []
    # appended out of time order: tail is by append order, scan by time
    first = events.append([view("a", "u1", minutes(t0, 5)), view("b", "u2", t0)])
    again = events.append([view("a", "u1", t0)])  # a re-send writes nothing
    second = events.append([view("c", "u1", minutes(t0, 1))])
    assert again.seqs is None
    assert first.seqs is not None and second.seqs is not None
    assert first.seqs[1] - first.seqs[0] == 1 and second.seqs[0] == second.seqs[1] > first.seqs[1]
    tailed = events.tail(0)
    assert [e.event_id for _, e in tailed] == ["a", "b", "c"]
    assert [s for s, _ in tailed] == [first.seqs[0], first.seqs[1], second.seqs[0]]
    assert events.last_seq() == second.seqs[1]
    assert [e.event_id for _, e in events.tail(first.seqs[0])] == ["b", "c"]
    assert [e.event_id for _, e in events.tail(0, limit=2)] == ["a", "b"]
    assert events.tail(events.last_seq()) == []


def test_tail_forgets_erased_users_and_their_seqs_are_never_reused(events, t0):
    events.append([view("a", "u1", t0), view("b", "gone", t0), view("c", "u1", t0)])
    events.delete_user("gone")
    assert [e.event_id for _, e in events.tail(0)] == ["a", "c"]
    newest = events.append([view("d", "gone2", t0)]).seqs
    follower_cursor = newest[1]
    events.delete_user("gone2")  # the newest event erased
    assert events.last_seq() == follower_cursor
    later = events.append([view("e", "u1", t0)]).seqs
    assert later[0] > follower_cursor  # a follower past "d" still sees "e"
    assert [e.event_id for _, e in events.tail(follower_cursor)] == ["e"]


# --------------------------------------------------------------------------- retention purge


def test_delete_before_is_exclusive_at_the_cutoff_like_scan_until(events, t0):
    one_us = timedelta(microseconds=1)
    events.append(
        [
            view("old", "u1", minutes(t0, -60)),
            view("just-before", "u2", t0 - one_us),
            view("at", "u1", t0),
            view("after", "u2", t0 + one_us),
        ]
    )
    assert ids(events.scan(until=t0)) == ["old", "just-before"]
    assert events.count_before(t0) == 2
    assert len(events) == 4  # counting erased nothing
    assert events.delete_before(t0) == 2
    assert ids(events.scan()) == ["at", "after"]
    assert events.count_before(t0) == 0
    assert events.delete_before(t0) == 0  # a second run finds nothing left
    assert len(events) == 2


def test_delete_before_compares_instants_across_timezones(events, t0):
    from datetime import timezone

    events.append([view("a", "u", t0), view("b", "u", minutes(t0, 90))])
    plus_two = timezone(timedelta(hours=2))
    # 13:00 UTC written as 15:00+02:00: "a" (12:00 UTC) is older, "b" (13:30 UTC) is not.
    assert events.delete_before(minutes(t0, 60).astimezone(plus_two)) == 1
    assert ids(events.scan()) == ["b"]


def test_delete_before_only_erases_the_given_types(events, t0):
    old, new = minutes(t0, -10), minutes(t0, 10)
    events.append(
        [
            view("v-old", "u1", old),
            click("c-old", "u1", old),
            cart("a-old", "u2", old),
            click("c-new", "u1", new),
            view("v-new", "u2", new),
        ]
    )
    assert events.count_before(t0, types=["click"]) == 1
    assert events.delete_before(t0, types="click") == 1  # a lone type name is one type
    assert ids(events.scan(types=["click"])) == ["c-new"]
    assert events.delete_before(t0, types=[]) == 0  # an empty filter matches nothing
    assert events.count_before(t0, types={"view", "add_to_cart"}) == 2
    assert events.delete_before(t0, types={"view", "add_to_cart"}) == 2
    assert ids(events.scan()) == ["c-new", "v-new"]


def test_delete_before_names_the_shoppers_who_lost_events(events, t0):
    events.append(
        [
            view("a", "u1", minutes(t0, -5)),
            view("b", "u2", minutes(t0, -4)),
            view("c", "u1", minutes(t0, -3)),
            view("d", "u3", minutes(t0, 5)),  # kept: after the cutoff
        ]
    )
    erased: set[str] = set()
    assert events.delete_before(t0, erased_users=erased) == 3
    assert erased == {"u1", "u2"}
    assert events.delete_before(t0, erased_users=erased) == 0 and erased == {"u1", "u2"}


def test_delete_before_never_reuses_seqs(events, t0):
    events.append([view("a", "u1", minutes(t0, -3)), view("b", "u1", minutes(t0, -2))])
    newest = events.append([view("c", "u2", minutes(t0, -1))]).seqs
    cursor = events.last_seq()
    assert cursor == newest[1]
    assert events.delete_before(t0) == 3  # the newest appends are erased too
    assert events.tail(0) == []
    assert events.last_seq() == cursor
    later = events.append([view("d", "u1", t0)]).seqs
    assert later[0] > cursor  # a follower past "c" still sees "d"
    assert [e.event_id for _, e in events.tail(cursor)] == ["d"]


def test_delete_before_leaves_flags_alone_and_forgets_erased_impressions(events, t0):
    events.append(
        [
            impression("i-old", "bot", minutes(t0, -5), "r-old"),
            click("c-old", "bot", minutes(t0, -4), request_id="r-old"),
            impression("i-new", "u1", minutes(t0, 5), "r-new"),
        ]
    )
    events.flag_users(["bot"], "too many clicks")
    assert events.delete_before(t0) == 2
    assert events.flagged_users() == {"bot": "too many clicks"}  # not event data: kept
    assert events.get_impression("r-old") is None
    assert events.get_impression("r-new").event_id == "i-new"
    # erased ids may be written again, as after delete_user (a re-import brings them back
    # until the next purge)
    assert events.append([view("c-old", "u1", minutes(t0, -4))]).inserted == ["c-old"]


def test_delete_before_reports_progress_and_refuses_naive_cutoffs(events, t0):
    events.append([view(f"e{i}", "u", minutes(t0, -i)) for i in range(1, 8)])
    with pytest.raises(ValueError, match="aware"):
        events.count_before(t0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="aware"):
        events.delete_before(t0.replace(tzinfo=None))
    assert len(events) == 7
    chunks: list[int] = []
    assert events.delete_before(minutes(t0, -1), progress=chunks.append) == 6
    assert sum(chunks) == 6 and all(n > 0 for n in chunks)
    assert events.delete_before(minutes(t0, -1), progress=chunks.append) == 0
    assert sum(chunks) == 6  # nothing erased, nothing reported
    assert ids(events.scan()) == ["e1"]


# --------------------------------------------------------------------------- purge record


def test_purge_record_starts_empty(events):
    assert events.last_purge_seq() == 0
    assert events.purged_since(0) == (0, set())


def test_purge_record_hands_out_the_users_noted_after_a_seq(events, t0):
    first = events.note_purged(["u1", "u2", "u1"], t0)  # a repeat within one call is noted once
    assert first == events.last_purge_seq() > 0
    assert events.purged_since(0) == (first, {"u1", "u2"})
    assert events.purged_since(first) == (first, set())  # a follower at the newest seq sees nothing
    second = events.note_purged(("u2", "u3"), minutes(t0, 1))  # noting a user twice is harmless
    assert second > first and events.last_purge_seq() == second
    assert events.purged_since(first) == (second, {"u2", "u3"})
    assert events.purged_since(0) == (second, {"u1", "u2", "u3"})
    assert events.note_purged([], minutes(t0, 2)) == second  # nothing to note: the seq stays
    assert events.purged_since(second + 100) == (second, set())  # ahead of the record: its newest seq


def test_purge_record_is_not_event_data(events, t0):
    events.append([view("a", "u1", t0)])
    last = events.last_seq()
    events.note_purged(["u1", "u9"], t0)
    assert len(events) == 1 and events.last_seq() == last and events.tail(last) == []
    assert events.flagged_users() == {}


def test_purge_record_forgets_ids_past_the_horizon_when_written(events, t0):
    from shoploop.store.protocols import PURGE_RECORD_HORIZON

    assert timedelta(hours=1) < PURGE_RECORD_HORIZON <= timedelta(days=7)
    events.note_purged(["old"], t0)
    events.note_purged(["mid"], t0 + PURGE_RECORD_HORIZON / 2)
    latest = events.last_purge_seq()
    # Reading prunes nothing: only writes do.
    assert events.purged_since(0) == (latest, {"old", "mid"})
    # Exactly at the horizon an entry stays (like the retention cutoffs, older goes, not as old).
    assert events.note_purged([], t0 + PURGE_RECORD_HORIZON) == latest
    assert events.purged_since(0) == (latest, {"old", "mid"})
    assert events.note_purged([], t0 + PURGE_RECORD_HORIZON + timedelta(microseconds=1)) == latest
    assert events.purged_since(0) == (latest, {"mid"})
    newest = events.note_purged(["new"], t0 + 2 * PURGE_RECORD_HORIZON)
    assert events.purged_since(0) == (newest, {"new"})  # "mid" is past the horizon now


def test_purge_seqs_are_never_reused_after_pruning(events, t0):
    from shoploop.store.protocols import PURGE_RECORD_HORIZON

    seq = events.note_purged(["u1", "u2"], t0)
    later = t0 + 3 * PURGE_RECORD_HORIZON
    assert events.note_purged([], later) == seq  # everything pruned ...
    assert events.purged_since(0) == (seq, set())
    assert events.last_purge_seq() == seq  # ... the seq stays where it was
    newer = events.note_purged(["u3"], later)
    assert newer > seq
    assert events.purged_since(seq) == (newer, {"u3"})  # a follower at `seq` sees the new entry


def test_purge_record_refuses_naive_times_and_writes_nothing(events, t0):
    with pytest.raises(ValueError, match="aware"):
        events.note_purged(["u1"], t0.replace(tzinfo=None))
    assert events.last_purge_seq() == 0 and events.purged_since(0) == (0, set())
