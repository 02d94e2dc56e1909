"""`GET /v1/client.js`: the browser client a shop includes in its own pages, and
`GET /v1/client.d.ts`: its TypeScript declarations.

Served by the API itself (storefront on or off), so the script a page loads always speaks the
API version of the server that answers it. Each file is read once, and sent with an ETag so a
browser revalidates cheaply instead of downloading it again.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Response

router = APIRouter(tags=["operations"])


@cache
def static_file(name: str) -> tuple[bytes, str]:
    """A file of `shoploop/api/static`: its bytes and their ETag."""
    body = resources.files("shoploop.api").joinpath(f"static/{name}").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:24] + '"'


def _cached(name: str, media_type: str, if_none_match: str | None) -> Response:
    body, etag = static_file(name)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    if if_none_match is not None and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/v1/client.js",
    summary="JavaScript client for a shop's own pages",
    description=(
        "Search, suggestions, recommendations and event tracking from the browser, with the "
        "request_id and position of each list kept for you. See docs/api.md, 'Your own pages'."
    ),
    response_class=Response,
    responses={200: {"content": {"text/javascript": {}}}, 304: {"description": "unchanged"}},
)
def client_js(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return _cached("shoploop.js", "text/javascript; charset=utf-8", if_none_match)


@router.get(
    "/v1/client.d.ts",
    summary="TypeScript declarations of the JavaScript client",
    description=(
        "Save next to a TypeScript front end's sources: `window.Shoploop` and the API's lists, typed."
    ),
    response_class=Response,
    responses={200: {"content": {"application/typescript": {}}}, 304: {"description": "unchanged"}},
)
def client_types(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return _cached("shoploop.d.ts", "application/typescript; charset=utf-8", if_none_match)
