from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from shoploop.evaluation.ab import assign, assign_many, hash_unit

USERS = [f"user-{i}" for i in range(20_000)]


def test_assignment_is_deterministic():
    a = assign_many(USERS[:500], salt="exp1", variants=["a", "b"], shares=[0.5, 0.5])
    b = [assign(u, salt="exp1", variants=["a", "b"], shares=[0.5, 0.5]) for u in USERS[:500]]
    assert a == b
    assert hash_unit("s", "u") == hash_unit("s", "u")
    assert 0.0 <= hash_unit("s", "u") < 1.0


def test_shares_respected_within_sampling_error():
    shares = [0.5, 0.3, 0.2]
    got = Counter(assign_many(USERS, salt="exp-shares", variants=["a", "b", "c"], shares=shares))
    n = len(USERS)
    for name, p in zip(["a", "b", "c"], shares, strict=True):
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(got[name] - n * p) < 4 * sd, (name, got[name])


def test_different_salts_decorrelate():
    u1 = np.array([hash_unit("salt-one", u) for u in USERS])
    u2 = np.array([hash_unit("salt-two", u) for u in USERS])
    assert abs(np.corrcoef(u1, u2)[0, 1]) < 0.03
    a = assign_many(USERS, salt="salt-one", variants=["a", "b"], shares=[0.5, 0.5])
    b = assign_many(USERS, salt="salt-two", variants=["a", "b"], shares=[0.5, 0.5])
    table = np.zeros((2, 2))
    for x, y in zip(a, b, strict=True):
        table[x == "b", y == "b"] += 1
    assert stats.chi2_contingency(table)[1] > 0.001  # independent assignments


def test_traffic_ramp_never_moves_enrolled_users():
    small = assign_many(
        USERS[:3000], salt="ramp", variants=["a", "b"], shares=[0.5, 0.5], traffic_fraction=0.2
    )
    big = assign_many(USERS[:3000], salt="ramp", variants=["a", "b"], shares=[0.5, 0.5], traffic_fraction=0.6)
    enrolled = [i for i, v in enumerate(small) if v is not None]
    assert 0.15 < len(enrolled) / 3000 < 0.25
    assert all(big[i] == small[i] for i in enrolled)
    assert 0.55 < sum(v is not None for v in big) / 3000 < 0.65


def test_bad_shares_rejected():
    with pytest.raises(ValueError):
        assign("u", salt="s", variants=["a", "b"], shares=[0.5, 0.0])
    with pytest.raises(ValueError):
        assign("u", salt="s", variants=["a", "b"], shares=[1.0])
