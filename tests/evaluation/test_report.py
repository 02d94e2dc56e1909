from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from shoploop.domain import ClickEvent, ImpressionEvent, PurchaseEvent, PurchaseLine, SearchEvent, ShownItem
from shoploop.evaluation.ab import Experiment, MemoryExperimentStore, MetricSpec, Variant
from shoploop.evaluation.report import (
    SECTIONS,
    ABRow,
    CoverageRow,
    DataValueRow,
    KPISeries,
    OfflineMetrics,
    OPERow,
    ReportData,
    build_report,
    report_data_from_stores,
    write_report,
)
from shoploop.evaluation.search_queries import QueryRow

VOID = {"meta", "link", "br", "hr", "img", "input", "path", "line", "rect", "circle"}


class Checker(HTMLParser):
    """Checks tag balance and collects what the assertions need."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.section_ids: list[str] = []
        self.svgs: list[list[str]] = []  # path `d` attributes per svg
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key] or "")
        if tag == "script":
            self.scripts += 1
        if tag == "section":
            self.section_ids.append(a.get("id", ""))
        if tag == "svg":
            self.svgs.append([])
        if tag == "path" and self.svgs:
            self.svgs[-1].append(a.get("d", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag == "path" and self.svgs:
            self.svgs[-1].append(dict(attrs).get("d", ""))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def parse(html: str) -> Checker:
    c = Checker()
    c.feed(html)
    c.close()
    assert not c.errors, c.errors[:3]
    assert c.stack == [], c.stack
    return c


def full_data() -> ReportData:
    days = [f"2026-01-0{i}" for i in range(1, 8)]
    return ReportData(
        title="Demo <shop> report",
        offline=[
            OfflineMetrics("recommender", "1", {"ndcg@10": 0.21, "recall@10": 0.33}, "retired"),
            OfflineMetrics("recommender", "2", {"ndcg@10": 0.25, "recall@10": 0.36}, "active"),
        ],
        kpis=[
            KPISeries("home", "ctr", days, [0.05, 0.051, None, 0.06, 0.058, 0.061, 0.063]),
            KPISeries("search", "ctr", days, [0.12, 0.11, 0.13, 0.12, 0.125, 0.13, 0.14]),
        ],
        ab=[
            ABRow(
                "rec-v2",
                "treatment",
                "conversion",
                0.05,
                0.052,
                0.04,
                -0.01,
                0.09,
                0.11,
                0.4,
                0.5,
                False,
                5000,
                5010,
            ),
            ABRow(
                "rank-x",
                "b",
                "conversion",
                0.05,
                0.047,
                -0.06,
                -0.1,
                -0.02,
                0.01,
                0.03,
                1e-9,
                True,
                5300,
                4700,
            ),
        ],
        ope=[OPERow("bts", "snips", 0.0051, 0.004, 0.0062), OPERow("bts", "dr", 0.0049, 0.0037, 0.006)],
        data_value=[
            DataValueRow("web", 19000, 0.05, 0.001, 0.0026, "keep collecting"),
            DataValueRow("bots", 30000, -0.018, 0.0007, -0.0006, "drop: harms the model"),
        ],
        coverage=[CoverageRow("popular", 0.05, 0.92, 3.1), CoverageRow("ease", 0.41, 0.55, 7.9)],
        searches={
            "top": [QueryRow("cordless drill", 120, 97, 0, 118, 71, 0.6, 2.4, 30, 9, 1234.5, 0.075)],
            "no_results": [QueryRow("<unicorn> lamp", 14, 11, 14, 0, 0, None, None, 0, 0, 0.0, 0.0)],
            "unclicked": [],
        },
    )


def test_report_is_well_formed_complete_and_self_contained(tmp_path: Path):
    html = build_report(full_data())
    c = parse(html)
    assert c.section_ids == [sid for sid, _ in SECTIONS]
    assert c.scripts == 0
    assert not any(u.startswith(("http://", "https://", "//")) for u in c.urls)
    assert all(u.startswith("#") for u in c.urls)  # only in-page navigation
    assert "no data yet" not in html
    assert "Demo &lt;shop&gt; report" in html  # titles are escaped
    assert len(c.svgs) >= 7
    for paths in c.svgs:
        assert paths and all(d.strip() for d in paths)
    assert "SAMPLE RATIO MISMATCH" in html
    searches = html[html.index('id="searches"') :]
    assert "cordless drill" in searches and "&lt;unicorn&gt; lamp" in searches  # queries are escaped
    assert "Served often, rarely clicked" in searches and '<p class="help">none</p>' in searches
    out = write_report(full_data(), tmp_path / "report.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_empty_report_says_no_data_yet():
    html = build_report(ReportData(notes={"ab": "no experiment with exposures yet"}))
    c = parse(html)
    assert c.section_ids == [sid for sid, _ in SECTIONS]
    assert html.count("no data yet") == len(SECTIONS)
    assert "no experiment with exposures yet" in html


def test_report_from_memory_stores(tmp_path: Path, t0):
    memory = pytest.importorskip("shoploop.store.home")
    stores = memory.memory_stores(tmp_path / "artifacts")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.json").write_text("{}")
    stores.registry.register(
        "recommender",
        model_dir,
        metrics={
            "ndcg@10": 0.3,
            "catalog_coverage": 0.4,
            "gini": 0.6,
            "ope": {"snips": {"value": 0.01, "lo": 0.008, "hi": 0.012}},
        },
    )
    rng = np.random.default_rng(0)
    exp = Experiment(
        id="rec-v2",
        variants=(Variant("control", 0.5), Variant("treatment", 0.5)),
        primary_metric=MetricSpec("conversion", kind="proportion"),
        guardrails=(MetricSpec("revenue", max_relative_harm=0.05),),
        status="running",
    )
    exp_store = MemoryExperimentStore()
    exp_store.save(exp)
    events = []
    exposures = []
    for u in range(400):
        user = f"u{u}"
        at = t0 + timedelta(hours=u)
        rid = f"r{u}"
        events.append(SearchEvent(user_id=user, timestamp=at, query="shoes", request_id=rid))
        events.append(
            ImpressionEvent(
                user_id=user,
                timestamp=at,
                request_id=rid,
                surface="search",
                items=(ShownItem(item_id="i1", position=1), ShownItem(item_id="i2", position=2)),
            )
        )
        exposures.append(exp.expose(user, at, request_id=rid))
        if rng.random() < 0.3:
            events.append(
                ClickEvent(user_id=user, timestamp=at + timedelta(seconds=5), item_id="i1", request_id=rid)
            )
            if rng.random() < 0.3:
                events.append(
                    PurchaseEvent(
                        user_id=user,
                        timestamp=at + timedelta(seconds=60),
                        request_id=rid,
                        items=(PurchaseLine(item_id="i1", price=20.0),),
                    )
                )
    stores.events.append(events)
    exp_store.record_exposures(exposures)
    data = report_data_from_stores(stores, experiments=exp_store)
    assert data.offline and data.offline[0].metrics["ndcg@10"] == 0.3
    assert data.coverage and data.coverage[0].gini == 0.6
    assert data.ope and data.ope[0].estimator == "snips"
    assert {s.metric for s in data.kpis} >= {"ctr"}
    assert (
        data.ab and data.ab[0].experiment == "rec-v2" and data.ab[0].n_control + data.ab[0].n_treatment == 400
    )
    assert not data.data_value and "data-value" in data.notes
    (shoes,) = data.searches["top"]
    assert (shoes.query, shoes.searches, shoes.lists) == ("shoes", 400, 400)
    clicked = sum(isinstance(e, ClickEvent) for e in events)
    assert shoes.list_ctr == pytest.approx(clicked / 400)
    html = build_report(data)
    c = parse(html)
    assert c.section_ids == [sid for sid, _ in SECTIONS]
    assert html.count("no data yet") == 1  # only the data-value section
