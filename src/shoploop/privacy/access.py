"""A shopper's right of access (GDPR art. 15) and to data portability (art. 20): everything
shoploop holds that names one shopper, gathered into one JSON-ready document.

What names a shopper, and so goes in:
- their events in the log (searches, impressions served to them, clicks, carts, purchases,
  ratings), as stored — under the pseudonym when the shop pseudonymises ids;
- whether they were flagged as a bot, and why;
- quarantined input rows that name them (rejected events are kept verbatim for repair);
- the online profile the engine keeps in memory (recent items and queries, category and
  brand affinities, purchases, dislikes, impression fatigue);
- the search queries for which they count as one of the distinct shoppers autocomplete
  requires before suggesting a query;
- their A/B exposures (which variant of which experiment they were shown, and when).

What does not: item and query counters (clicks per product, popularity), which are aggregates
over many shoppers and keep no shopper id, and trained models, which are fitted from the log
and hold no per-shopper records. The document says so, so the person reading it knows.

The erasure that matches this list is `Engine.delete_user`; the two are tested together so a
store that one reaches and the other forgets shows up as a failing test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from shoploop.domain.events import BaseEvent, event_to_dict
from shoploop.evaluation.ab import ExperimentStore, Exposure
from shoploop.feedback.online import OnlineState, UserProfile
from shoploop.retrieval.suggest import QuerySuggester
from shoploop.store.home import Stores
from shoploop.store.protocols import QuarantinedRow

NOT_INCLUDED = (
    "Counts per product and per query are kept only as totals over all shoppers and name nobody; "
    "trained models are fitted from the events above and hold no records of individual shoppers."
)


def quarantined_rows_naming(rows: Iterable[QuarantinedRow], *user_ids: str) -> list[QuarantinedRow]:
    """Rejected event rows whose `user_id` is one of `user_ids` (the id as sent and as stored)."""
    wanted = {u for u in user_ids if u}
    return [r for r in rows if r.kind == "event" and str(r.raw.get("user_id", "")) in wanted]


def profile_to_dict(profile: UserProfile) -> dict[str, Any]:
    return {
        "recent_items": list(profile.recent_items),
        "recent_queries": list(profile.recent_queries),
        "category_affinity": dict(profile.category_affinity),
        "brand_affinity": dict(profile.brand_affinity),
        "purchased": sorted(profile.purchased),
        "disliked": sorted(profile.disliked),
        "impression_fatigue": dict(profile.fatigue),
    }


def shopper_document(
    *,
    user_id: str,
    stored_as: str,
    exported_at: datetime,
    events: Iterable[BaseEvent],
    flagged_reason: str | None,
    quarantined: Iterable[QuarantinedRow],
    profile: UserProfile | None,
    autocomplete_queries: Iterable[str],
    experiment_exposures: Iterable[Exposure] | None,
) -> dict[str, Any]:
    """The access document; every value is JSON-serialisable.

    `profile` None means the engine holds no online state for them. `experiment_exposures`
    None means the caller has no experiment store to ask (a library
    user without the API's experiments); the document then says the section is unknown
    rather than claiming there are none.
    """
    event_rows = [event_to_dict(e) for e in events]
    counts: dict[str, int] = {}
    for row in event_rows:
        counts[row["type"]] = counts.get(row["type"], 0) + 1
    return {
        "user_id": user_id,
        "stored_as": stored_as,
        "exported_at": exported_at.isoformat(),
        "events": event_rows,
        "event_counts": dict(sorted(counts.items())),
        "flagged_as_bot": flagged_reason,
        "quarantined_rows": [
            {
                "id": r.id,
                "source": r.source,
                "row_number": r.row_number,
                "reason": r.reason,
                "raw": dict(r.raw),
                "quarantined_at": r.quarantined_at.isoformat(),
            }
            for r in quarantined
        ],
        "online_profile": profile_to_dict(profile) if profile is not None else None,
        "autocomplete_queries": list(autocomplete_queries),
        "experiment_exposures": (
            [{**asdict(x), "at": x.at.isoformat()} for x in experiment_exposures]
            if experiment_exposures is not None
            else None
        ),
        "not_included": NOT_INCLUDED,
    }


def shopper_document_from_stores(
    stores: Stores,
    user_id: str,
    *,
    stored_as: str,
    now: datetime,
    experiments: ExperimentStore | None = None,
    online: OnlineState | None = None,
    suggester: QuerySuggester | None = None,
) -> dict[str, Any]:
    """The access document for `stored_as`, read from the stores.

    A running engine passes its own `online` state and `suggester`. Without them
    (`shoploop privacy export`, no server) they are rebuilt: the server's in-memory profile and
    autocomplete counts derive from the shopper's events alone, so replaying just those events
    into a fresh `OnlineState` and `QuerySuggester` gives what a server would hold about them
    (decayed to `now`).
    """
    events = list(stores.events.scan(user_id=stored_as))
    if online is None or suggester is None:
        online = OnlineState(lookup=stores.catalog.get)
        suggester = QuerySuggester(clock=now.timestamp)
        for event in events:
            online.update(event)
            suggester.observe(event)
    return shopper_document(
        user_id=user_id,
        stored_as=stored_as,
        exported_at=now,
        events=events,
        flagged_reason=stores.events.flagged_users().get(stored_as),
        quarantined=quarantined_rows_naming(stores.quarantine.list(kind="event"), stored_as, user_id),
        profile=online.profile(stored_as, now=now) if online.known_user(stored_as) else None,
        autocomplete_queries=suggester.queries_of(stored_as),
        experiment_exposures=experiments.user_exposures(stored_as) if experiments is not None else None,
    )
