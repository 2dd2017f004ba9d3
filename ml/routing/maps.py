"""Route pictures: GeoJSON features along the roads actually driven, an HTML map (folium) and a PNG."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ml.routing.graph import RoadNetwork
from ml.routing.matrix import TravelMatrix

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"]


def route_features(routes: pd.DataFrame, road: RoadNetwork, matrix: TravelMatrix, fastest: dict, positions: pd.Series) -> list[dict]:
    """One LineString per vehicle following the road geometry of every leg, and one Point per stop."""
    features = []
    for vehicle, stops in routes.groupby("vehicle_id", sort=True):
        stops = stops.sort_values("stop_seq")
        pos = positions.loc[stops.index].to_numpy()
        line: list[list[float]] = []
        for a, b in itertools.pairwise(pos):
            rows = [row for _, _, row in matrix.path_edges(int(a), int(b), fastest)]
            for part in road.edge_geometry(np.asarray(rows, dtype=np.int64)):
                line.extend(part.round(6).tolist())
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "properties": {
                    "kind": "route",
                    "vehicle_id": vehicle,
                    "depot_id": stops["depot_id"].iloc[0],
                    "stops": int(stops["order_id"].notna().sum()),
                    "km": round(stops["leg_metres"].sum() / 1000, 2),
                    "hours": round(stops["leg_seconds"].sum() / 3600, 2),
                },
            }
        )
        for stop in stops.itertuples():
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [round(stop.lon, 6), round(stop.lat, 6)]},
                    "properties": {
                        "kind": "depot" if stop.order_id is None else "stop",
                        "vehicle_id": vehicle,
                        "order_id": stop.order_id,
                        "stop_seq": int(stop.stop_seq),
                        "eta": str(stop.eta),
                        "window": "" if pd.isna(stop.window_start) else f"{stop.window_start:%H:%M}-{stop.window_end:%H:%M}",
                    },
                }
            )
    return features


def coloured(features: list[dict]) -> dict:
    """A FeatureCollection with one colour per vehicle over the whole day (every depot)."""
    vehicles = sorted({f["properties"]["vehicle_id"] for f in features})
    colour = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(vehicles)}
    return {
        "type": "FeatureCollection",
        "features": [{**f, "properties": {**f["properties"], "color": colour[f["properties"]["vehicle_id"]]}} for f in features],
    }


def html_map(collection: dict, path: Path) -> None:
    """An interactive map: one coloured line per vehicle, a marker per stop with its order, ETA and window."""
    import folium

    points = [f["geometry"]["coordinates"] for f in collection["features"] if f["geometry"]["type"] == "Point"]
    center = np.mean(points, axis=0)[::-1].tolist() if points else [0.0, 0.0]
    fmap = folium.Map(location=center, zoom_start=14, tiles="OpenStreetMap")
    for feature in collection["features"]:
        props = feature["properties"]
        if props["kind"] == "route":
            folium.GeoJson(
                feature,
                style_function=lambda f: {"color": f["properties"]["color"], "weight": 4, "opacity": 0.8},
                tooltip=f"{props['vehicle_id']}: {props['stops']} stops, {props['km']} km, {props['hours']} h",
            ).add_to(fmap)
        else:
            lon, lat = feature["geometry"]["coordinates"]
            text = (
                props["vehicle_id"]
                if props["kind"] == "depot"
                else (
                    f"{props['vehicle_id']} #{props['stop_seq']}: order {props['order_id']}, ETA {props['eta'][11:16]}"
                    + (f", window {props['window']}" if props["window"] else "")
                )
            )
            folium.CircleMarker([lat, lon], radius=6 if props["kind"] == "depot" else 4, color=props["color"], fill=True, tooltip=text).add_to(fmap)
    kinds = [f["properties"]["kind"] for f in collection["features"]]
    fmap.get_root().html.add_child(  # type: ignore[attr-defined]  # the root is a folium Figure, typed as its base Element
        folium.Element(
            f"<div style='position:fixed;bottom:10px;left:10px;z-index:999;background:white;"
            f"padding:4px'>{kinds.count('route')} routes, {kinds.count('stop')} deliveries</div>"
        )
    )
    fmap.save(str(path))


def png_map(collection: dict, path: Path, road: RoadNetwork | None = None) -> None:
    """A static picture of the routes (lon/lat axes) over the roads around them, for review and reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
    points = [
        c for f in collection["features"] for c in (f["geometry"]["coordinates"] if f["properties"]["kind"] == "route" else [f["geometry"]["coordinates"]])
    ]
    if road is not None and points:
        (west, south), (east, north) = np.min(points, axis=0) - 0.005, np.max(points, axis=0) + 0.005
        nodes = road.nodes
        inside = set(nodes.index[(nodes["x"].between(west, east)) & (nodes["y"].between(south, north))])
        rows = np.flatnonzero(road.edges["u"].isin(inside).to_numpy())
        ax.add_collection(LineCollection(road.edge_geometry(rows), colors="#cccccc", linewidths=0.5, zorder=0))
    for feature in collection["features"]:
        props, coords = feature["properties"], np.asarray(feature["geometry"]["coordinates"])
        if props["kind"] == "route" and len(coords):
            ax.plot(coords[:, 0], coords[:, 1], color=props["color"], linewidth=1.6, label=props["vehicle_id"])
        elif props["kind"] != "route":
            ax.scatter(
                coords[0], coords[1], color=props["color"], s=60 if props["kind"] == "depot" else 12, marker="s" if props["kind"] == "depot" else "o", zorder=3
            )
    ax.set_aspect(1 / np.cos(np.radians(np.mean(ax.get_ylim()))))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Delivery routes")
    if collection["features"]:
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
