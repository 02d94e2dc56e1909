from __future__ import annotations

import numpy as np

from shoploop.retrieval.category_intent import CategoryIntentModel


def _fit():
    q = [
        "cordless drill",
        "hammer drill",
        "drill bits",
        "interior paint",
        "white paint",
        "deck stain",
        "paint roller",
    ]
    c = ["Tools", "Tools", "Tools", "Paint", "Paint", "Paint", "Paint"]
    return CategoryIntentModel().fit(q, c)


def test_predicts_the_right_category_with_probabilities():
    m = _fit()
    top = m.predict("drill", top=2)
    assert top[0][0] == "Tools" and top[0][1] > 0.5
    assert abs(sum(p for _, p in m.predict("paint", top=5)) - 1.0) < 1e-9
    assert m.predict("stain paint")[0][0] == "Paint"


def test_save_load_round_trip(tmp_path):
    m = _fit()
    m.save(tmp_path)
    m2 = CategoryIntentModel.load(tmp_path)
    qs = ["drill", "paint", "unknown words"]
    assert np.allclose(m.predict_proba(qs), m2.predict_proba(qs))
