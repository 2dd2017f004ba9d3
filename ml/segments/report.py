"""The segment report a marketer opens: segment sizes, the RFM heatmap, each segment's profile, and how the
segments' shares and lapse risk moved over the earlier days, as one self-contained HTML file."""

from __future__ import annotations

import datetime as dt
from html import escape

import pandas as pd

from ml.html_report import png_tag


def _figures(segments: pd.DataFrame, profiles: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s}: {n}" for s, n in zip(profiles["segment"], profiles["segment_name"], strict=True)]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(profiles) + 1.2))
    ax.barh(labels, profiles["customers"])
    ax.set_xlabel("customers")
    ax.set_title("Segment sizes")
    sizes = png_tag(fig)

    grid = segments.pivot_table(index="r", columns="f", values="m", aggfunc="size", fill_value=0).reindex(
        index=range(5, 0, -1), columns=range(1, 6), fill_value=0
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    image = ax.imshow(grid.to_numpy(), cmap="viridis")
    ax.set_xticks(range(5), grid.columns)
    ax.set_yticks(range(5), grid.index)
    ax.set_xlabel("frequency quintile (F)")
    ax.set_ylabel("recency quintile (R)")
    ax.set_title("Customers by R and F")
    fig.colorbar(image, ax=ax, label="customers")
    heatmap = png_tag(fig)

    over_time = history.assign(ds=pd.to_datetime(history["ds"]))
    share = over_time.assign(share=over_time["customers"] / over_time.groupby("ds")["customers"].transform("sum"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for segment, rows in share.sort_values("ds").groupby("segment"):
        axes[0].plot(rows["ds"], rows["share"], marker=".", label=str(segment))
        axes[1].plot(rows["ds"], rows["churn_risk"], marker=".", label=str(segment))
    axes[0].set_title("Share of customers")
    axes[1].set_title("Mean lapse risk")
    axes[1].legend(title="segment", fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return [sizes, heatmap, png_tag(fig)]


def html(ds: dt.date, segments: pd.DataFrame, profiles: pd.DataFrame, history: pd.DataFrame) -> str:
    """The report for ds; ``history`` holds ds's profiles and earlier days'."""
    sizes, heatmap, trends = _figures(segments, profiles, history)
    table = profiles.drop(columns="ds").to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)
    days = history["ds"].nunique()
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Customer segments {ds}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{padding:4px 8px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>Customer segments, {escape(ds.isoformat())}</h1>
<p>{len(segments):,} customers active in the lookback, in {len(profiles)} segments. Churn risk is the mean lapse risk: the chance that
a customer still visiting at their own rate would have come back since their last visit.</p>
{table}
<h2>Sizes</h2>{sizes}
<h2>RFM</h2>{heatmap}
<h2>Over the last {days} published day(s)</h2>{trends}
</body></html>"""
