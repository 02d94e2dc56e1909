"""`shoploop serve` / `shoploop report` wiring (the server itself is exercised by the browser tests)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shoploop.api.settings import ApiSettings, generate_demo_keys, parse_keys, settings_for_home
from shoploop.cli.main import app


def test_report_cli_fails_cleanly_without_a_shop(tmp_path):
    result = CliRunner().invoke(
        app, ["report", "--home", str(tmp_path / "none"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2 and "no shop" in result.output


def test_serve_is_registered():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--home", "--host", "--port", "--demo"):
        assert option in result.output


def test_demo_keys_are_generated_once_with_one_role_each(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_API_KEYS", raising=False)
    keys = generate_demo_keys(tmp_path)
    assert sorted(sorted(s) for s in keys.values()) == [["admin"], ["catalog"], ["events"], ["search"]]
    assert generate_demo_keys(tmp_path) == keys  # kept across restarts
    assert (tmp_path / "api_keys.json").stat().st_mode & 0o077 == 0
    settings = settings_for_home(tmp_path)
    assert settings.storefront_key is not None and keys[settings.storefront_key] == frozenset({"events"})


def test_env_keys_win(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPLOOP_API_KEYS", "abcdefgh1:search,events; zyxwvuts2:admin")
    settings = settings_for_home(tmp_path)
    assert settings.scopes_of("abcdefgh1") == {"search", "events"}
    assert settings.scopes_of("zyxwvuts2") == {"admin"}
    assert settings.scopes_of("nope") is None


@pytest.mark.parametrize("spec", ["short:search", "abcdefgh1:flying", "nocolon", "abcdefgh1:"])
def test_bad_key_specs_are_refused(spec):
    with pytest.raises(ValueError):
        ApiSettings(keys=parse_keys(spec))


def test_serve_passes_the_retention_schedule_to_the_app(tmp_path, monkeypatch):
    import uvicorn

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    result = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path), "--fast", "--retention-minutes", "0", "--port", "8765"]
    )
    assert result.exit_code == 0, result.output
    assert captured["port"] == 8765 and captured["host"] == "127.0.0.1"
    assert captured["app"].state.settings.retention_seconds == 0  # the server leaves it to cron
    again = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--fast"])
    assert again.exit_code == 0 and captured["app"].state.settings.retention_seconds == 3600
    bad = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--retention-minutes", "-5"])
    assert bad.exit_code == 2


def test_serve_allows_the_origins_it_is_given_and_refuses_a_url_with_a_path(tmp_path, monkeypatch):
    import uvicorn

    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    monkeypatch.setenv("SHOPLOOP_ALLOWED_ORIGINS", "https://from-env.example")
    base = ["serve", "--home", str(tmp_path), "--fast"]
    result = CliRunner().invoke(
        app, [*base, "--allow-origin", "https://WWW.shop.example/", "--allow-origin", "http://127.0.0.1:3000"]
    )
    assert result.exit_code == 0, result.output
    assert captured["app"].state.settings.allowed_origins == (
        "https://www.shop.example",
        "http://127.0.0.1:3000",
    )
    assert CliRunner().invoke(app, base).exit_code == 0
    assert captured["app"].state.settings.allowed_origins == ("https://from-env.example",)

    bad = CliRunner().invoke(app, [*base, "--allow-origin", "https://www.shop.example/search"])
    assert bad.exit_code == 2 and "--allow-origin" in bad.output and "no path" in bad.output
    monkeypatch.setenv("SHOPLOOP_ALLOWED_ORIGINS", "www.shop.example")
    bad_env = CliRunner().invoke(app, base)
    assert bad_env.exit_code == 2 and "allowed_origins" in bad_env.output
