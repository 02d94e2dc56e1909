"""`shoploop report` writes a file Chromium renders offline (inline CSS + SVG); we screenshot it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.store.home import open_stores

pytestmark = pytest.mark.browser


def test_report_renders_in_chromium(page, tmp_path):
    home = tmp_path / "shop"
    bundle = generate_demo_store(DemoConfig(n_products=120, n_users=40, days=5, n_bots=0))
    with open_stores(home) as stores:
        import_records(bundle.products, bundle.events, stores, source="demo", progress=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--home", str(home), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    assert page.locator("section#kpis svg").count() >= 1, "KPI charts rendered"
    assert "KPIs over time per surface" in page.inner_text("body")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests
