"""The drivable road network from a local OpenStreetMap file (``.osm.pbf``, ``.osm``, ``.osm.bz2``) or, when
online, a place name through osmnx.

Files are read with pyosmium (osmnx cannot read PBF) and simplified here with numpy: ways are split at
intersections and way ends, and only the largest strongly connected component is kept (scipy), so every node
can reach every other one; oneway tags follow osmnx's rules. osmnx's own XML reader + ``simplify_graph`` +
``largest_component`` is several times slower and heavier on a city's file; ``benchmarks/routing_osm.py``
measures both (README, Delivery routes). The result converts to an osmnx ``MultiDiGraph`` (``to_networkx``) for osmnx's
tools and GraphML export, and is cached as Parquet keyed by the file's SHA-256 and the build settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.errors import ConfigError

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_009.0  # osmnx's mean Earth radius

# Speeds for edges whose maxspeed tag is missing or unreadable (km/h): urban European defaults per class.
HIGHWAY_SPEEDS_KPH: dict[str, float] = {
    "motorway": 100,
    "motorway_link": 60,
    "trunk": 80,
    "trunk_link": 50,
    "primary": 50,
    "primary_link": 40,
    "secondary": 50,
    "secondary_link": 40,
    "tertiary": 40,
    "tertiary_link": 30,
    "unclassified": 30,
    "residential": 30,
    "living_street": 10,
    "road": 30,
    "busway": 30,
}
FALLBACK_SPEED_KPH = 30.0

# osmnx's "drive" network filter (osmnx 2.1 ``_get_network_filter("drive")``), as sets.
_EXCLUDED_HIGHWAY = {
    "abandoned",
    "bridleway",
    "bus_guideway",
    "construction",
    "corridor",
    "cycleway",
    "elevator",
    "escalator",
    "footway",
    "no",
    "path",
    "pedestrian",
    "planned",
    "platform",
    "proposed",
    "raceway",
    "razed",
    "rest_area",
    "service",
    "services",
    "steps",
    "track",
}
_EXCLUDED_SERVICE = {"alley", "driveway", "emergency_access", "parking", "parking_aisle", "private"}
_ONEWAY = {"yes", "true", "1", "-1", "reverse", "T", "F"}
_REVERSED = {"-1", "reverse", "T"}
CACHE_VERSION = 1


def is_drivable(tags: dict[str, str]) -> bool:
    """Whether a way passes osmnx's "drive" filter."""
    return (
        "highway" in tags
        and tags.get("area") != "yes"
        and tags["highway"] not in _EXCLUDED_HIGHWAY
        and tags.get("access") != "private"
        and tags.get("motor_vehicle") != "no"
        and tags.get("motorcar") != "no"
        and tags.get("service") not in _EXCLUDED_SERVICE
    )


@dataclass
class RoadNetwork:
    """Nodes (index = OSM node id; columns y = lat, x = lon) and directed edges (u, v = OSM node ids; way id,
    highway, name, maxspeed tag, length m, speed_kph, speed_imputed, travel_time s; geometry rows
    [geom_start, geom_end) of ``coords``, reversed when ``reversed``)."""

    nodes: pd.DataFrame
    edges: pd.DataFrame
    coords: np.ndarray  # (k, 2) lon, lat of every way vertex
    source: str

    @property
    def imputed_share(self) -> float:
        return float(self.edges["speed_imputed"].mean()) if len(self.edges) else 0.0

    def node_index(self, osmids: np.ndarray | pd.Series) -> np.ndarray:
        """Positions of OSM node ids in ``nodes`` (raises for an id that is not in the network)."""
        positions = self.nodes.index.get_indexer(np.asarray(osmids))
        if (positions < 0).any():
            missing = np.asarray(osmids)[positions < 0][:5].tolist()
            raise ConfigError(f"nodes {missing} are not in the road network {self.source}")
        return positions

    def csgraph(self, weight: str = "travel_time"):
        """Sparse (n x n) adjacency over node positions, the cheapest parallel edge kept."""
        from scipy.sparse import csr_matrix

        u, v = self.node_index(self.edges["u"]), self.node_index(self.edges["v"])
        best = pd.DataFrame({"u": u, "v": v, "w": self.edges[weight].to_numpy(float)}).groupby(["u", "v"], sort=False)["w"].min().reset_index()
        n = len(self.nodes)
        return csr_matrix((best["w"].to_numpy(), (best["u"].to_numpy(), best["v"].to_numpy())), shape=(n, n))

    def edge_geometry(self, rows: np.ndarray) -> list[np.ndarray]:
        """(lon, lat) vertices of the given edge rows, in the edge's direction."""
        out = []
        for start, end, rev in self.edges[["geom_start", "geom_end", "reversed"]].to_numpy()[rows]:
            line = self.coords[int(start) : int(end)]
            out.append(line[::-1] if rev else line)
        return out

    def to_networkx(self):
        """An osmnx-style ``MultiDiGraph`` (crs EPSG:4326, edge geometry, length, speed_kph, travel_time)."""
        import geopandas as gpd
        import osmnx as ox
        import shapely

        nodes = gpd.GeoDataFrame(self.nodes, geometry=gpd.points_from_xy(self.nodes["x"], self.nodes["y"]), crs="EPSG:4326")
        nodes.index.name = "osmid"
        lines = shapely.linestrings(
            np.concatenate(self.edge_geometry(np.arange(len(self.edges)))),
            indices=np.repeat(np.arange(len(self.edges)), (self.edges["geom_end"] - self.edges["geom_start"]).to_numpy()),
        )
        edges = gpd.GeoDataFrame(self.edges.drop(columns=["geom_start", "geom_end"]), geometry=lines, crs="EPSG:4326")
        edges = edges.set_index(["u", "v", "key"])
        return ox.convert.graph_from_gdfs(nodes, edges)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.nodes.to_parquet(folder / "nodes.parquet")
        self.edges.to_parquet(folder / "edges.parquet", index=False)
        np.save(folder / "coords.npy", self.coords)
        (folder / "source.txt").write_text(self.source)

    @classmethod
    def load(cls, folder: Path) -> RoadNetwork:
        return cls(
            nodes=pd.read_parquet(folder / "nodes.parquet"),
            edges=pd.read_parquet(folder / "edges.parquet"),
            coords=np.load(folder / "coords.npy"),
            source=(folder / "source.txt").read_text(),
        )


def great_circle_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Haversine distance in metres (vectorised; osmnx's formula and radius)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def parse_maxspeed(values: pd.Series) -> pd.Series:
    """km/h from OSM maxspeed tags: "50", "30 mph", "50;70" (the mean); NaN for "none", "PT:urban" and the like."""

    def one(text) -> float:
        if not isinstance(text, str):
            return np.nan
        speeds = []
        for part in text.split(";"):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*", part)
            if match:
                speeds.append(float(match.group(1)) * (1.609344 if match.group(2) == "mph" else 1.0))
        return float(np.mean(speeds)) if speeds else np.nan

    return values.map(one).astype(float)


def _read_ways(path: Path) -> tuple[list[dict], list[np.ndarray], list[np.ndarray]]:
    """Tags, node ids and (lon, lat) of every drivable way in an OSM file."""
    import osmium

    tags, ids, coords = [], [], []
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for way in processor:
        if not isinstance(way, osmium.osm.Way):  # the entity filter passes ways only
            continue
        way_tags: dict[str, Any] = dict(way.tags)
        if not is_drivable(way_tags) or len(way.nodes) < 2:
            continue
        refs = way.nodes
        if not all(nd.location.valid() for nd in refs):
            log.warning("way %d references nodes missing from %s: skipped", way.id, path.name)
            continue
        way_tags["osmid"] = way.id
        tags.append(way_tags)
        ids.append(np.fromiter((nd.ref for nd in refs), dtype=np.int64, count=len(refs)))
        coords.append(np.array([(nd.lon, nd.lat) for nd in refs], dtype=float))
    if not tags:
        raise ConfigError(f"{path}: no drivable ways (highway=* passing osmnx's drive filter) in the file")
    return tags, ids, coords


def build_network(ways: tuple[list[dict], list[np.ndarray], list[np.ndarray]], source: str, largest_component: bool = True) -> RoadNetwork:
    """Split ways at intersections and ends, direct them by their oneway tags, price them in seconds, and keep the
    largest strongly connected component."""
    tags, ids, coords = ways
    lengths = np.array([len(a) for a in ids])
    refs = np.concatenate(ids)
    xy = np.concatenate(coords)
    way_of = np.repeat(np.arange(len(ids)), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    last = first + lengths - 1
    # A vertex ends an edge when it ends its way or is shared (an intersection, or a way crossing itself).
    _, inverse, counts = np.unique(refs, return_inverse=True, return_counts=True)
    is_end = counts[inverse] > 1
    is_end[first] = True
    is_end[last] = True
    leg = np.zeros(len(refs))
    same_way = way_of[1:] == way_of[:-1]
    leg[1:] = np.where(same_way, great_circle_m(xy[:-1, 1], xy[:-1, 0], xy[1:, 1], xy[1:, 0]), 0.0)
    travelled = np.cumsum(leg)
    ends = np.flatnonzero(is_end)
    starts, stops = ends[:-1], ends[1:]
    keep = way_of[starts] == way_of[stops]  # consecutive ends of the same way bound one edge
    starts, stops = starts[keep], stops[keep]
    way_tags = pd.DataFrame(tags)
    for column in ("name", "maxspeed", "oneway", "junction"):
        if column not in way_tags:
            way_tags[column] = None
    segment = way_tags.iloc[way_of[starts]].reset_index(drop=True)
    oneway = segment["oneway"].isin(_ONEWAY) | (segment["junction"] == "roundabout")
    backwards_only = segment["oneway"].isin(_REVERSED)
    forward = pd.DataFrame(
        {
            "u": refs[starts],
            "v": refs[stops],
            "osmid": segment["osmid"].to_numpy(),
            "highway": segment["highway"].to_numpy(),
            "name": segment["name"].to_numpy(),
            "maxspeed": segment["maxspeed"].to_numpy(),
            "oneway": oneway.to_numpy(),
            "reversed": False,
            "length": travelled[stops] - travelled[starts],
            "geom_start": starts,
            "geom_end": stops + 1,
        }
    )
    backward = forward.assign(u=forward["v"], v=forward["u"], reversed=True)
    edges = pd.concat([forward[~backwards_only.to_numpy()], backward[(~oneway | backwards_only).to_numpy()]], ignore_index=True)
    edges = edges[edges["u"] != edges["v"]]  # closed loops without an intersection carry no route
    node_ids, first_seen = np.unique(refs[ends], return_index=True)
    nodes = pd.DataFrame({"y": xy[ends[first_seen], 1], "x": xy[ends[first_seen], 0]}, index=pd.Index(node_ids, name="osmid"))
    if largest_component:
        nodes, edges = _largest_strong_component(nodes, edges)
    edges = _price(edges.reset_index(drop=True))
    edges["key"] = edges.groupby(["u", "v"]).cumcount()
    network = RoadNetwork(nodes=nodes, edges=edges, coords=xy, source=source)
    log.info(
        "road network %s: %d nodes, %d edges (%.0f km of lanes); speeds imputed on %.1f%% of edges (no usable maxspeed)",
        source,
        len(nodes),
        len(edges),
        edges["length"].sum() / 1000,
        100 * network.imputed_share,
    )
    return network


def _largest_strong_component(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    u, v = nodes.index.get_indexer(edges["u"]), nodes.index.get_indexer(edges["v"])
    graph = csr_matrix((np.ones(len(u)), (u, v)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=True, connection="strong")
    biggest = np.bincount(label).argmax()
    inside = label == biggest
    dropped = int((~inside).sum())
    if dropped:
        log.info(
            "kept the largest strongly connected component: %d of %d nodes (%d dropped: one-way dead ends, islands)", int(inside.sum()), len(nodes), dropped
        )
    kept = inside[u] & inside[v]
    return nodes[inside], edges[kept]


def _price(edges: pd.DataFrame) -> pd.DataFrame:
    tagged = parse_maxspeed(edges["maxspeed"])
    fallback = edges["highway"].map(HIGHWAY_SPEEDS_KPH).fillna(FALLBACK_SPEED_KPH).astype(float)
    speed = tagged.where(tagged > 0, fallback)
    return edges.assign(speed_kph=speed, speed_imputed=~(tagged > 0), travel_time=edges["length"] / (speed / 3.6))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_osm_file(path: Path, largest_component: bool = True) -> RoadNetwork:
    """The network of one OSM file (no cache)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"road network file {path} does not exist; pass an .osm.pbf, .osm or .osm.bz2 extract")
    started = time.perf_counter()
    network = build_network(_read_ways(path), source=path.name, largest_component=largest_component)
    log.info("built %s in %.1fs", path.name, time.perf_counter() - started)
    return network


def load_network(path: Path, cache_dir: Path | None = None, largest_component: bool = True) -> RoadNetwork:
    """The network of an OSM file, from ``cache_dir`` when this file (by SHA-256) was built with the same settings."""
    path = Path(path)
    if cache_dir is None:
        return read_osm_file(path, largest_component)
    if not path.exists():
        raise ConfigError(f"road network file {path} does not exist; pass an .osm.pbf, .osm or .osm.bz2 extract")
    settings = {"version": CACHE_VERSION, "largest_component": largest_component, "speeds": HIGHWAY_SPEEDS_KPH, "fallback": FALLBACK_SPEED_KPH}
    key = hashlib.sha256((file_sha256(path) + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:16]
    return cached(Path(cache_dir) / f"{path.name}-{key}", lambda: read_osm_file(path, largest_component))


def load_place(place: str, cache_dir: Path) -> RoadNetwork:
    """A place's network downloaded through osmnx once, then from ``cache_dir`` by its name (delete the folder to
    download it again)."""
    return cached(Path(cache_dir) / ("place-" + "".join(c if c.isalnum() else "_" for c in place)), lambda: from_place(place))


def cached(folder: Path, build: Callable[[], RoadNetwork]) -> RoadNetwork:
    """The network saved in ``folder``, or ``build()`` saved there (atomically) for next time."""
    if (folder / "source.txt").exists():
        log.info("road network from cache %s", folder)
        return RoadNetwork.load(folder)
    network = build()
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    network.save(tmp)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached it first; theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return network


def from_networkx(graph, source: str, largest_component: bool = True) -> RoadNetwork:
    """Convert an osmnx drive graph (``graph_from_xml``, ``graph_from_place``) into a RoadNetwork, priced with
    the same speed rules as files read here."""
    import osmnx as ox

    nodes, edges = ox.convert.graph_to_gdfs(graph)
    edges = edges.reset_index()
    drawn = [np.asarray(g.coords) if g is not None and not isinstance(g, float) else None for g in edges.get("geometry", [None] * len(edges))]
    straight = nodes.loc[edges["u"], ["x", "y"]].to_numpy(), nodes.loc[edges["v"], ["x", "y"]].to_numpy()
    lines = [line if line is not None else np.vstack([straight[0][i], straight[1][i]]) for i, line in enumerate(drawn)]
    sizes = np.array([len(line) for line in lines])

    def first(value):  # osmnx lists the tags of merged ways
        return value[0] if isinstance(value, list) else value

    out = pd.DataFrame(
        {
            "u": edges["u"].to_numpy(np.int64),
            "v": edges["v"].to_numpy(np.int64),
            "osmid": edges["osmid"].map(first),
            "highway": edges["highway"].map(first),
            "name": edges.get("name", pd.Series(None, index=edges.index)).map(first),
            "maxspeed": edges.get("maxspeed", pd.Series(None, index=edges.index)).map(first),
            "oneway": edges["oneway"].astype(bool),
            "reversed": False,
            "length": edges["length"].astype(float),
            "geom_start": np.concatenate([[0], np.cumsum(sizes)[:-1]]),
            "geom_end": np.cumsum(sizes),
        }
    )
    out = out[out["u"] != out["v"]]
    frame = pd.DataFrame({"y": nodes["y"].astype(float), "x": nodes["x"].astype(float)}, index=nodes.index.astype(np.int64))
    frame.index.name = "osmid"
    if largest_component:
        frame, out = _largest_strong_component(frame, out)
    out = _price(out.reset_index(drop=True))
    out["key"] = out.groupby(["u", "v"]).cumcount()
    return RoadNetwork(nodes=frame, edges=out, coords=np.concatenate(lines), source=source)


def from_place(place: str, largest_component: bool = True) -> RoadNetwork:
    """Download a place's drive network through osmnx (needs network access)."""
    import osmnx as ox

    return from_networkx(ox.graph_from_place(place, network_type="drive"), source=place, largest_component=largest_component)
