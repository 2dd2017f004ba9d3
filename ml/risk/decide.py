"""The day's decisions: score ds's orders with the champion, hold or review the highest scores within the review
budget, say why in words, and publish ``order_risk``. Routing leaves held orders out."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd

from ml import contract
from ml.risk import data, evaluate, io
from ml.risk.pipeline import RiskConfig
from ml.risk.train import MODEL_NAME, load_model
from ml.settings import Settings

log = logging.getLogger(__name__)
COLUMNS = contract.OUTPUTS["order_risk"].column_names


def decisions(scores: np.ndarray, budget: int, hold_score: float) -> np.ndarray:
    """pass, review or hold: the ``budget`` highest scores are checked, and those at or above ``hold_score`` are
    held until the check clears them."""
    out = np.full(len(scores), "pass", dtype=object)
    checked = evaluate.flagged(np.zeros(len(scores)), scores, budget)
    out[checked] = np.where(scores[checked] >= hold_score, "hold", "review")
    return out


def decide_day(settings: Settings, ds: dt.date, config: RiskConfig, version: str) -> dict:
    """Score the orders placed on ds (features from the ``GRAPH_DAYS`` before) and publish their decisions."""
    day = pd.Timestamp(ds, tz="UTC")
    tables = io.load_tables(settings, ds - dt.timedelta(days=data.GRAPH_DAYS), ds)
    features = data.order_features(tables["orders"], tables["items"], tables["customers"], [day])
    model = load_model(settings, f"models:/{MODEL_NAME}/{version}")
    scores = np.asarray(model.score(features), dtype=float) if len(features) else np.zeros(0)
    frame = pd.DataFrame(
        {
            "ds": day,
            "order_id": features["order_id"],
            "score": scores,
            "decision": decisions(scores, config.review_budget, config.hold_score),
            "reasons": model.reasons(features) if len(features) else [],
            "model_version": version,
        }
    )[COLUMNS]
    rows = io.publish(settings, ds, frame)
    counts = frame["decision"].value_counts().to_dict()
    log.info("order risk for %s: %d orders, %s (model v%s)", ds, rows, counts, version)
    return {"ds": ds.isoformat(), "rows": rows, "version": version, **{d: int(counts.get(d, 0)) for d in ("pass", "review", "hold")}}
