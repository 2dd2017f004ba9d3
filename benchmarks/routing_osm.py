"""Road graph build and travel-time matrix on a real OSM extract, on this machine's cores.

    python benchmarks/routing_osm.py --osm ../shared/data/osm/porto_portugal_r5-testdata.osm.pbf \\
        --osmnx-xml ../shared/data/osm/derived/porto.drive.osm.bz2 --points 1000 \\
        --out benchmarks/results/routing_osm.json

Each graph build runs in a fresh process (wall time and that process's peak RSS). Anchors in the same run:
osmnx's own path (``graph_from_xml`` of the same roads as XML, ``largest_component``, ``simplify_graph``,
speeds and travel times) and, for the matrix, one plain scipy Dijkstra per origin over the whole graph in one
process (no dead-end pruning, no worker processes)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import record


def build(osm: Path) -> dict:
    from ml.routing.graph import read_osm_file

    started = time.perf_counter()
    network = read_osm_file(osm)
    return {"seconds": time.perf_counter() - started, "nodes": len(network.nodes), "edges": len(network.edges), "imputed_speed_share": network.imputed_share}


def build_with_osmnx(xml: Path) -> dict:
    import osmnx as ox

    started = time.perf_counter()
    graph = ox.graph_from_xml(xml, retain_all=True, simplify=False)
    graph = ox.simplify_graph(ox.truncate.largest_component(graph, strongly=True))
    graph = ox.routing.add_edge_travel_times(ox.routing.add_edge_speeds(graph))
    return {"seconds": time.perf_counter() - started, "nodes": len(graph), "edges": graph.number_of_edges()}


def in_child(kind: str, path: Path) -> dict:
    """Run one build in a fresh interpreter; returns its figures and peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def matrix_figures(osm: Path, points: int, seed: int) -> dict:
    from scipy.sparse.csgraph import dijkstra

    from ml.routing.graph import read_osm_file
    from ml.routing.matrix import travel_matrix

    network = read_osm_file(osm)
    nodes = np.random.default_rng(seed).choice(len(network.nodes), points, replace=False)
    started = time.perf_counter()
    fast = travel_matrix(network, nodes, with_paths=False)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    with_paths = travel_matrix(network, nodes, with_paths=True)
    paths_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plain = dijkstra(network.csgraph(), directed=True, indices=nodes)[:, nodes]
    plain_seconds = time.perf_counter() - started
    assert np.allclose(fast.seconds, plain) and np.allclose(with_paths.seconds, plain), "matrix differs from plain Dijkstra"
    return {
        "points": points,
        "seconds": seconds,
        "seconds_with_paths": paths_seconds,
        "plain_dijkstra_seconds": plain_seconds,
        "unreachable_pairs": int((~np.isfinite(fast.seconds)).sum()),
        "max_travel_s": float(np.nanmax(fast.seconds)),
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        figures = build(Path(sys.argv[3])) if sys.argv[2] == "ours" else build_with_osmnx(Path(sys.argv[3]))
        figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--osm", type=Path, required=True, help=".osm.pbf, .osm or .osm.bz2 extract")
    parser.add_argument("--osmnx-xml", type=Path, help="the same roads as OSM XML, for osmnx's reader (the anchor)")
    parser.add_argument("--points", type=int, default=1000, help="matrix size (random network nodes)")
    parser.add_argument("--seed", type=int, default=0)
    record.add_arguments(parser, "benchmarks/results/routing_osm.json")
    args = parser.parse_args()
    ours = in_child("ours", args.osm)
    anchor = in_child("osmnx", args.osmnx_xml) if args.osmnx_xml else None
    matrix = matrix_figures(args.osm, args.points, args.seed)
    print(f"\nRoad graph from {args.osm.name} (fresh process each)")
    print(f"{'builder':<34}{'nodes':>8}{'edges':>9}{'seconds':>9}{'peak MB':>9}")
    print(f"{'pyosmium + numpy/scipy (ours)':<34}{ours['nodes']:>8,}{ours['edges']:>9,}{ours['seconds']:>9.1f}{ours['peak_mb']:>9.0f}")
    if anchor:
        print(f"{'osmnx graph_from_xml + simplify':<34}{anchor['nodes']:>8,}{anchor['edges']:>9,}{anchor['seconds']:>9.1f}{anchor['peak_mb']:>9.0f}")
        print(f"speed-up {anchor['seconds'] / ours['seconds']:.1f}x; speeds imputed on {ours['imputed_speed_share']:.1%} of edges")
    print(
        f"\nTravel-time matrix {matrix['points']}x{matrix['points']}: {matrix['seconds']:.2f} s "
        f"({matrix['seconds_with_paths']:.2f} s keeping paths); plain scipy Dijkstra in one process {matrix['plain_dijkstra_seconds']:.2f} s "
        f"({matrix['plain_dijkstra_seconds'] / matrix['seconds']:.1f}x slower); unreachable pairs {matrix['unreachable_pairs']}"
    )
    figures = [{"part": "graph", **ours}, {"part": "matrix", **matrix}] + ([{"part": "osmnx_anchor", **anchor}] if anchor else [])
    payload = {"osm": str(args.osm), "graph": ours, "osmnx_anchor": anchor, "matrix": matrix}
    record.save(args, f"routing_osm {args.osm.name}", payload, record.row_metrics(figures, ("part",)), {"osm": args.osm.name, "points": args.points})


if __name__ == "__main__":
    main()
