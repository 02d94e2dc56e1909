import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.feedback.exploration import (
    ExplorationConfig,
    ExplorationPolicy,
    allowed_permutations,
    plackett_luce_probabilities,
    slot_marginals,
)


def test_plackett_luce_two_items_by_hand():
    # weights 3 and 1: P(a first) = 3/4, P(b first) = 1/4
    perms = allowed_permutations(2, 5)
    probs = plackett_luce_probabilities(np.array([3.0, 1.0]), perms)
    assert dict(zip(map(tuple, perms), probs, strict=True)) == {
        (0, 1): pytest.approx(0.75),
        (1, 0): pytest.approx(0.25),
    }


def test_plackett_luce_three_items_by_hand():
    # P(c, a, b) with weights a=1, b=2, c=3: 3/6 * 1/3 * 2/2 = 1/6
    perms = allowed_permutations(3, 5)
    probs = plackett_luce_probabilities(np.array([1.0, 2.0, 3.0]), perms)
    lookup = dict(zip(map(tuple, perms), probs, strict=True))
    assert lookup[(2, 0, 1)] == pytest.approx(1 / 6)
    assert sum(lookup.values()) == pytest.approx(1.0)


def test_promotion_bound_excludes_big_jumps():
    perms = allowed_permutations(5, 1)
    # item 4 may only reach slot 3 or 4
    assert set(perms[:, 0]) <= {0, 1}
    assert all(item - slot <= 1 for p in perms for slot, item in enumerate(p))
    assert len(allowed_permutations(4, 0)) == 1  # no promotion = identity only
    assert len(allowed_permutations(4, 3)) == math.factorial(4)


@given(st.lists(st.floats(-5, 5), min_size=2, max_size=8), st.floats(0.05, 1.0), st.integers(0, 7))
def test_marginals_are_doubly_stochastic(scores, budget, promo):
    policy = ExplorationPolicy(ExplorationConfig(budget=budget, window=8, max_promotion=promo))
    perms, probs = policy.distribution(np.sort(np.array(scores))[::-1])
    m = slot_marginals(perms, probs)
    assert np.allclose(m.sum(axis=0), 1.0)
    assert np.allclose(m.sum(axis=1), 1.0)


def test_logged_propensities_match_sampling_frequencies():
    policy = ExplorationPolicy(ExplorationConfig(budget=0.5, window=4, temperature=1.0, max_promotion=2))
    scores = np.array([4.0, 3.0, 2.5, 1.0, 0.5, 0.1])
    rng = np.random.default_rng(0)
    n = 20_000
    counts = np.zeros((4, 4))
    logged = {}
    for _ in range(n):
        res = policy.choose(scores, rng)
        for slot in range(4):
            item = res.order[slot]
            counts[item, slot] += 1
            logged[(item, slot)] = res.propensities[slot]
        assert list(res.order[4:]) == [4, 5]  # outside the window nothing moves
        assert np.all(res.propensities[4:] == 1.0)
    for (item, slot), p in logged.items():
        assert counts[item, slot] / n == pytest.approx(p, abs=0.015)


def test_slot_probabilities_given_exploring_match_sampling_frequencies():
    # Only explored draws count; each slot's logged probability is P(that item there | exploring).
    policy = ExplorationPolicy(ExplorationConfig(budget=0.3, window=4, temperature=1.0, max_promotion=1))
    assert policy.full_support_ranks == 2  # ranks 0 and 1 can reach slot 0; both can sink to slot 3
    scores = np.array([4.0, 3.0, 2.5, 1.0, 0.5])
    rng = np.random.default_rng(1)
    counts, logged, n = np.zeros((4, 4)), {}, 0
    for _ in range(30_000):
        res = policy.choose(scores, rng)
        if not res.explored:
            assert res.slot_probabilities is None
            continue
        n += 1
        for slot in range(4):
            counts[res.order[slot], slot] += 1
            logged[(res.order[slot], slot)] = res.slot_probabilities[slot]
    for (item, slot), p in logged.items():
        assert counts[item, slot] / n == pytest.approx(p, abs=0.02)
    assert counts[:2].min() > 0 and counts[3, 0] == 0  # support: rank 3 never reaches the top


def test_zero_budget_is_deterministic_with_propensity_one():
    res = ExplorationPolicy(ExplorationConfig(budget=0.0)).choose(
        np.array([3.0, 2.0, 1.0]), np.random.default_rng(0)
    )
    assert list(res.order) == [0, 1, 2]
    assert np.all(res.propensities == 1.0)
    assert not res.explored


def test_same_seed_same_choices():
    policy = ExplorationPolicy(ExplorationConfig(budget=1.0))
    scores = np.linspace(5, 0, 10)
    a = [tuple(policy.choose(scores, np.random.default_rng(7)).order)]
    b = [tuple(policy.choose(scores, np.random.default_rng(7)).order)]
    assert a == b


@pytest.mark.parametrize("bad", [{"budget": 1.5}, {"window": 9}, {"temperature": 0}, {"max_promotion": -1}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ValueError):
        ExplorationConfig(**bad)


def test_budget_decays_with_a_querys_servings_by_hand():
    flat = ExplorationConfig(budget=0.2)
    assert flat.budget_for(None) == flat.budget_for(1e6) == 0.2  # no decay configured
    cfg = ExplorationConfig(budget=0.2, budget_half_servings=20, min_budget=0.02)
    assert cfg.budget_for(None) == 0.2  # a list without a query keeps the flat budget
    assert cfg.budget_for(0) == pytest.approx(0.2)
    assert cfg.budget_for(20) == pytest.approx(0.1)  # halved after h servings
    assert cfg.budget_for(60) == pytest.approx(0.05)  # 0.2 * 20 / 80
    assert cfg.budget_for(10_000) == 0.02  # floored


@given(st.floats(0, 1), st.floats(0.1, 1000), st.floats(0, 1e6), st.floats(0, 1e6))
def test_decayed_budget_stays_in_range_and_never_grows_with_traffic(budget, half, n1, n2):
    cfg = ExplorationConfig(budget=budget, budget_half_servings=half, min_budget=budget / 10)
    lo, hi = sorted((n1, n2))
    assert budget / 10 <= cfg.budget_for(hi) <= cfg.budget_for(lo) <= budget


def test_per_request_budget_sets_the_mixture_in_the_logged_propensities():
    policy = ExplorationPolicy(ExplorationConfig(budget=0.5, window=4, max_promotion=3))
    scores = np.array([4.0, 3.0, 2.5, 1.0, 0.5])
    perms, probs = policy.distribution(scores)
    m = slot_marginals(perms, probs)
    for budget in (0.0, 0.05, 0.3):
        rng = np.random.default_rng(3)
        res = policy.choose(scores, rng, budget=budget)
        while res.explored:  # the deterministic list carries (1 - b) + b * M[i, i]
            res = policy.choose(scores, rng, budget=budget)
        expected = (1 - budget) + budget * np.diag(m)
        assert res.propensities[:4] == pytest.approx(expected)
    assert policy.choose(scores, np.random.default_rng(0), budget=1.0).explored
    with pytest.raises(ValueError, match="budget"):
        policy.choose(scores, np.random.default_rng(0), budget=1.5)


@pytest.mark.parametrize(
    "bad", [{"budget_half_servings": -1.0}, {"budget": 0.1, "min_budget": 0.2}, {"min_budget": -0.1}]
)
def test_invalid_decay_config_is_rejected(bad):
    with pytest.raises(ValueError, match="budget"):
        ExplorationConfig(**bad)


def test_probe_shows_the_item_past_the_page_near_the_top_by_hand():
    # budget 1 and probe share 1: every request probes rank 5 at slot 2 (1-based)
    cfg = ExplorationConfig(budget=1.0, window=3, probe_share=1.0, probe_slot=2, probe_rank=5)
    res = ExplorationPolicy(cfg).choose(np.linspace(6, 0, 7), np.random.default_rng(0))
    assert list(res.order) == [0, 5, 1, 2, 3, 4, 6]
    assert res.explored and res.probe == (5, 1) and res.slot_probabilities is None
    assert np.all(res.propensities == 1.0)  # a certain probe: every item is where it had to be


def test_probe_propensity_by_hand():
    # budget 0.5, probe share 0.5 -> rank 5 lands at slot 2 with probability 0.5 * 0.5; it can only
    # be in slot 6 (its own) otherwise, since the shuffle (window 3) never reaches it.
    cfg = ExplorationConfig(budget=0.5, window=3, probe_share=0.5, probe_slot=2, probe_rank=5)
    policy = ExplorationPolicy(cfg)
    scores = np.linspace(6, 0, 7)
    rng = np.random.default_rng(3)
    seen = {}
    for _ in range(200):
        res = policy.choose(scores, rng)
        where = int(np.flatnonzero(res.order == 5)[0])
        seen[where] = res.propensities[where]
    assert seen == {1: pytest.approx(0.25), 5: pytest.approx(0.75)}


@given(st.floats(0.05, 1.0), st.floats(0.0, 1.0), st.integers(1, 4), st.integers(4, 9), st.integers(0, 3))
def test_policy_marginals_with_probes_are_doubly_stochastic(budget, share, slot, rank, promo):
    cfg = ExplorationConfig(
        budget=budget, window=4, max_promotion=promo, probe_share=share, probe_slot=slot, probe_rank=rank
    )
    m = ExplorationPolicy(cfg).marginals(np.linspace(3.0, 0.0, 11))
    assert np.allclose(m.sum(axis=0), 1.0) and np.allclose(m.sum(axis=1), 1.0)
    assert (m >= 0).all()


@pytest.mark.parametrize(("budget", "share", "slot", "rank"), [(0.5, 0.5, 2, 10), (0.3, 0.8, 1, 6)])
def test_logged_propensities_with_probes_match_sampling_frequencies(budget, share, slot, rank):
    cfg = ExplorationConfig(
        budget=budget, window=4, max_promotion=2, probe_share=share, probe_slot=slot, probe_rank=rank
    )
    policy = ExplorationPolicy(cfg)
    scores = np.linspace(3.0, 0.0, 12)
    expected = policy.marginals(scores)
    rng = np.random.default_rng(5)
    n, counts = 20_000, np.zeros((12, 12))
    for _ in range(n):
        res = policy.choose(scores, rng)
        assert sorted(res.order) == list(range(12))
        for s, item in enumerate(res.order):
            counts[item, s] += 1
            p = expected[item, s] if max(item, s) < len(expected) else float(item == s)
            assert res.propensities[s] == pytest.approx(p)
    m = len(expected)
    np.testing.assert_allclose(counts[:m, :m] / n, expected, atol=0.015)
    assert np.all(counts[m:, m:] == np.eye(12 - m) * n)  # past the reach nothing moves


@pytest.mark.parametrize("bad", [{"probe_share": 1.5}, {"probe_slot": 0}, {"probe_rank": 1, "probe_slot": 2}])
def test_invalid_probe_config_is_rejected(bad):
    with pytest.raises(ValueError, match="probe"):
        ExplorationConfig(**bad)
