"""One self-contained HTML report a merchandiser can read: metrics, KPIs, experiments, data.

`build_report(ReportData) -> str` renders inline CSS + inline SVG (svgplot.py): no scripts,
no external assets, so the file can be mailed or archived as is. The caller fills
`ReportData`; `report_data_from_stores(stores)` does that from a shop's stores, and every
section it cannot fill says "no data yet" instead of failing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from shoploop.evaluation import svgplot
from shoploop.evaluation.ab.analysis import ExperimentReadout, VariantData, analyze_experiment
from shoploop.evaluation.ab.experiment import ExperimentStore, SqliteExperimentStore
from shoploop.evaluation.data_value import DataValueReport
from shoploop.evaluation.search_queries import QueryRow, merchandiser_views, search_query_report
from shoploop.store.files import atomic_write_text

log = logging.getLogger(__name__)

SECTIONS = (
    ("offline", "Offline metrics per model version"),
    ("kpis", "KPIs over time per surface"),
    ("ab", "A/B experiments"),
    ("ope", "Off-policy estimates"),
    ("data-value", "Data value"),
    ("coverage", "Coverage and popularity bias"),
    ("searches", "What shoppers search for"),
)
SEARCH_VIEWS = (  # (ReportData.searches key, heading, what to do about it)
    ("top", "Most searched", "demand, with how well the results serve it"),
    ("no_results", "Found nothing", "add products, a synonym or a redirect rule"),
    ("unclicked", "Served often, rarely clicked", "the results need a rule or better relevance"),
)


@dataclass(frozen=True)
class OfflineMetrics:
    model: str
    version: str
    metrics: Mapping[str, float]  # e.g. {"ndcg@10": 0.31, "recall@10": 0.42}
    status: str = ""


@dataclass(frozen=True)
class KPISeries:
    surface: str
    metric: str  # e.g. "ctr"
    periods: Sequence[str]  # x labels, e.g. dates
    values: Sequence[float | None]


@dataclass(frozen=True)
class ABRow:
    experiment: str
    variant: str
    metric: str
    control_mean: float
    treatment_mean: float
    lift: float
    lift_lo: float
    lift_hi: float
    p_value: float
    sequential_p: float | None = None
    srm_p: float | None = None
    srm_mismatch: bool = False
    n_control: int = 0
    n_treatment: int = 0
    guardrails: str = ""


@dataclass(frozen=True)
class OPERow:
    policy: str
    estimator: str
    value: float
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class DataValueRow:
    slice: str
    n_events: int
    value: float
    stderr: float
    value_per_1k: float
    recommendation: str


@dataclass(frozen=True)
class CoverageRow:
    model: str
    catalog_coverage: float | None  # share of the catalogue ever recommended
    gini: float | None  # concentration of recommendations on few items (0 = even, 1 = one item)
    novelty: float | None = None  # mean self-information of recommended items, bits


@dataclass
class ReportData:
    title: str = "shoploop evaluation report"
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    offline: list[OfflineMetrics] = field(default_factory=list)
    kpis: list[KPISeries] = field(default_factory=list)
    ab: list[ABRow] = field(default_factory=list)
    ope: list[OPERow] = field(default_factory=list)
    data_value: list[DataValueRow] = field(default_factory=list)
    coverage: list[CoverageRow] = field(default_factory=list)
    searches: dict[str, list[QueryRow]] = field(default_factory=dict)  # SEARCH_VIEWS key -> rows
    notes: dict[str, str] = field(
        default_factory=dict
    )  # section id -> extra explanation / reason for no data


# ---------------------------------------------------------------------------- converters


def ab_rows_from_readout(readout: ExperimentReadout) -> list[ABRow]:
    rows = []
    for c in readout.comparisons:
        e = c.primary_cuped or c.primary
        g = "; ".join(f"{v.metric}: {v.verdict}" for v in c.guardrails)
        rows.append(
            ABRow(
                readout.experiment_id,
                c.variant,
                e.metric,
                e.control_mean,
                e.treatment_mean,
                e.relative_lift,
                e.lift_ci[0],
                e.lift_ci[1],
                e.p_value,
                c.sequential.p_values[-1] if c.sequential else None,
                readout.srm.p_value,
                readout.srm.mismatch,
                e.n_control,
                e.n_treatment,
                g,
            )
        )
    return rows


def data_value_rows(report: DataValueReport) -> list[DataValueRow]:
    return [
        DataValueRow(s.name, s.n_events, s.value, s.stderr, s.value_per_1k, s.recommendation)
        for s in report.slices
    ]


# ---------------------------------------------------------------------------- rendering


def _empty(section: str, data: ReportData) -> str:
    reason = data.notes.get(section, "")
    return f'<p class="empty">no data yet{(": " + escape(reason)) if reason else ""}</p>'


def _offline(data: ReportData) -> str:
    if not data.offline:
        return _empty("offline", data)
    names = sorted({k for r in data.offline for k, v in r.metrics.items() if isinstance(v, int | float)})
    labels = [f"{r.model} v{r.version}" for r in data.offline]
    charts = [
        svgplot.bar_chart(
            labels, [float(r.metrics.get(m, math.nan)) for r in data.offline], title=m, width=520
        )
        for m in names[:6]
    ]
    rows = [[r.model, r.version, r.status, *[r.metrics.get(m) for m in names]] for r in data.offline]
    return f'<div class="charts">{"".join(charts)}</div>' + svgplot.table(
        ["model", "version", "status", *names], rows
    )


def _kpis(data: ReportData) -> str:
    if not data.kpis:
        return _empty("kpis", data)
    by_metric: dict[str, list[KPISeries]] = {}
    for s in data.kpis:
        by_metric.setdefault(s.metric, []).append(s)
    charts = []
    for metric, series in by_metric.items():
        periods = sorted({p for s in series for p in s.periods})
        lines = {}
        for s in series:
            m = dict(zip(s.periods, s.values, strict=False))
            lines[s.surface] = [m.get(p) for p in periods]
        charts.append(svgplot.line_chart(periods, lines, title=metric, width=520))
    return f'<div class="charts">{"".join(charts)}</div>'


def _ab(data: ReportData) -> str:
    if not data.ab:
        return _empty("ab", data)
    labels = [f"{r.experiment}: {r.variant}" for r in data.ab]
    chart = svgplot.bar_chart(
        labels,
        [r.lift for r in data.ab],
        lower=[r.lift_lo for r in data.ab],
        upper=[r.lift_hi for r in data.ab],
        title="relative lift vs control (95% CI)",
        percent=True,
    )
    rows = []
    for r in data.ab:
        srm = "SAMPLE RATIO MISMATCH" if r.srm_mismatch else "ok"
        rows.append(
            [
                r.experiment,
                r.variant,
                r.metric,
                r.n_control,
                r.n_treatment,
                r.control_mean,
                r.treatment_mean,
                f"{100 * r.lift:+.2f}% [{100 * r.lift_lo:+.2f}%, {100 * r.lift_hi:+.2f}%]",
                r.p_value,
                r.sequential_p,
                srm,
                r.guardrails,
            ]
        )
    warn = ""
    if any(r.srm_mismatch for r in data.ab):
        warn = (
            '<p class="warn">A sample-ratio mismatch means assignment or logging is broken: '
            "do not trust those effects.</p>"
        )
    help_ = (
        '<p class="help">"always-valid p" comes from a sequential test (mSPRT) and may be read every day; '
        "the classic p-value is only valid when read once, at the planned end.</p>"
    )
    headers = [
        "experiment",
        "variant",
        "metric",
        "n control",
        "n treatment",
        "control",
        "treatment",
        "lift [95% CI]",
        "p",
        "always-valid p",
        "SRM",
        "guardrails",
    ]
    return help_ + warn + chart + svgplot.table(headers, rows)


def _ope(data: ReportData) -> str:
    if not data.ope:
        return _empty("ope", data)
    labels = [f"{r.policy} / {r.estimator}" for r in data.ope]
    chart = svgplot.bar_chart(
        labels,
        [r.value for r in data.ope],
        lower=[r.lo for r in data.ope],
        upper=[r.hi for r in data.ope],
        title="estimated policy value (CI)",
    )
    return chart + svgplot.table(
        ["policy", "estimator", "estimate", "low", "high"],
        [[r.policy, r.estimator, r.value, r.lo, r.hi] for r in data.ope],
    )


def _data_value(data: ReportData) -> str:
    if not data.data_value:
        return _empty("data-value", data)
    rows = data.data_value
    chart = svgplot.bar_chart(
        [r.slice for r in rows],
        [r.value for r in rows],
        lower=[r.value - 2 * r.stderr for r in rows],
        upper=[r.value + 2 * r.stderr for r in rows],
        title="Shapley value of each data slice (+- 2 stderr)",
    )
    help_ = (
        '<p class="help">How much each slice of data adds to the model\'s validation metric (Shapley value). '
        "Negative slices make the model worse.</p>"
    )
    table = svgplot.table(
        ["slice", "events", "value", "stderr", "value / 1k events", "recommendation"],
        [[r.slice, r.n_events, r.value, r.stderr, r.value_per_1k, r.recommendation] for r in rows],
    )
    return help_ + chart + table


def _coverage(data: ReportData) -> str:
    if not data.coverage:
        return _empty("coverage", data)
    rows = data.coverage
    c1 = svgplot.bar_chart(
        [r.model for r in rows], [r.catalog_coverage for r in rows], title="catalog coverage", width=520
    )
    c2 = svgplot.bar_chart(
        [r.model for r in rows], [r.gini for r in rows], title="popularity bias (Gini)", width=520
    )
    table = svgplot.table(
        ["model", "catalog coverage", "Gini", "novelty (bits)"],
        [[r.model, r.catalog_coverage, r.gini, r.novelty] for r in rows],
    )
    return f'<div class="charts">{c1}{c2}</div>' + table


_SEARCH_COLUMNS = (
    "query",
    "searches",
    "shoppers",
    "no results",
    "list CTR",
    "mean click position",
    "conversion",
)


def _searches(data: ReportData) -> str:
    if not any(data.searches.values()):
        return _empty("searches", data)
    out = []
    for key, heading, why in SEARCH_VIEWS:
        rows = [
            [
                r.query,
                r.searches,
                r.shoppers,
                r.no_result_searches,
                r.list_ctr,
                r.mean_click_position,
                r.conversion,
            ]
            for r in data.searches.get(key, [])
        ]
        out.append(f'<h3>{escape(heading)}</h3><p class="help">{escape(why)}</p>')
        out.append(svgplot.table(_SEARCH_COLUMNS, rows) if rows else '<p class="help">none</p>')
    return "".join(out)


_RENDER = {
    "offline": _offline,
    "kpis": _kpis,
    "ab": _ab,
    "ope": _ope,
    "data-value": _data_value,
    "coverage": _coverage,
    "searches": _searches,
}


def build_report(sections: ReportData) -> str:
    """The whole report as one HTML string (inline CSS and SVG, nothing fetched)."""
    template = Template(
        resources.files("shoploop.evaluation").joinpath("report_template.html").read_text("utf-8")
    )
    body = []
    for sid, title in SECTIONS:
        note = sections.notes.get(sid) if sid in _section_has_data(sections) else None
        extra = f'<p class="help">{escape(note)}</p>' if note else ""
        body.append(f'<section id="{sid}"><h2>{escape(title)}</h2>{extra}{_RENDER[sid](sections)}</section>')
    nav = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title in SECTIONS)
    return template.substitute(
        title=escape(sections.title),
        generated_at=escape(sections.generated_at.strftime("%Y-%m-%d %H:%M %Z")),
        nav=nav,
        sections="\n".join(body),
    )


def _section_has_data(d: ReportData) -> set[str]:
    have = {
        "offline": d.offline,
        "kpis": d.kpis,
        "ab": d.ab,
        "ope": d.ope,
        "data-value": d.data_value,
        "coverage": d.coverage,
        "searches": any(d.searches.values()),
    }
    return {k for k, v in have.items() if v}


def write_report(sections: ReportData, path: Path) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    path = Path(path)
    atomic_write_text(path, build_report(sections))
    return path


# ---------------------------------------------------------------------------- wiring from stores

SEARCH_DAYS = 30  # the searches section covers this many days up to the newest event
_KPI_METRICS = ("ctr", "add_to_cart_rate", "conversion_per_search", "revenue_per_search", "abandonment_rate")
_COVERAGE_KEYS = {
    "catalog_coverage": ("catalog_coverage", "coverage"),
    "gini": ("gini",),
    "novelty": ("novelty",),
}


def _first(metrics: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    for k in keys:
        v = metrics.get(k)
        if isinstance(v, int | float):
            return float(v)
    return None


def _user_outcomes(
    events: Sequence[Any], user_ids: set[str], since: Mapping[str, datetime]
) -> dict[str, dict[str, float]]:
    """Per exposed user: converted / clicked / added to cart / revenue after their first exposure."""
    out = {u: {"conversion": 0.0, "click": 0.0, "add_to_cart": 0.0, "revenue": 0.0} for u in user_ids}
    for e in events:
        u = e.user_id
        if u not in out or e.timestamp < since[u]:
            continue
        if e.type == "purchase":
            out[u]["conversion"] = 1.0
            out[u]["revenue"] += e.revenue
        elif e.type == "click":
            out[u]["click"] = 1.0
        elif e.type == "add_to_cart":
            out[u]["add_to_cart"] = 1.0
    return out


def _experiment_rows(exp_store: ExperimentStore, events: Sequence[Any]) -> list[ABRow]:
    import numpy as np

    rows: list[ABRow] = []
    for exp in exp_store.list():
        exposures = exp_store.exposures(exp.id)
        if not exposures:
            continue
        first = {x.user_id: x.at for x in exposures}
        outcomes = _user_outcomes(events, set(first), first)
        start = min(first.values())
        data = {}
        for v in exp.variant_names:
            users = [x for x in exposures if x.variant == v]
            metrics = {}
            for spec in (exp.primary_metric, *exp.guardrails):
                key = spec.name if spec.name in ("conversion", "click", "add_to_cart", "revenue") else None
                if key is None:
                    continue
                metrics[spec.name] = np.array([outcomes[x.user_id][key] for x in users])
            day = np.array([(x.at - start).days for x in users], dtype=int)
            if metrics:
                data[v] = VariantData(metrics=metrics, day=day)
        if exp.primary_metric.name not in next(iter(data.values()), VariantData({})).metrics:
            continue
        try:
            rows += ab_rows_from_readout(analyze_experiment(exp, data))
        except (ValueError, KeyError, ZeroDivisionError) as err:  # too little data to analyse yet
            log.info("experiment %s not analysed: %s", exp.id, err)
    return rows


def report_data_from_stores(
    stores: Any,
    *,
    experiments: ExperimentStore | None = None,
    data_value: DataValueReport | None = None,
    period: str = "day",
    title: str = "shoploop evaluation report",
) -> ReportData:
    """Fill a ReportData from a shop's stores (`shoploop.store.home.Stores`).

    offline metrics, coverage and off-policy estimates come from the model registry's
    recorded metrics (coverage keys: catalog_coverage/coverage, gini, novelty; OPE: a
    metrics["ope"] mapping estimator -> {"value", "lo", "hi"}); KPIs from the event log via
    `shoploop.evaluation.business.business_kpis`; A/B results from the experiment store
    (default: the SQLite file of the shop home). Missing pieces leave a "no data yet" note.
    """
    data = ReportData(title=title)
    # -- registry: offline metrics, coverage, OPE
    try:
        versions = list(stores.registry.versions())
    except Exception as err:  # a broken registry must not stop the rest of the report
        versions = []
        data.notes["offline"] = f"registry unavailable ({err})"
    for mv in versions:
        numeric = {k: float(v) for k, v in mv.numeric_metrics().items()}
        if numeric:
            data.offline.append(OfflineMetrics(mv.name, str(mv.version), numeric, mv.status))
        cov = {k: _first(mv.metrics, keys) for k, keys in _COVERAGE_KEYS.items()}
        if cov["catalog_coverage"] is not None or cov["gini"] is not None:
            data.coverage.append(
                CoverageRow(f"{mv.name} v{mv.version}", cov["catalog_coverage"], cov["gini"], cov["novelty"])
            )
        ope = mv.metrics.get("ope")
        if isinstance(ope, Mapping):
            for est, v in ope.items():
                if isinstance(v, Mapping) and "value" in v:
                    data.ope.append(
                        OPERow(
                            f"{mv.name} v{mv.version}", str(est), float(v["value"]), v.get("lo"), v.get("hi")
                        )
                    )
    if not versions:
        data.notes.setdefault("offline", "no model has been registered")
    data.notes.setdefault("coverage", "no registered model recorded coverage / Gini")
    data.notes.setdefault("ope", "no registered model recorded off-policy estimates")
    # -- events: KPIs
    events: list[Any] = []
    try:
        events = list(stores.events.scan())
    except Exception as err:
        data.notes["kpis"] = f"event log unavailable ({err})"
    if events:
        try:
            from shoploop.evaluation.business import business_kpis

            kpi_rows = business_kpis(events, period=period)  # type: ignore[arg-type]
            for metric in _KPI_METRICS:
                per_surface: dict[str, tuple[list[str], list[float | None]]] = {}
                for r in kpi_rows:
                    v = getattr(r, metric, None)
                    ps = per_surface.setdefault(r.surface, ([], []))
                    ps[0].append(r.period)
                    ps[1].append(v)
                for surface, (periods, values) in per_surface.items():
                    if any(v is not None for v in values):
                        data.kpis.append(KPISeries(surface, metric, periods, values))
        except ImportError:
            data.notes["kpis"] = "business KPI module not installed"
    else:
        data.notes.setdefault("kpis", "the event log is empty")
    # -- searches: per-query analytics over the last SEARCH_DAYS, bots left out
    if events:
        flagged = stores.events.flagged_users()
        since = max(e.timestamp for e in events) - timedelta(days=SEARCH_DAYS)
        rows = search_query_report(e for e in events if e.user_id not in flagged and e.timestamp >= since)
        views = merchandiser_views(rows, 15)
        data.searches = {key: getattr(views, key) for key, _, _ in SEARCH_VIEWS}
        uptake = views.uptake_sentence()
        data.notes["searches"] = (
            f"{len(rows):,} distinct queries in the {SEARCH_DAYS} days up to the newest event, bots left out"
            + (f"; {uptake}" if uptake else "")
        )
    if not any(data.searches.values()):
        data.notes.setdefault("searches", "no search has been logged")
    # -- experiments
    exp_store = experiments
    opened = None
    if exp_store is None and getattr(stores, "home", None) is not None:
        db = Path(stores.home) / "shoploop.sqlite"
        if db.exists():
            exp_store = opened = SqliteExperimentStore(db)
    try:
        if exp_store is not None:
            data.ab = _experiment_rows(exp_store, events)
    finally:
        if opened is not None:
            opened.close()
    if not data.ab:
        data.notes.setdefault("ab", "no experiment with exposures yet")
    # -- data value (computed by a separate, slower job)
    if data_value is not None:
        data.data_value = data_value_rows(data_value)
    else:
        data.notes.setdefault("data-value", "run the data-value assessment to fill this section")
    return data
