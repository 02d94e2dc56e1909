"""Admin: model versions (promote / rollback), merchandising rules and A/B experiments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from shoploop.api.deps import AdminAuth, EngineDep, ExperimentsDep
from shoploop.api.errors import ERROR_RESPONSES, NOT_FOUND, ApiError
from shoploop.api.schemas import (
    ExperimentIn,
    ExperimentOut,
    ModelDecision,
    ModelInfo,
    QueryAnalytics,
    Reason,
    SuggestBlocklist,
    SynonymsIn,
    SynonymsOut,
)
from shoploop.engine import Engine, NotFound
from shoploop.engine.variants import VariantSpecError, serving_override
from shoploop.evaluation.ab import Experiment, MetricSpec, Variant
from shoploop.evaluation.search_queries import merchandiser_views
from shoploop.ranking.rules import Rule
from shoploop.store.protocols import DecisionAction, ModelVersion

router = APIRouter(dependencies=[AdminAuth], responses=ERROR_RESPONSES)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the change conflicts with the current state"}
}

ModelName = Annotated[str, Path(min_length=1, max_length=64, examples=["recommender"])]
RuleId = Annotated[str, Path(min_length=1, max_length=64)]
ExperimentId = Annotated[str, Path(min_length=1, max_length=100)]


# ---------------------------------------------------------------------------- models
def model_info(engine: Engine, mv: ModelVersion) -> ModelInfo:
    return ModelInfo(
        name=mv.name,
        version=mv.version,
        status=mv.status,
        active=engine.versions.get(mv.name) == mv.version,
        created_at=mv.created_at,
        metrics=dict(mv.metrics),
        config=dict(mv.config),
    )


def _registry_call(fn: Any, *args: Any, **kwargs: Any) -> ModelVersion:
    try:
        return fn(*args, **kwargs)
    except NotFound:
        raise
    except KeyError as err:
        raise ApiError(404, "not_found", str(err).strip("'\""), "version") from err
    except LookupError as err:  # nothing to roll back to
        raise ApiError(409, "conflict", str(err), "name") from err
    except ValueError as err:  # e.g. promoting a rejected version
        raise ApiError(409, "conflict", str(err), "version") from err


@router.get("/v1/models", response_model=list[ModelInfo], tags=["models"], summary="Model versions")
def list_models(engine: EngineDep) -> list[ModelInfo]:
    return [model_info(engine, mv) for mv in engine.list_models()]


@router.get(
    "/v1/models/decisions",
    response_model=list[ModelDecision],
    tags=["models"],
    summary="Why models changed: the registry's audit trail, newest first",
)
def model_decisions(
    engine: EngineDep,
    name: Annotated[str | None, Query(min_length=1, max_length=64, description="only this model")] = None,
    action: Annotated[
        list[DecisionAction] | None, Query(description="only these kinds of decision (repeatable)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many entries")] = 50,
) -> list[ModelDecision]:
    return [
        ModelDecision(
            name=d.name,
            version=d.version,
            action=d.action,
            reason=d.reason,
            at=d.at,
            evidence=dict(d.metrics),
        )
        for d in engine.model_decisions(name, actions=action, limit=limit)
    ]


@router.post(
    "/v1/models/{name}/{version}/promote",
    response_model=ModelInfo,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["models"],
    summary="Serve this version from the next request",
)
def promote(
    engine: EngineDep,
    name: ModelName,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    body: Reason | None = None,
) -> ModelInfo:
    reason = body.reason if body else "manual, via the API"
    return model_info(engine, _registry_call(engine.promote, name, version, reason=reason))


@router.post(
    "/v1/models/{name}/rollback",
    response_model=ModelInfo,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["models"],
    summary="Re-activate the previously active version (a re-ranker's first: switch it off)",
)
def rollback(engine: EngineDep, name: ModelName, body: Reason | None = None) -> ModelInfo:
    reason = body.reason if body else "manual, via the API"
    return model_info(engine, _registry_call(engine.rollback, name, reason=reason))


# ---------------------------------------------------------------------------- synonyms
@router.get("/v1/synonyms", response_model=SynonymsOut, tags=["search tuning"], summary="The shop's synonyms")
def get_synonyms(engine: EngineDep) -> SynonymsOut:
    return SynonymsOut(**engine.synonyms())


@router.put(
    "/v1/synonyms",
    response_model=SynonymsOut,
    tags=["search tuning"],
    summary="Replace the shop's synonyms; searches use them at once",
)
def put_synonyms(engine: EngineDep, body: SynonymsIn) -> SynonymsOut:
    return SynonymsOut(**engine.set_synonyms(body.rules))


@router.get(
    "/v1/suggest/blocklist",
    response_model=SuggestBlocklist,
    tags=["search tuning"],
    summary="What autocomplete must never suggest",
)
def get_suggest_blocklist(engine: EngineDep) -> SuggestBlocklist:
    text = engine.suggest_blocklist.text
    return SuggestBlocklist(terms=text, count=len(engine.suggest_blocklist.value))


@router.put(
    "/v1/suggest/blocklist",
    response_model=SuggestBlocklist,
    tags=["search tuning"],
    summary="Replace the autocomplete blocklist; matching suggestions disappear at once",
)
def put_suggest_blocklist(engine: EngineDep, body: SuggestBlocklist) -> SuggestBlocklist:
    terms = engine.set_suggest_blocklist(body.terms)
    return SuggestBlocklist(terms=body.terms, count=len(terms))


# ---------------------------------------------------------------------------- analytics
@router.get(
    "/v1/analytics/queries",
    response_model=QueryAnalytics,
    tags=["analytics"],
    summary="Search analytics per query: top searches, no results, rarely clicked",
)
def query_analytics(
    engine: EngineDep,
    days: Annotated[float, Query(gt=0, le=3650, description="searches of the last N days")] = 30.0,
    all_time: Annotated[bool, Query(description="every search in the log instead of `days`")] = False,
    top: Annotated[int, Query(ge=1, le=1000, description="rows per view")] = 20,
    min_lists: Annotated[int, Query(ge=1, description="lists a query needs to be 'rarely clicked'")] = 10,
) -> QueryAnalytics:
    window = None if all_time else days
    views = merchandiser_views(engine.search_queries(window), top, min_lists=min_lists)
    return QueryAnalytics(window_days=window, **vars(views))


# ---------------------------------------------------------------------------- rules
@router.get("/v1/rules", response_model=list[Rule], tags=["rules"], summary="Merchandising rules")
def list_rules(engine: EngineDep) -> list[Rule]:
    return engine.rules.all()


@router.post(
    "/v1/rules",
    response_model=Rule,
    status_code=201,
    responses=CONFLICT,
    tags=["rules"],
    summary="Create a rule (takes effect on the next request)",
    description=(
        "Kinds: `pin` (item_id to position), `boost`/`bury` (match by item ids, categories, brands "
        "or attributes; `strength` is a fraction of the list's score range), `hide`, `redirect` "
        "(a query to a URL). `scope` limits it to surfaces, exact queries, query terms or "
        "categories; `start`/`end` to a time window. Precedence: redirect > hide > pin > boost/bury, "
        "then `priority`. Every item a rule touches names it in `explanation.rules`."
    ),
)
def create_rule(engine: EngineDep, rule: Rule) -> Rule:
    if engine.rules.get(rule.rule_id) is not None:
        raise ApiError(
            409, "conflict", f"rule {rule.rule_id!r} exists; PUT /v1/rules/{{id}} replaces it", "rule_id"
        )
    return engine.rules.put(rule)


@router.get(
    "/v1/rules/{rule_id}", response_model=Rule, responses=NOT_FOUND, tags=["rules"], summary="One rule"
)
def get_rule(engine: EngineDep, rule_id: RuleId) -> Rule:
    rule = engine.rules.get(rule_id)
    if rule is None:
        raise NotFound("rule", rule_id)
    return rule


@router.put("/v1/rules/{rule_id}", response_model=Rule, tags=["rules"], summary="Create or replace a rule")
def put_rule(engine: EngineDep, rule_id: RuleId, rule: Rule) -> Rule:
    data = rule.model_dump()
    data["rule_id"] = rule_id
    return engine.rules.put(Rule.model_validate(data))


@router.delete(
    "/v1/rules/{rule_id}", status_code=204, responses=NOT_FOUND, tags=["rules"], summary="Delete a rule"
)
def delete_rule(engine: EngineDep, rule_id: RuleId) -> Response:
    if not engine.rules.delete(rule_id):
        raise NotFound("rule", rule_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------------- experiments
def refresh_running(request: Request) -> None:
    """Serving routes read this cached list instead of the store on every request."""
    request.app.state.running_experiments = request.app.state.experiments.list(status="running")
    request.app.state.engine.forget_variant_models()  # reloaded on demand for what still runs


def _check_variants(engine: Engine, body: ExperimentIn) -> None:
    """Every variant must be servable: known models and policy, registered versions."""
    for i, variant in enumerate(body.variants):
        where = f"variants[{i}]"
        try:
            override = serving_override(variant.name, variant.model_version, variant.policy)
        except VariantSpecError as err:
            raise ApiError(422, "invalid_request", f"{where}.{err}", f"{where}.{err.field}") from err
        for name, version in (override.models if override else {}).items():
            if version is None:
                continue
            try:
                engine.stores.registry.get(name, version)
            except KeyError:
                reason = f"{where}.model_version: the registry has no {name} v{version}"
                raise ApiError(422, "invalid_request", reason, f"{where}.model_version") from None


def experiment_out(store: Any, exp: Experiment, events: list[Any] | None = None) -> ExperimentOut:
    readout: list[dict[str, Any]] = []
    if events is not None:
        # Reuses the report's per-user outcome join so the dashboard and report agree.
        from shoploop.evaluation.report import _experiment_rows

        single = _SingleExperiment(store, exp)
        readout = [dict(row.__dict__) for row in _experiment_rows(single, events)]
    return ExperimentOut(experiment=exp.to_dict(), exposures=store.exposure_counts(exp.id), readout=readout)


class _SingleExperiment:
    """Presents one experiment of a store to code that iterates `store.list()`."""

    def __init__(self, store: Any, exp: Experiment) -> None:
        self._store = store
        self._exp = exp

    def list(self, **_: Any) -> list[Experiment]:
        return [self._exp]

    def exposures(self, experiment_id: str) -> list[Any]:
        return self._store.exposures(experiment_id)


@router.get(
    "/v1/experiments", response_model=list[ExperimentOut], tags=["experiments"], summary="A/B experiments"
)
def list_experiments(experiments: ExperimentsDep) -> list[ExperimentOut]:
    return [experiment_out(experiments, e) for e in experiments.list()]


@router.post(
    "/v1/experiments",
    response_model=ExperimentOut,
    status_code=201,
    responses=CONFLICT,
    tags=["experiments"],
    summary="Create (and by default start) an experiment",
    description=(
        "Shoppers are assigned by a salted hash of their id; the first list each one is served on "
        "the experiment's surface records their exposure. The readout (GET) compares each variant "
        "with the control on the primary metric and checks guardrails and sample-ratio mismatch."
    ),
)
def create_experiment(
    request: Request, engine: EngineDep, experiments: ExperimentsDep, body: ExperimentIn
) -> ExperimentOut:
    exp_id = body.id or f"exp-{uuid.uuid4().hex[:8]}"
    if experiments.get(exp_id) is not None:
        raise ApiError(409, "conflict", f"experiment {exp_id!r} exists", "id")
    _check_variants(engine, body)
    if body.start:
        _check_surface_free(experiments, body.surface, exp_id)
    exp = Experiment(
        id=exp_id,
        name=body.name,
        description=body.description,
        surface=body.surface,
        variants=tuple(Variant(**v.model_dump()) for v in body.variants),
        primary_metric=MetricSpec(**body.primary_metric.model_dump()),
        guardrails=tuple(MetricSpec(**g.model_dump()) for g in body.guardrails),
        traffic_fraction=body.traffic_fraction,
        alpha=body.alpha,
    )
    experiments.save(exp)
    if body.start:
        exp = experiments.start(exp.id, datetime.now(UTC))
    refresh_running(request)
    return experiment_out(experiments, exp)


@router.get(
    "/v1/experiments/{experiment_id}",
    response_model=ExperimentOut,
    responses=NOT_FOUND,
    tags=["experiments"],
    summary="An experiment with its exposures and readout",
)
def get_experiment(
    engine: EngineDep, experiments: ExperimentsDep, experiment_id: ExperimentId
) -> ExperimentOut:
    exp = experiments.get(experiment_id)
    if exp is None:
        raise NotFound("experiment", experiment_id)
    exposures = experiments.exposures(exp.id)
    events: list[Any] = []
    if exposures:
        since = min(x.at for x in exposures)
        users = {x.user_id for x in exposures}
        events = [
            e
            for e in engine.stores.events.scan(since=since, types=["click", "add_to_cart", "purchase"])
            if e.user_id in users
        ]
    return experiment_out(experiments, exp, events)


def _check_surface_free(store: Any, surface: str | None, experiment_id: str) -> None:
    """One running experiment per surface: a shopper's variant decides what they are served,
    and two overlapping experiments would each count exposures to the other's treatment."""
    for other in store.list(status="running"):
        if other.id == experiment_id:
            continue
        if surface is None or other.surface is None or other.surface == surface:
            where = f"surface {surface!r}" if surface == other.surface else "an overlapping surface"
            raise ApiError(
                409, "conflict", f"experiment {other.id!r} already runs on {where}; stop it first", "surface"
            )


def _transition(request: Request, experiment_id: str, action: str) -> ExperimentOut:
    store = request.app.state.experiments
    current = store.get(experiment_id)
    if current is None:
        raise NotFound("experiment", experiment_id)
    if action == "start":
        _check_surface_free(store, current.surface, experiment_id)
    try:
        exp = getattr(store, action)(experiment_id, datetime.now(UTC))
    except ValueError as err:
        raise ApiError(409, "conflict", str(err), "status") from err
    refresh_running(request)
    return experiment_out(store, exp)


@router.post(
    "/v1/experiments/{experiment_id}/start",
    response_model=ExperimentOut,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["experiments"],
    summary="Start a draft experiment",
)
def start_experiment(request: Request, experiment_id: ExperimentId) -> ExperimentOut:
    return _transition(request, experiment_id, "start")


@router.post(
    "/v1/experiments/{experiment_id}/stop",
    response_model=ExperimentOut,
    responses={**NOT_FOUND, **CONFLICT},
    tags=["experiments"],
    summary="Stop a running experiment",
)
def stop_experiment(request: Request, experiment_id: ExperimentId) -> ExperimentOut:
    return _transition(request, experiment_id, "stop")
