"""Open Bandit Dataset (ZOZOTOWN, CC BY 4.0), small sample.

Layout: `<policy>/<campaign>/<campaign>.csv` with columns
timestamp, item_id, position (1-based), click, propensity_score, user_feature_0..3
(hashed categoricals), user-item_affinity_0..n; plus `item_context.csv`
(item_id, item_feature_0 numeric, item_feature_1..3 hashed categoricals).

`read_obd` mirrors the Open Bandit Pipeline's pre-processing so estimates are
comparable with the published ones: context = one-hot user features (first level
dropped), action context = label-encoded categorical item features + item_feature_0,
position made 0-based. Each logged row is one (item, slot) decision; the rows of one
screen are not linked in the file, so `load_obd` turns each row into its own
one-item impression (and a click when click = 1).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from shoploop.data.datasets._common import require_columns, require_file
from shoploop.data.datasets.types import BanditLog, DatasetBundle
from shoploop.domain import ClickEvent, Event, ImpressionEvent, Product, ShownItem

LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
ITEM_COLUMNS = ("item_id", "item_feature_0")


def _paths(directory: Path, policy: str, campaign: str) -> tuple[Path, Path]:
    base = Path(directory) / policy / campaign
    log = require_file(base / f"{campaign}.csv", f"OBD {policy}/{campaign} log")
    items = require_file(base / "item_context.csv", f"OBD {policy}/{campaign} item context")
    return log, items


def _read(directory: Path, policy: str, campaign: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if policy not in ("random", "bts"):
        raise ValueError(f"OBD policy must be 'random' or 'bts', got {policy!r}")
    log_path, item_path = _paths(directory, policy, campaign)
    log = pd.read_csv(log_path, index_col=0)
    require_columns(log, LOG_COLUMNS, log_path)
    items = pd.read_csv(item_path, index_col=0)
    require_columns(items, ITEM_COLUMNS, item_path)
    return log, items.sort_values("item_id").reset_index(drop=True)


def read_obd(
    directory: Path,
    policy: Literal["random", "bts"],
    campaign: str = "men",
    *,
    include_affinity: bool = False,
) -> BanditLog:
    """The logged feedback as arrays (see `BanditLog`); `include_affinity` appends the
    user-item affinity columns to the one-hot user features."""
    log, items = _read(directory, policy, campaign)
    user_cols = [c for c in log.columns if c.startswith("user_feature")]
    context_frame = pd.get_dummies(log[user_cols].astype(str), drop_first=True, dtype=float)
    if include_affinity:
        affinity_cols = [c for c in log.columns if c.startswith("user-item_affinity")]
        context_frame = pd.concat([context_frame, log[affinity_cols].astype(float)], axis=1)
    cat_cols = [c for c in items.columns if c.startswith("item_feature") and c != "item_feature_0"]
    # Label codes in sorted-category order, which is what sklearn's LabelEncoder gives obp.
    encoded = {c: pd.Categorical(items[c].astype(str)).codes.astype(float) for c in cat_cols}
    action_context = np.column_stack(
        [*(encoded[c] for c in cat_cols), items["item_feature_0"].to_numpy(float)]
    )
    n_actions = int(items["item_id"].max()) + 1
    if n_actions != len(items):
        raise ValueError(f"item_context.csv: item ids are not 0..{len(items) - 1}")
    positions = log["position"].to_numpy(int)
    if positions.min() < 1:
        raise ValueError("position column is expected to be 1-based")
    timestamps = (
        pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
        .dt.tz_convert(None)
        .to_numpy("datetime64[us]")
    )
    return BanditLog(
        action=log["item_id"].to_numpy(int),
        position=positions - 1,
        reward=log["click"].to_numpy(float),
        pscore=log["propensity_score"].to_numpy(float),
        context=context_frame.to_numpy(float),
        action_context=action_context,
        n_actions=n_actions,
        len_list=int(positions.max()),
        timestamp=timestamps,
        policy=policy,
        campaign=campaign,
        context_names=list(context_frame.columns),
    )


def load_obd(
    directory: Path, *, policy: Literal["random", "bts"] = "random", campaign: str = "men"
) -> DatasetBundle:
    """Items as Products ("obd-<id>") + one impression (and maybe one click) per logged row.

    OBD has no user ids; each row gets its own anonymous user so no synthetic user looks
    like a bot. The logged propensity becomes the shown item's propensity.
    """
    log, items = _read(directory, policy, campaign)
    products = []
    for row in items.to_dict("records"):
        attributes = {
            k: (float(v) if k == "item_feature_0" else str(v)) for k, v in row.items() if k != "item_id"
        }
        products.append(
            Product(
                item_id=f"obd-{int(row['item_id'])}",
                title=f"ZOZOTOWN item {int(row['item_id'])}",
                category_path=("Fashion", campaign),
                attributes=attributes,
            )
        )
    stamps = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601")
    events: list[Event] = []
    cols = zip(
        log.index, stamps, log["item_id"], log["position"], log["click"], log["propensity_score"], strict=True
    )
    for row_id, ts, item, position, click, pscore in cols:
        request_id = f"obd-{policy}-{campaign}-{row_id}"
        user = f"obd-{policy}-{row_id}"
        item_id = f"obd-{int(item)}"
        when = ts.to_pydatetime()
        events.append(
            ImpressionEvent(
                event_id=f"{request_id}:impression",
                user_id=user,
                timestamp=when,
                request_id=request_id,
                surface="home",
                items=(
                    ShownItem(item_id=item_id, position=int(position), propensity=min(1.0, float(pscore))),
                ),
                policy=f"obd-{policy}",
            )
        )
        if int(click):
            events.append(
                ClickEvent(
                    event_id=f"{request_id}:click",
                    user_id=user,
                    timestamp=when + timedelta(seconds=1),
                    item_id=item_id,
                    request_id=request_id,
                    position=int(position),
                )
            )
    return DatasetBundle(
        products=products, events=events, name="obd", notes={"policy": policy, "campaign": campaign}
    )
