"""The dashboard's privacy panel: whether shopper ids are pseudonymised, the retention policy
and its last run (with a form to change it), and a shopper's data on request — downloaded as
the same JSON document as `GET /v1/users/{id}/data`, or erased after the id is typed twice.

The same admin cookie as the rest of the dashboard guards it; every action is a plain form
post or link, handled with the same engine and `shoploop.privacy` calls as the API and CLI.
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from shoploop.engine import Engine, InvalidRequest
from shoploop.privacy.pseudonymize import KEY_ENV, KEY_FILE
from shoploop.privacy.retention import (
    POLICY_FILENAME,
    RetentionPolicy,
    RetentionPolicyError,
    days_from_text,
    load_policy,
    parse_type_days,
    save_policy,
)
from shoploop.web.dashboard_auth import back, is_admin, login_page

router = APIRouter(prefix="/dashboard", include_in_schema=False)

UserField = Annotated[str, Form(min_length=1, max_length=200)]


def privacy_context(request: Request) -> dict[str, Any]:
    """What the panel shows: pseudonymisation, the policy (or why it cannot be read), the last
    retention round of this server."""
    engine: Engine = request.app.state.engine
    home = engine.stores.home
    if engine.pseudonymize is None:
        pseudonyms = None
    else:
        pseudonyms = f"${KEY_ENV}" if os.environ.get(KEY_ENV) else f"{KEY_FILE} in the shop's home"
    policy, policy_error = None, None
    if home is not None:
        try:
            policy = load_policy(home)
        except ValueError as err:  # a hand edit the server refuses to apply; say so here
            policy_error = f"{POLICY_FILENAME}: {err}"
    job = getattr(request.app.state, "retention", None)
    report = getattr(job, "last_report", None)
    return {
        "pseudonyms": pseudonyms,
        "has_home": home is not None,
        "policy": policy,
        "policy_error": policy_error,
        "per_type_text": "\n".join(f"{t}={d:g}" for t, d in policy.per_type.items()) if policy else "",
        "warnings": policy.warnings() if policy else [],
        "every_minutes": job.interval_seconds / 60 if job is not None and job.interval_seconds > 0 else None,
        "last_report": report,
    }


@router.get("/shopper")
def shopper_data(request: Request, user_id: Annotated[str, Query(min_length=1, max_length=200)]) -> Response:
    """The access document as a file to hand to the shopper."""
    if not is_admin(request):
        return login_page(request, "Log in again.")
    try:
        doc = request.app.state.engine.export_user(user_id, experiments=request.app.state.experiments)
    except InvalidRequest as exc:
        return back(f"no data exported: {exc.reason}", ok=False)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", user_id)[:80] or "shopper"
    return Response(
        json.dumps(doc, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="shopper-{safe}.json"'},
    )


@router.post("/shopper/erase")
def erase_shopper(
    request: Request, user_id: UserField, confirm: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    if not is_admin(request):
        return login_page(request, "Log in again.")
    if confirm.strip() != user_id.strip():
        # Erasure cannot be undone: the id typed twice is the "are you sure".
        return back("nothing erased: type the shopper's id again in the second box to confirm", ok=False)
    try:
        receipt = request.app.state.engine.delete_user(user_id, experiments=request.app.state.experiments)
    except InvalidRequest as exc:
        return back(f"nothing erased: {exc.reason}", ok=False)
    return back(
        f"erased {user_id}: {receipt['events_deleted']} events, {receipt['quarantined_rows_deleted']} "
        f"quarantined rows, {receipt.get('experiment_exposures_deleted') or 0} experiment exposures "
        "and their profile; the next retrain no longer sees them"
    )


@router.post("/retention")
def save_retention(
    request: Request,
    events_days: Annotated[str, Form(max_length=50)] = "",
    quarantine_days: Annotated[str, Form(max_length=50)] = "",
    per_type: Annotated[str, Form(max_length=5_000)] = "",
) -> Response:
    if not is_admin(request):
        return login_page(request, "Log in again.")
    home = request.app.state.engine.stores.home
    if home is None:
        return back("retention not saved: this shop keeps its data in memory only", ok=False)
    try:
        policy = RetentionPolicy(
            events_days=days_from_text(events_days, "events_days"),  # empty: kept forever
            quarantine_days=days_from_text(quarantine_days, "quarantine_days"),
            per_type=parse_type_days(line for line in per_type.splitlines() if line.strip()),
        )
    except RetentionPolicyError as err:
        return back(f"retention not saved: {err}", ok=False)
    save_policy(home, policy)
    if policy.keeps_everything:
        return back("retention policy saved: everything is kept")
    job = getattr(request.app.state, "retention", None)
    if job is not None and job.interval_seconds > 0:
        when = f"by this server within {job.interval_seconds / 60:g} minutes"
    else:
        when = "by the next `shoploop retention apply`"
    return back(f"retention policy saved; applied {when}")
