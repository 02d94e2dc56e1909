"""Operations: liveness, readiness and Prometheus metrics (open, like most scrape targets)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from shoploop.api.deps import EngineDep
from shoploop.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz(engine: EngineDep) -> Health:
    return Health(
        status="ok", ready=engine.ready, products=len(engine.products), models=dict(engine.versions)
    )


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "models still loading"}},
    summary="Readiness: models loaded, safe to send traffic",
)
def readyz(engine: EngineDep) -> Response:
    body = Health(
        status="ready" if engine.ready else "starting",
        ready=engine.ready,
        products=len(engine.products),
        models=dict(engine.versions),
    )
    return JSONResponse(body.model_dump(), status_code=200 if engine.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
