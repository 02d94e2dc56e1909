"""`Annotated` dependencies: the engine, the settings, the live state, and scope checks.

They are `async def` although they never await: FastAPI runs a plain `def` dependency in
its threadpool, i.e. one thread hand-off per dependency per request, and these only read
app state.

Auth: a key in `X-API-Key` (or `Authorization: Bearer <key>`). 401 = no key or a key we do
not know; 403 = a known key without the route's scope. `admin` holds every scope. Reads
(search, recommendations, product lookups) need no key when `public_reads` is on, but a
key that *is* sent must be valid, so a typo never silently downgrades a client to anonymous.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shoploop.api.errors import ApiError
from shoploop.api.live import LiveStats
from shoploop.api.settings import ApiSettings
from shoploop.engine import Engine

_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key with the route's scope")
_bearer = HTTPBearer(auto_error=False, description="the same API key as a bearer token")


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_live(request: Request) -> LiveStats:
    return request.app.state.live


async def get_experiments(request: Request) -> Any:
    return request.app.state.experiments


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
LiveDep = Annotated[LiveStats, Depends(get_live)]
ExperimentsDep = Annotated[Any, Depends(get_experiments)]


def _check(settings: ApiSettings, key: str | None, scope: str, *, open_read: bool) -> frozenset[str]:
    if not key:
        if open_read:
            return frozenset()
        raise ApiError(
            401,
            "unauthorized",
            f"this route needs an API key with scope '{scope}' in the X-API-Key header",
            "X-API-Key",
            {"WWW-Authenticate": "ApiKey"},
        )
    scopes = settings.scopes_of(key)
    if scopes is None:
        raise ApiError(401, "unauthorized", "unknown API key", "X-API-Key", {"WWW-Authenticate": "ApiKey"})
    if scope not in scopes and "admin" not in scopes:
        raise ApiError(
            403, "forbidden", f"this key lacks scope '{scope}' (it has: {', '.join(sorted(scopes))})"
        )
    return scopes


def require(scope: str, *, read: bool = False) -> Any:
    """A dependency that admits a request holding `scope`; `read=True` honours public_reads."""

    async def dependency(
        request: Request,
        header_key: Annotated[str | None, Security(_key_header)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> frozenset[str]:
        settings: ApiSettings = request.app.state.settings
        key = header_key or (bearer.credentials if bearer else None)
        return _check(settings, key, scope, open_read=read and settings.public_reads)

    dependency.__name__ = f"require_{scope}"
    return Depends(dependency)


ReadAuth = require("search", read=True)
EventsAuth = require("events")
CatalogAuth = require("catalog")
AdminAuth = require("admin")
