"""The business report of a closed-loop simulation: each policy's money and service figures over the simulated days,
its profit with a 95% interval over seeds, paired differences against the passive shop (same seeds, same random
numbers), what each component adds, as JSON figures and one self-contained HTML file."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ml.html_report import png_tag
from ml.simulation.loop import PolicyRun

SUMS = (
    "gross_profit",
    "revenue",
    "cogs",
    "coupon_discount",
    "holding_cost",
    "delivery_cost",
    "demand_units",
    "sold_units",
    "lost_units",
    "orders",
    "sessions_lost",
    "rec_sessions",
    "rec_hit_sessions",
    "rec_units",
    "rec_revenue",
    "coupons_sent",
    "coupons_redeemed",
    "coupon_orders",
    "deliveries_due",
    "deliveries_on_time",
    "deliveries_late",
    "deliveries_unrouted",
    "delivery_km",
    "reorder_lines",
    "reorder_units",
)
ABLATIONS = {"no_recs": "recommendations", "no_coupons": "coupons", "no_inventory": "inventory plan"}


def run_figures(run: PolicyRun) -> dict[str, Any]:
    """One run's totals over its days, and the rates a reader compares (a rate of nothing is None)."""
    totals: dict[str, Any] = {}
    for key in SUMS:
        values = [day[key] for day in run.ledger]
        totals[key] = None if any(v is None for v in values) else round(float(np.sum(values)), 2)

    def share(part: str, whole: str) -> float | None:
        return None if totals[part] is None or not totals[whole] else round(totals[part] / totals[whole], 4)

    return totals | {
        "fill_rate": share("sold_units", "demand_units"),
        "on_time_share": share("deliveries_on_time", "deliveries_due"),
        "rec_hit_rate": share("rec_hit_sessions", "rec_sessions"),
        "redemption_rate": share("coupons_redeemed", "coupons_sent"),
        "cumulative_profit": np.cumsum([day["gross_profit"] for day in run.ledger]).round(2).tolist(),
        "seconds": run.seconds,
    }


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and two-sided 95% t-interval (no interval from one value)."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return {"mean": round(mean, 2), "ci95": None, "n": len(arr)}
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
    return {"mean": round(mean, 2), "ci95": [round(mean - half, 2), round(mean + half, 2)], "n": len(arr)}


def _paired(by_policy: dict[str, dict[int, dict[str, Any]]], a: str, b: str) -> dict[str, Any] | None:
    """Profit of ``a`` minus ``b`` on the seeds both ran (common random numbers make the pairs comparable)."""
    if a not in by_policy or b not in by_policy:
        return None
    seeds = sorted(set(by_policy[a]) & set(by_policy[b]))
    if not seeds:
        return None
    return interval([by_policy[a][s]["gross_profit"] - by_policy[b][s]["gross_profit"] for s in seeds]) | {"seeds": seeds}


def summarize(runs: list[PolicyRun], config: dict[str, Any]) -> dict[str, Any]:
    """Every run's figures, each policy's profit interval over seeds, the platform against the passive shop, and
    each component's contribution (the platform minus the ablation that removes it)."""
    by_policy: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        by_policy.setdefault(run.policy, {})[run.seed] = run_figures(run)
    policies = {}
    for name, seeds in by_policy.items():
        figures = list(seeds.values())
        policies[name] = {
            "seeds": sorted(seeds),
            "gross_profit": interval([f["gross_profit"] for f in figures]),
            **{key: _mean([f[key] for f in figures]) for key in (*SUMS[1:], "fill_rate", "on_time_share", "rec_hit_rate", "redemption_rate")},
        }
    contributions = {component: _paired(by_policy, "platform", ablation) for ablation, component in ABLATIONS.items()}
    coupons = contributions.get("coupons")
    spend = policies.get("platform", {}).get("coupon_discount")
    return {
        "config": config,
        "policies": policies,
        "platform_vs_passive": _paired(by_policy, "platform", "passive"),
        "contributions": contributions,
        "coupon_roi": None if not coupons or not spend else round(coupons["mean"] / spend, 3),
        "runs": [{"policy": p, "seed": s, **f} for p, seeds in by_policy.items() for s, f in sorted(seeds.items())],
    }


def _mean(values: list[Any]) -> float | None:
    return None if any(v is None for v in values) else round(float(np.mean(values)), 4)


def _money(value: dict[str, Any] | None) -> str:
    if value is None:
        return "not run"
    ci = value["ci95"]
    return f"{value['mean']:,.2f}" + (f" [{ci[0]:,.2f}, {ci[1]:,.2f}]" if ci else " (1 seed)")


def _figure(summary: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name in summary["policies"]:
        curves = [r["cumulative_profit"] for r in summary["runs"] if r["policy"] == name]
        ax.plot(np.arange(1, len(curves[0]) + 1), np.mean(curves, axis=0), label=name)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("cumulative gross profit (mean over seeds)")
    ax.legend()
    return png_tag(fig)


def html(summary: dict[str, Any]) -> str:
    """The report a shop owner opens."""
    columns = (
        ("gross profit [95% CI]", lambda p: _money(p["gross_profit"])),
        ("revenue", lambda p: f"{p['revenue']:,.2f}"),
        ("coupon discounts", lambda p: f"{p['coupon_discount']:,.2f}"),
        ("fill rate", lambda p: f"{p['fill_rate']:.2%}" if p["fill_rate"] is not None else "-"),
        ("lost units", lambda p: f"{p['lost_units']:,.0f}"),
        ("holding cost", lambda p: f"{p['holding_cost']:,.2f}"),
        ("order lines", lambda p: f"{p['reorder_lines']:,.0f}"),
        ("on time", lambda p: f"{p['on_time_share']:.2%}" if p["on_time_share"] is not None else "-"),
        ("km", lambda p: f"{p['delivery_km']:,.1f}" if p["delivery_km"] is not None else "-"),
        ("rec hit rate", lambda p: f"{p['rec_hit_rate']:.2%}" if p["rec_hit_rate"] is not None else "-"),
    )
    head = "".join(f"<th>{escape(c)}</th>" for c, _ in columns)
    rows = "".join(
        f"<tr><td>{escape(name)}</td>" + "".join(f"<td>{escape(fmt(p))}</td>" for _, fmt in columns) + "</tr>" for name, p in summary["policies"].items()
    )
    parts = [f"<tr><td>platform - passive</td><td>{escape(_money(summary['platform_vs_passive']))}</td></tr>"]
    parts += [f"<tr><td>{escape(component)}</td><td>{escape(_money(value))}</td></tr>" for component, value in summary["contributions"].items()]
    roi = summary["coupon_roi"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Closed-loop simulation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Closed-loop simulation: {escape(str(summary["config"].get("scale")))} shop, {summary["config"].get("days")} days</h1>
<p>Gross profit = revenue after every discount - cost of goods sold - holding cost - delivery cost. Policies were run on
the same seeds with common random numbers; intervals are 95% t-intervals over seeds.</p>
<table><tr><th>policy</th>{head}</tr>{rows}</table>
<h2>Differences in gross profit (paired by seed)</h2>
<table><tr><th>what</th><th>profit difference [95% CI]</th></tr>{"".join(parts)}</table>
<p>Coupon ROI (profit the coupons add per unit of discount paid): {"-" if roi is None else f"{roi:.2f}"}</p>
{_figure(summary)}
<h2>Configuration</h2><pre>{escape(json.dumps(summary["config"], indent=2))}</pre></body></html>"""


def write(summary: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``figures.json`` and ``report.html`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    figures, page = folder / "figures.json", folder / "report.html"
    figures.write_text(json.dumps(summary, indent=2))
    page.write_text(html(summary))
    return figures, page
