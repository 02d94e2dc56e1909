"""`shoploop serve --catalog-feed URL`: the server imports the shop's feed at start, then again
whenever it changed, and serves the new catalog at once (new products found, dropped ones
gone), while a feed that fails to download leaves the catalog as it was."""

from __future__ import annotations

import time
from dataclasses import replace

from fastapi.testclient import TestClient

from shoploop.api import create_app
from tests.api.conftest import make_settings, wait_for
from tests.engine.conftest import FAST, make_engine
from tests.feed_server import FeedServer, rss_feed


def metric_values(client) -> dict[str, float]:
    lines = client.get("/metrics").text.splitlines()
    return {
        n: float(v)
        for n, _, v in (line.partition(" ") for line in lines if line.startswith("shoploop_catalog_feed"))
    }


def found(engine, query: str) -> list[str]:
    return [hit.item_id for hit in engine.search(query, k=5).items]


def test_the_server_keeps_its_catalog_in_step_with_the_feed(tmp_path):
    engine, _ = make_engine(replace(FAST, home=tmp_path), n_users=10)
    before = len(engine.stores.catalog)
    server = FeedServer(
        rss_feed(("feed-1", "Zanzibar teak garden bench"), ("feed-2", "Quokka copper kettle"))
    )
    settings = make_settings(catalog_feed=server.url, catalog_feed_seconds=0.2)
    try:
        with TestClient(create_app(engine, settings)) as client:
            job = client.app.state.catalog_feed
            assert wait_for(lambda: "feed-1" in found(engine, "zanzibar bench"))
            assert "feed-2" in found(engine, "quokka kettle")
            assert len(engine.stores.catalog) == before + 2  # added; the rest is not the feed's to drop
            assert job.last_sync.report.accepted == 2 and job.last_error is None
            scraped = metric_values(client)
            assert scraped["shoploop_catalog_feed_last_success_timestamp_seconds"] > time.time() - 60
            assert scraped["shoploop_catalog_feed_failures_total"] == 0
            assert scraped["shoploop_catalog_feed_products"] == 2
            assert "last import 2 products, 2 added or changed, 0 quarantined, 0 removed" in job.describe()
            requests = len(server.requests)
            assert wait_for(lambda: len(server.requests) >= requests + 2)  # asked again, 304 each time
            assert job.last_sync.report.accepted == 2  # an unchanged feed imports nothing
            # the shop renames a product in its feed: served under the new title
            server.body = rss_feed(
                ("feed-1", "Zanzibar teak garden bench"), ("feed-2", "Quokka enamel teapot")
            )
            assert wait_for(lambda: "feed-2" in found(engine, "quokka teapot"))
            # the feed's host goes away: logged, retried, and the catalog stays as it was
            server.close()
            assert wait_for(lambda: job.last_error is not None)
            assert "feed-1" in found(engine, "zanzibar bench")
            assert metric_values(client)["shoploop_catalog_feed_failures_total"] >= 1  # alertable
            # and the dashboard says so next to the retraining status
            client.cookies.set("sl_admin", "admin-key-1234")  # logged in to the dashboard
            page = client.get("/dashboard").text
            assert "catalog feed: " + server.url in page and "FAILING" in page
    finally:
        server.close()
    engine.stores.close()


def test_no_feed_no_job(tmp_path):
    engine, _ = make_engine(replace(FAST, home=tmp_path), n_users=5)
    with TestClient(create_app(engine, make_settings())) as client:
        job = client.app.state.catalog_feed
        assert job.source is None and job.task is None
        assert "shoploop_catalog_feed" not in client.get("/metrics").text
    engine.stores.close()
