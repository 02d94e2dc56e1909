"""EventFollower / OwnWrites over an in-memory event log."""

from __future__ import annotations

from datetime import UTC, datetime

from shoploop.domain import ViewEvent
from shoploop.engine.event_follower import EventFollower, OwnWrites
from shoploop.store.memory import MemoryEventLog

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def view(eid: str, user: str = "u") -> ViewEvent:
    return ViewEvent(event_id=eid, user_id=user, item_id="i", timestamp=T0)


def test_own_batches_merge_into_one_range_and_are_forgotten_once_passed():
    raw = MemoryEventLog()
    own = OwnWrites(raw)
    own.append([view("a"), view("b")])
    own.append([view("c")])
    assert own.ranges == [(1, 3)]  # consecutive batches of ours: one range
    raw.append([view("x")])  # another writer
    own.append([view("d")])
    assert own.ranges == [(1, 3), (5, 5)] and own.ours(2) and not own.ours(4)
    own.forget_up_to(2)
    assert own.ranges == [(3, 3), (5, 5)]
    own.forget_up_to(5)
    assert own.ranges == []
    assert len(own) == 5  # everything else is the wrapped log's


def test_the_follower_applies_only_other_writers_events_in_append_order_skipping_bots():
    raw = MemoryEventLog()
    own = OwnWrites(raw)
    seen: list[str] = []
    follower = EventFollower(own, lambda e: seen.append(e.event_id), batch=2)
    own.append([view("mine-1")])
    raw.append([view("theirs-1"), view("bot-1", "bot"), view("theirs-2")])
    raw.flag_users(["bot"], "too fast")
    own.append([view("mine-2")])
    raw.append([view("theirs-3")])
    assert follower.follow() == 3  # read in batches of 2
    assert seen == ["theirs-1", "theirs-2", "theirs-3"]
    assert follower.follow() == 0 and own.ranges == []


def test_skip_to_end_starts_after_what_a_replay_has_read():
    raw = MemoryEventLog()
    raw.append([view("old-1"), view("old-2")])
    own = OwnWrites(raw)
    seen: list[str] = []
    follower = EventFollower(own, lambda e: seen.append(e.event_id))
    follower.skip_to_end()
    raw.append([view("new")])
    assert follower.follow() == 1 and seen == ["new"]
