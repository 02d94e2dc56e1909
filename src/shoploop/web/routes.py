"""Mounts the storefront, the dashboard and their local static files on an API app."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape


def templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("shoploop.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda v: "" if v is None else f"${v:,.2f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v: "–" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")
    return Jinja2Templates(env=env)


def mount_web(app: FastAPI) -> None:
    from shoploop.web import dashboard, privacy_panel, storefront

    app.state.templates = templates()
    static_dir = resources.files("shoploop.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    app.include_router(storefront.router)
    app.include_router(dashboard.router)
    app.include_router(privacy_panel.router)
