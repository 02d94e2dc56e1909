"""Who may use the dashboard, and how its form posts answer: shared by the dashboard's panels.

Access needs an admin key, entered once and kept in an HttpOnly, SameSite=Strict cookie (so
other sites cannot post the dashboard's forms).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from shoploop.api.settings import ApiSettings

ADMIN_COOKIE = "sl_admin"


def is_admin(request: Request) -> bool:
    settings: ApiSettings = request.app.state.settings
    key = request.cookies.get(ADMIN_COOKIE)
    scopes = settings.scopes_of(key) if key else None
    return scopes is not None and "admin" in scopes


def back(message: str, ok: bool = True) -> RedirectResponse:
    return RedirectResponse(f"/dashboard?{'msg' if ok else 'err'}={quote(message)}", status_code=303)


def login_page(request: Request, error: str | None = None) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "dashboard_login.html", {"error": error}, status_code=401 if error else 200
    )
