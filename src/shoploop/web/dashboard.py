"""The merchandiser dashboard: live KPIs, latency, models, rules, experiments, charts.

Access needs an admin key, entered once and kept in an HttpOnly, SameSite=Strict cookie
(so other sites cannot post the dashboard's forms). Buttons are plain HTML form posts
handled here with the same engine calls as the admin API; the page works without JS,
and `static/dashboard.js` only refreshes the live panel every few seconds.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from shoploop.api.routers.admin import refresh_running
from shoploop.engine import Engine, InvalidRequest
from shoploop.evaluation import svgplot
from shoploop.evaluation.ab import Experiment, MetricSpec, Variant
from shoploop.evaluation.business import business_kpis
from shoploop.evaluation.search_queries import merchandiser_views, search_query_report
from shoploop.ranking.rules import Rule
from shoploop.web.dashboard_auth import ADMIN_COOKIE
from shoploop.web.dashboard_auth import back as _back
from shoploop.web.dashboard_auth import is_admin as _is_admin
from shoploop.web.dashboard_auth import login_page as _login_page
from shoploop.web.privacy_panel import privacy_context

router = APIRouter(prefix="/dashboard", include_in_schema=False)
QUERY_DAYS = 30  # the window of the search analytics panel
HISTORY_TTL = 60.0  # seconds: the daily charts scan the log, so they are recomputed at most once a minute
DASHBOARD_DECISIONS = ("promote", "reject", "retire", "rollback")
MAIN_ROUTES = (
    "GET /v1/search",
    "GET /v1/recommendations/home",
    "GET /v1/trending",
    "GET /v1/items/{item_id}/similar",
    "GET /v1/items/{item_id}/bought-together",
    "POST /v1/events",
    "GET /",
    "GET /search",
    "GET /product/{item_id}",
)


@router.post("/login")
def login(request: Request, key: Annotated[str, Form(max_length=500)]) -> Response:
    scopes = request.app.state.settings.scopes_of(key.strip())
    if scopes is None or "admin" not in scopes:
        return _login_page(request, "That is not an admin key.")
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(ADMIN_COOKIE, key.strip(), httponly=True, samesite="strict", max_age=12 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(ADMIN_COOKIE)
    return response


def _live_context(request: Request) -> dict[str, Any]:
    live = request.app.state.live
    latency = live.latency()
    return {
        "snapshot": live.snapshot(),
        "latency_rows": [(r, latency[r]) for r in MAIN_ROUTES if r in latency],
        "live_chart": _live_chart(live),
    }


def _live_chart(live: Any) -> str:
    """Lists served and events accepted per minute over the last 30 minutes (from the live window)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = [now - timedelta(minutes=m) for m in range(29, -1, -1)]
    served: Counter[datetime] = Counter()
    events: Counter[datetime] = Counter()
    with live._lock:
        recent = list(live._events)
    cutoff = minutes[0]
    for e in recent:
        ts = e.timestamp.astimezone(UTC).replace(second=0, microsecond=0)
        if ts < cutoff:
            continue
        (served if e.type == "impression" else events)[ts] += 1
    labels = [m.strftime("%H:%M") if i % 5 == 0 else "" for i, m in enumerate(minutes)]
    return svgplot.line_chart(
        labels,
        {"lists served": [float(served[m]) for m in minutes], "events": [float(events[m]) for m in minutes]},
        title="Last 30 minutes (per minute)",
        width=560,
        height=220,
    )


def _history(request: Request, engine: Engine) -> dict[str, Any]:
    cached = getattr(request.app.state, "dashboard_history", None)
    if cached is not None and time.monotonic() - cached[0] < HISTORY_TTL:
        return cached[1]
    events = list(engine.stores.events.scan(exclude_flagged=True))
    rows = business_kpis(events, period="day", include_total=False) if events else []
    periods = sorted({r.period for r in rows})[-30:]
    surfaces = sorted({r.surface for r in rows if r.impressions})
    by = {(r.surface, r.period): r for r in rows}

    def series(metric: str) -> dict[str, list[float | None]]:
        out = {}
        for s in surfaces:
            values = [getattr(by[(s, p)], metric) if (s, p) in by else None for p in periods]
            if any(v is not None for v in values):
                out[s] = [float(v) if v is not None else None for v in values]
        return out

    labels = [p[5:] for p in periods]  # "2025-06-01" -> "06-01"
    charts = {
        "ctr": svgplot.line_chart(
            labels, series("ctr"), title="CTR per surface, by day", width=560, height=240
        ),
        "impressions": svgplot.line_chart(
            labels, series("impressions"), title="Lists served per surface, by day", width=560, height=240
        ),
        "carts": svgplot.line_chart(
            labels,
            series("add_to_cart_rate"),
            title="Add-to-cart rate per surface, by day",
            width=560,
            height=240,
        ),
        "revenue": svgplot.line_chart(
            labels, series("revenue"), title="Revenue attributed per surface, by day", width=560, height=240
        ),
    }
    # Search analytics from the same scan: the last QUERY_DAYS of searches and their outcomes.
    since = engine.clock() - timedelta(days=QUERY_DAYS)
    query_rows = search_query_report(e for e in events if e.timestamp >= since)
    history: dict[str, Any] = {**charts, "queries": merchandiser_views(query_rows, 10)}
    request.app.state.dashboard_history = (time.monotonic(), history)
    return history


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, msg: str | None = None, err: str | None = None) -> Response:
    if not _is_admin(request):
        return _login_page(request)
    engine: Engine = request.app.state.engine
    experiments = request.app.state.experiments
    models = []
    for mv in engine.list_models():
        active = engine.versions.get(mv.name) == mv.version
        models.append({"mv": mv, "active": active, "metrics": mv.numeric_metrics()})
    exps = [{"exp": e, "counts": experiments.exposure_counts(e.id)} for e in experiments.list()]
    context = {
        "msg": msg,
        "err": err,
        "models": models,
        "model_names": sorted({m["mv"].name for m in models}),
        # registrations are left out: an undecided candidate already shows in the models table
        "decisions": engine.model_decisions(actions=DASHBOARD_DECISIONS, limit=15),
        "rules": engine.rules.all(),
        "synonyms": engine.synonyms(),
        "suggest_blocklist": engine.suggest_blocklist.text,
        "experiments": exps,
        "health": engine.health(),
        "history": _history(request, engine),
        "query_days": QUERY_DAYS,
        "privacy": privacy_context(request),
        "retrain": request.app.state.retrain.describe()
        if hasattr(request.app.state, "retrain")
        else "disabled",
        "catalog_feed": request.app.state.catalog_feed.describe()
        if hasattr(request.app.state, "catalog_feed")
        else "off",
        **_live_context(request),
    }
    return request.app.state.templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/live", response_class=HTMLResponse)
def live_panel(request: Request) -> Response:
    if not _is_admin(request):
        return HTMLResponse("", status_code=401)
    return request.app.state.templates.TemplateResponse(request, "_live.html", _live_context(request))


@router.post("/models/{name}/{version}/promote")
def promote(request: Request, name: str, version: int) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    try:
        request.app.state.engine.promote(name, version, reason="dashboard")
    except (KeyError, LookupError, ValueError) as exc:
        return _back(f"could not promote {name} v{version}: {exc}", ok=False)
    return _back(f"{name} v{version} is now active")


@router.post("/models/{name}/rollback")
def rollback(request: Request, name: str) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    try:
        restored = request.app.state.engine.rollback(name, reason="dashboard")
    except (KeyError, LookupError, ValueError) as exc:
        return _back(f"could not roll back {name}: {exc}", ok=False)
    if restored.status != "active":
        return _back(f"{name} v{restored.version} switched off: lists are served without it")
    return _back(f"{name} rolled back to v{restored.version}")


def _save_text_setting(
    request: Request, text: str, save: Callable[[str], Any], what: str, done: Callable[[Any], str]
) -> Response:
    """A textarea setting (synonyms, the autocomplete blocklist): saved through the engine, which
    refuses a bad line with its number; the browser's CRLF line ends become plain newlines."""
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    try:
        saved = save(text.replace("\r\n", "\n"))
    except InvalidRequest as exc:
        return _back(f"{what} not saved: {exc.reason}", ok=False)
    return _back(done(saved))


@router.post("/synonyms")
def save_synonyms(request: Request, rules: Annotated[str, Form(max_length=200_000)] = "") -> Response:
    return _save_text_setting(
        request,
        rules,
        request.app.state.engine.set_synonyms,
        "synonyms",
        lambda saved: f"synonyms saved: {saved['groups']} groups, {saved['rewrites']} rewrites, live now",
    )


@router.post("/suggest-blocklist")
def save_suggest_blocklist(
    request: Request, terms: Annotated[str, Form(max_length=400_000)] = ""
) -> Response:
    return _save_text_setting(
        request,
        terms,
        request.app.state.engine.set_suggest_blocklist,
        "blocklist",
        lambda saved: f"autocomplete blocklist saved: {len(saved)} terms, in force now",
    )


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@router.post("/rules")
def create_rule(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=20)],
    item_id: Annotated[str, Form(max_length=200)] = "",
    position: Annotated[str, Form(max_length=10)] = "",
    match_item_ids: Annotated[str, Form(max_length=2000)] = "",
    match_categories: Annotated[str, Form(max_length=2000)] = "",
    match_brands: Annotated[str, Form(max_length=2000)] = "",
    strength: Annotated[str, Form(max_length=10)] = "0.5",
    redirect_url: Annotated[str, Form(max_length=2000)] = "",
    surfaces: Annotated[str, Form(max_length=500)] = "",
    query_contains: Annotated[str, Form(max_length=2000)] = "",
    query_exact: Annotated[str, Form(max_length=2000)] = "",
    priority: Annotated[str, Form(max_length=10)] = "0",
    hours: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    data: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "scope": {
            "surfaces": _split(surfaces),
            "query_contains": _split(query_contains),
            "query_exact": _split(query_exact),
        },
        "priority": int(priority or 0) if (priority or "0").lstrip("-").isdigit() else 0,
    }
    if kind == "pin":
        data["item_id"] = item_id.strip() or None
        data["position"] = int(position) if position.strip().isdigit() else None
    elif kind in ("boost", "bury", "hide"):
        data["match"] = {
            "item_ids": _split(match_item_ids),
            "categories": _split(match_categories),
            "brands": _split(match_brands),
        }
        if kind != "hide":
            try:
                data["strength"] = float(strength)
            except ValueError:
                return _back(f"strength: not a number: {strength!r}", ok=False)
    elif kind == "redirect":
        data["redirect_url"] = redirect_url.strip() or None
    if hours.strip():
        try:
            now = datetime.now(UTC)
            data["start"], data["end"] = now, now + timedelta(hours=float(hours))
        except ValueError:
            return _back(f"hours: not a number: {hours!r}", ok=False)
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rule"
        return _back(f"rule not created: {where}: {first['msg']}", ok=False)
    request.app.state.engine.rules.put(rule)
    return _back(f"rule '{rule.name}' ({rule.kind}) is live")


@router.post("/rules/{rule_id}/delete")
def delete_rule(request: Request, rule_id: str) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    if not request.app.state.engine.rules.delete(rule_id):
        return _back(f"no rule {rule_id}", ok=False)
    return _back("rule deleted")


@router.post("/experiments")
def create_experiment(
    request: Request,
    surface: Annotated[str, Form(max_length=64)] = "home",
    metric: Annotated[str, Form(max_length=20)] = "conversion",
    control_version: Annotated[str, Form(max_length=200)] = "",
    treatment_version: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    if metric not in ("conversion", "click", "add_to_cart", "revenue"):
        return _back(f"metric: unknown {metric!r}", ok=False)
    store = request.app.state.experiments
    exp = Experiment(
        id=f"exp-{uuid.uuid4().hex[:8]}",
        name=name or f"{surface}: {control_version or 'current'} vs {treatment_version or 'candidate'}",
        surface=surface or None,
        variants=(
            Variant("control", 0.5, model_version=control_version or None),
            Variant("treatment", 0.5, model_version=treatment_version or None),
        ),
        primary_metric=MetricSpec(metric, kind="mean" if metric == "revenue" else "proportion"),
    )
    store.save(exp)
    store.start(exp.id, datetime.now(UTC))
    refresh_running(request)
    return _back(f"experiment {exp.id} started")


@router.post("/experiments/{experiment_id}/stop")
def stop_experiment(request: Request, experiment_id: str) -> Response:
    if not _is_admin(request):
        return _login_page(request, "Log in again.")
    try:
        request.app.state.experiments.stop(experiment_id, datetime.now(UTC))
    except (KeyError, ValueError) as exc:
        return _back(f"could not stop {experiment_id}: {exc}", ok=False)
    refresh_running(request)
    return _back(f"experiment {experiment_id} stopped")
