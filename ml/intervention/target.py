"""Tomorrow's targeting with the champion: score every active customer at the end of ds, drop those contacted
within the fatigue window, choose at most one action each under the budget and caps, and replace ds in
``interventions(ds, customer_id, action, expected_uplift, expected_profit, expected_spend, propensity, reason,
model_version)`` (lake outputs zone and serving store at once). A summary goes beside the rows."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from ml import contract
from ml.errors import EcomError
from ml.intervention import io, optimize, train
from ml.intervention.model import Economics, InterventionModel
from ml.intervention.train import InterventionConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

COLUMNS = tuple(contract.table(io.TABLE).column_names)
UNSEGMENTED = "unsegmented"


def recently_contacted(settings: Settings, campaigns: pd.DataFrame, ds: dt.date, fatigue_days: int) -> set[str]:
    """Customers sent an action within ``fatigue_days`` before the plan moment: by a campaign (rows land when
    their outcome window closes, so the newest sends come from our own earlier targeting) or by an earlier day's
    interventions."""
    moment = train.action_moment(ds)
    sent = campaigns[(campaigns["treatment"] != contract.CONTROL) & (campaigns["sent_ts"] >= moment - pd.Timedelta(days=fatigue_days))]
    return set(sent["customer_id"]) | io.targeted_since(settings, ds, fatigue_days)


def segment_filter(scores: pd.DataFrame, segments: pd.DataFrame | None, config: InterventionConfig, ds: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Each scored customer's segment name ("unsegmented" when customer_segments has none for them) and whether
    the ``segments`` Param lets them be targeted; a clear error when the Params need segments ds does not have."""
    if segments is None:
        if config.segments or config.segment_cap is not None:
            raise EcomError(f"interventions ds={ds}: the segments / segment_cap Params need customer_segments for {ds}; run ecom_segments for that day first")
        return np.full(len(scores), UNSEGMENTED, dtype=object), np.ones(len(scores), dtype=bool)
    by_customer = segments.set_index("customer_id")
    names = by_customer["segment_name"].reindex(scores["customer_id"]).fillna(UNSEGMENTED).to_numpy(dtype=object)
    if not config.segments:
        return names, np.ones(len(scores), dtype=bool)
    known = set(by_customer["segment_name"]) | set(by_customer["segment"].astype(str))
    unknown = sorted(set(config.segments) - known)
    if unknown:
        raise EcomError(
            f"interventions ds={ds}: segments {unknown} are not in customer_segments for {ds} (segments: {sorted(set(by_customer['segment_name']))})"
        )
    numbers = by_customer["segment"].astype(str).reindex(scores["customer_id"]).to_numpy(dtype=object)
    wanted = set(config.segments)
    return names, np.array([n in wanted or m in wanted for n, m in zip(names, numbers, strict=True)])


def choose_actions(
    scores: pd.DataFrame,
    bundle: InterventionModel,
    economics: Economics,
    limits: optimize.Limits,
    eligible: np.ndarray,
    config: InterventionConfig,
    segments: np.ndarray,
) -> tuple[pd.DataFrame, optimize.Assignment]:
    """The chosen (customer, action) rows with their expected figures, segment and a reason a marketer can read
    (``segments``: each scored customer's segment name, which ``limits.segment_cap`` applies to)."""
    uplift = {a: scores[f"uplift_{a}"].to_numpy() for a in bundle.actions}
    profit, spend = economics.of(scores["p_control"].to_numpy(), uplift)
    chosen = optimize.assign(profit, spend, limits, eligible, time_limit_s=config.time_limit_s, groups=segments)
    rows = np.flatnonzero(chosen.choice != optimize.NONE)
    cols = chosen.choice[rows]
    actions = np.asarray(bundle.actions)[cols]
    out = pd.DataFrame(
        {
            "customer_id": scores["customer_id"].to_numpy()[rows],
            "action": actions,
            "expected_uplift": np.column_stack(list(uplift.values()))[rows, cols],
            "expected_profit": profit[rows, cols],
            "expected_spend": spend[rows, cols],
            "propensity": scores["propensity"].to_numpy()[rows],
            "p_control": scores["p_control"].to_numpy()[rows],
            "segment": segments[rows],
        }
    )
    out["reason"] = (
        out["action"]
        + ": +"
        + (100 * out["expected_uplift"]).round(1).astype(str)
        + " pp chance to buy within "
        + str(config.window_days)
        + " days on a "
        + (100 * out["p_control"]).round(1).astype(str)
        + "% baseline; expected profit "
        + out["expected_profit"].round(2).astype(str)
        + " for "
        + out["expected_spend"].round(2).astype(str)
        + " of budget"
    )
    return out.drop(columns="p_control").sort_values("expected_profit", ascending=False, ignore_index=True), chosen


def target_day(settings: Settings, ds: dt.date, config: InterventionConfig, version: str) -> dict:
    """Score and optimise ds's interventions with champion ``version`` and stage them for ``publish``; returns the
    day's summary."""
    t0 = time.perf_counter()
    bundle = train.load_bundle(settings, f"models:/{train.MODEL_NAME}/{version}")
    if bundle.actions != config.actions:
        log.warning("the champion scores actions %s, not the configured %s: planning the champion's", bundle.actions, config.actions)
    tables = train.load_tables(settings, ds, config)
    features = tables.features(train.action_moment(ds), config.lookback_days)
    scores = bundle.score(features)
    contacted = recently_contacted(settings, tables.campaigns, ds, config.fatigue_days)
    segment_names, in_segments = segment_filter(scores, io.load_segments(settings, ds), config, ds)
    fatigued = scores["customer_id"].isin(contacted).to_numpy()
    eligible = ~fatigued & in_segments
    economics = replace(bundle.economics, contact_cost=config.contact_cost, margin=bundle.economics.margin if config.margin is None else config.margin)
    caps = config.caps_per_action() if bundle.actions == config.actions else (None,) * len(bundle.actions)
    limits = optimize.Limits(config.budget, caps, config.segment_cap)
    rows, chosen = choose_actions(scores, bundle, economics, limits, eligible, config, segment_names)
    frame = rows.assign(ds=ds.isoformat(), model_version=str(version))[list(COLUMNS)]
    written = len(frame)
    summary = {
        "ds": ds.isoformat(),
        "model_version": str(version),
        "customers_scored": len(scores),
        "eligible": int(eligible.sum()),
        "fatigued": int(fatigued.sum()),
        "outside_segments": int((~in_segments).sum()),
        "rows": written,
        "per_action": {a: int((frame["action"] == a).sum()) for a in bundle.actions},
        "expected_profit": float(frame["expected_profit"].sum()),
        "expected_spend": float(frame["expected_spend"].sum()),
        "budget": config.budget,
        "caps": list(caps),
        "segment_cap": config.segment_cap,
        "per_segment": {
            str(name): {
                "customers": len(group),
                "expected_spend": float(group["expected_spend"].sum()),
                "expected_profit": float(group["expected_profit"].sum()),
            }
            for name, group in rows.groupby("segment")
        },
        "solver_status": chosen.status,
        "mip_gap": chosen.gap,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    io.stage(settings, ds, frame)
    log.info(
        "interventions ds=%s planned: %d of %d eligible customers get an action %s; expected profit %.2f for %.2f of %.2f budget (%s)",
        summary["ds"],
        written,
        summary["eligible"],
        summary["per_action"],
        summary["expected_profit"],
        summary["expected_spend"],
        config.budget,
        chosen.status,
    )
    return summary


def publish(settings: Settings, ds: dt.date, summary: dict) -> dict:
    """Replace ds's interventions with what ``target_day`` staged; returns the summary."""
    io.publish(settings, ds, summary)
    return summary
