"""Evaluation: offline metrics, business KPIs, off-policy estimation, interleaving, A/B tests, data value.

Modules (import the one you need; nothing is built at import time):

* ``metrics``      — pure ranking / recommendation metrics over numpy arrays (NDCG, recall, MAP, MRR,
                     coverage, novelty, Gini, intra-list diversity).
* ``business``     — KPIs from the event log per surface and period (CTR, carts, conversion, revenue per
                     search, dwell, return rate, abandonment).
* ``ope``          — off-policy estimators (IPS, SNIPS, clipped IPS, DM, DR, SNDR, Switch-DR, DR-os,
                     position-wise slate versions) and bootstrap confidence intervals.
* ``ope_models``   — reward models for DM/DR (empirical-Bayes position-based click model, per-cell model,
                     cross-fitted logistic regression).
* ``interleaving`` — team-draft interleaving, click credit and the preference (sign) test.
"""
