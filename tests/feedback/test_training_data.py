"""Joining impressions with interactions, point-in-time features and IPW weights."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from shoploop.domain import ClickEvent, ImpressionEvent, PurchaseEvent, PurchaseLine, ShownItem
from shoploop.domain.events import AddToCartEvent
from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.features import FEATURE_NAMES
from shoploop.feedback.training_data import featurize, ipw_weights, join_logs, training_set


def impression(rid, items, t, query="drill"):
    return ImpressionEvent(
        request_id=rid,
        surface="search",
        query=query,
        items=tuple(ShownItem(item_id=i, position=p, propensity=0.5) for p, i in enumerate(items, 1)),
        user_id="u",
        timestamp=t,
    )


def test_graded_labels_strongest_signal_wins(t0):
    events = [
        impression("r1", ["a", "b", "c"], t0),
        ClickEvent(user_id="u", item_id="b", request_id="r1", timestamp=t0 + timedelta(seconds=1)),
        AddToCartEvent(user_id="u", item_id="b", request_id="r1", timestamp=t0 + timedelta(seconds=2)),
        ClickEvent(user_id="u", item_id="c", request_id="r1", timestamp=t0 + timedelta(seconds=3)),
        PurchaseEvent(
            user_id="u",
            items=(PurchaseLine(item_id="c", price=3.0),),
            request_id="r1",
            timestamp=t0 + timedelta(seconds=4),
        ),
        ClickEvent(user_id="u", item_id="zzz", request_id="r1", timestamp=t0 + timedelta(seconds=5)),
        ClickEvent(user_id="u", item_id="a", request_id="unknown", timestamp=t0 + timedelta(seconds=6)),
        impression("r2", ["c", "a"], t0 + timedelta(seconds=7)),
    ]
    lists = join_logs(events)
    assert [lst.request_id for lst in lists] == ["r1", "r2"]
    assert lists[0].labels.tolist() == [0, 2, 3]  # none, cart, purchase
    assert lists[1].labels.tolist() == [0, 0]
    np.testing.assert_allclose(lists[0].propensities, 0.5)


def test_features_are_point_in_time(t0):
    # r2 is served after the click on r1: its query CTR feature for "b" must see that click,
    # while r1's own features must not.
    events = [
        impression("r1", ["a", "b"], t0),
        ClickEvent(user_id="u", item_id="b", request_id="r1", timestamp=t0 + timedelta(seconds=1)),
        impression("r2", ["a", "b"], t0 + timedelta(seconds=2)),
    ]
    lists = join_logs(events)
    feats = featurize(events, lists, products=lambda _: None, explain=None)
    col = FEATURE_NAMES.index("query_clicks_log")
    assert feats[0].X[1, col] == 0.0
    assert feats[1].X[1, col] > 0.0


def test_ipw_weights_are_inverse_examination_and_clipped():
    curve = ExaminationCurve.power_law(1.0, 10)
    w = ipw_weights(np.array([1, 0, 2, 1]), np.array([1, 2, 4, 30]), curve, max_weight=5.0)
    np.testing.assert_allclose(w, [1.0, 1.0, 4.0, 5.0])  # slot 30 uses slot 10's theta, clipped
    assert (ipw_weights(np.array([1]), np.array([9]), None, 5.0) == 1.0).all()


def test_training_set_keeps_only_lists_with_a_positive(t0):
    events = [
        impression("r1", ["a", "b"], t0),
        ClickEvent(user_id="u", item_id="b", request_id="r1", timestamp=t0 + timedelta(seconds=1)),
        impression("r2", ["a", "b"], t0 + timedelta(seconds=2)),
    ]
    feats = featurize(events, join_logs(events), products=lambda _: None, explain=None)
    ts = training_set(feats, ExaminationCurve.power_law(1.0, 10))
    assert ts.group.tolist() == [2]
    np.testing.assert_allclose(ts.weight, [1.0, 2.0])


def test_exploration_details_come_from_the_impression_context(t0):
    def impression(request_id: str, explored) -> ImpressionEvent:
        return ImpressionEvent(
            request_id=request_id,
            surface="search",
            query="drill",
            user_id="u",
            timestamp=t0,
            items=(ShownItem(item_id="a", position=1), ShownItem(item_id="b", position=2)),
            context={} if explored is None else {"explored": explored},
        )

    good = {"ranks": [1, 0], "probabilities": [0.4, 0.6], "full_support_ranks": 2}
    lists = join_logs(
        [
            impression("ok", good),
            impression("none", None),
            impression("flag-only", True),  # an older log format: no details, so not usable
            impression("bad-prob", {**good, "probabilities": [0.0, 0.6]}),
            impression("short", {**good, "probabilities": [0.4]}),
            impression("missing", {"ranks": [0, 1]}),
        ]
    )
    by_id = {lst.request_id: lst for lst in lists}
    assert by_id["ok"].explored and by_id["ok"].explored_ranks.tolist() == [1, 0]
    assert by_id["ok"].explored_probabilities.tolist() == [0.4, 0.6] and by_id["ok"].full_support_ranks == 2
    assert not any(by_id[k].explored for k in ("none", "flag-only", "bad-prob", "short", "missing"))
