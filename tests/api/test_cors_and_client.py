"""A shop's own pages on another origin: CORS for allowed origins only, and the browser client script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import shoploop.api
from shoploop.api import ApiSettings, create_app
from shoploop.api.settings import ENV_ORIGINS, parse_origin, parse_origins, settings_for_home
from tests.api.conftest import SEARCH, make_client, make_settings
from tests.engine.conftest import make_engine

SHOP = "https://shop.example"


@pytest.mark.parametrize(
    ("given_text", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),  # browsers leave default ports out
        ("http://shop.example:80", "http://shop.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://shop.example:8443", "https://shop.example:8443"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("  *  ", "*"),
    ],
)
def test_origins_are_written_as_browsers_send_them(given_text, expected):
    assert parse_origin(given_text) == expected


@pytest.mark.parametrize(
    ("given_text", "says"),
    [
        ("shop.example", "expected http(s)://host"),
        ("ftp://shop.example", "expected http(s)://host"),
        ("https://shop.example/search", "no path"),
        ("https://shop.example?x=1", "no path"),
        ("https://admin@shop.example", "no user name"),
        ("https://shop.example:99999", "not an origin"),
        ("", "not an origin"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_the_reason(given_text, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_origin(given_text)


HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True)


@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "Https"]),
    host=HOSTS,
    port=st.none() | st.integers(1, 65535),
    slash=st.booleans(),
)
def test_a_parsed_origin_is_canonical(scheme, host, port, slash):
    text = f"{scheme}://{host.upper()}" + (f":{port}" if port is not None else "") + ("/" if slash else "")
    origin = parse_origin(text)
    assert parse_origin(origin) == origin  # idempotent: already in the browser's form
    assert origin == origin.lower() and not origin.endswith("/")
    assert origin.startswith(scheme.lower() + "://" + host)
    default = {"http": 80, "https": 443}[scheme.lower()]
    assert origin.endswith(f":{port}") == (port is not None and port != default)


@given(st.text(max_size=60))
def test_any_text_is_an_origin_or_a_value_error(text):
    try:
        origin = parse_origin(text)
    except ValueError:
        return
    assert origin == "*" or re.fullmatch(r"https?://[^/?#@\s]+", origin)


def test_settings_take_a_list_or_a_comma_separated_string_and_name_the_field():
    settings = ApiSettings(allowed_origins="https://a.example, http://b.example:8080/ https://a.example")
    assert settings.allowed_origins == ("https://a.example", "http://b.example:8080")
    assert parse_origins("https://a.example,https://A.example") == ("https://a.example",)
    with pytest.raises(ValidationError, match=re.escape("allowed_origins: 'https://a.example/x'")):
        ApiSettings(allowed_origins=["https://a.example/x"])


def test_the_environment_names_the_origins_unless_the_command_line_does(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_ORIGINS, "https://a.example")
    assert settings_for_home(tmp_path).allowed_origins == ("https://a.example",)
    assert settings_for_home(tmp_path, allowed_origins=["https://b.example"]).allowed_origins == (
        "https://b.example",
    )


@pytest.fixture(scope="module")
def cors():
    client, _, _ = make_client(allowed_origins=[SHOP])
    with client:
        yield client


def test_a_preflight_from_an_allowed_origin_is_answered(cors):
    answer = cors.options(
        "/v1/events",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "x-api-key" in allowed and "content-type" in allowed
    assert "access-control-allow-credentials" not in answer.headers  # keys travel in a header, never cookies


def test_a_preflight_from_another_origin_gets_no_permission(cors):
    answer = cors.options(
        "/v1/search",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


def test_writes_other_than_events_are_not_offered_to_browsers(cors):
    answer = cors.options("/v1/items/P1", headers={"Origin": SHOP, "Access-Control-Request-Method": "DELETE"})
    assert answer.status_code == 400


def test_answers_and_refusals_carry_the_header_so_the_page_can_read_why(cors):
    ok = cors.get("/v1/search", params={"q": "jacket"}, headers={**SEARCH, "Origin": SHOP})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == SHOP
    refused = cors.get("/v1/search", params={"q": "jacket"}, headers={"Origin": SHOP})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == SHOP
    assert refused.json()["error"]["field"] == "X-API-Key"
    other = cors.get(
        "/v1/search", params={"q": "jacket"}, headers={**SEARCH, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_without_allowed_origins_no_cors_header_is_sent(shared):
    client, _, _ = shared
    answer = client.get("/v1/search", params={"q": "jacket"}, headers={**SEARCH, "Origin": SHOP})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_the_client_script_is_served_with_an_etag_even_without_the_storefront():
    engine, _ = make_engine()
    with TestClient(create_app(engine, make_settings(storefront=False))) as client:
        assert client.get("/").status_code == 404  # no storefront pages
        script = client.get("/v1/client.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "root.Shoploop" in script.text and "keepalive" in script.text
        etag = script.headers["etag"]
        again = client.get("/v1/client.js", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        changed = client.get("/v1/client.js", headers={"If-None-Match": '"other"'})
        assert changed.status_code == 200
        types = client.get("/v1/client.d.ts")
        assert types.status_code == 200 and types.headers["content-type"].startswith("application/typescript")
        assert "declare namespace Shoploop" in types.text and types.headers["etag"] != etag
        unchanged = client.get("/v1/client.d.ts", headers={"If-None-Match": types.headers["etag"]})
        assert unchanged.status_code == 304


STATIC = Path(shoploop.api.__file__).parent / "static"


def _class_body(text: str, opening: str) -> str:
    start = text.index(opening)
    end = text.index("\n  }\n", start)  # the class's closing brace, at two spaces
    return text[start:end]


def test_the_typescript_declarations_name_every_client_method_and_no_other():
    script = _class_body((STATIC / "shoploop.js").read_text(), "  class Client {")
    offered = set(re.findall(r"^    (?:async )?(?:get )?([a-zA-Z]\w*)\(", script, re.MULTILINE))
    offered -= {"constructor"}
    fields = set(re.findall(r"^      this\.([a-zA-Z]\w*) = ", script, re.MULTILINE))
    declared = _class_body((STATIC / "shoploop.d.ts").read_text(), "  class Client {")
    methods = set(re.findall(r"^    ([a-zA-Z]\w*)\(", declared, re.MULTILINE)) - {"constructor"}
    readonly = set(re.findall(r"^    readonly ([a-zA-Z]\w*):", declared, re.MULTILINE))
    assert {"search", "browse", "click", "flush", "bind"} <= offered
    getters = set(re.findall(r"^    get ([a-zA-Z]\w*)\(", script, re.MULTILINE))
    assert methods == offered - getters, "every method the script offers is declared, and no other"
    assert readonly == getters | (readonly & fields), "read-only members are getters or fields it sets"
    assert getters <= readonly
