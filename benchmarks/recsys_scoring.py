"""Batch top-K scoring speed and memory on the synthetic shop, against the matmul lower bound.

    python benchmarks/recsys_scoring.py --scale large --out benchmarks/results/recsys_scoring_large.json

Lower bound: customers x products x dim multiply-adds at this machine's matmul rate, measured in this run (the
best over blocks of 256, 1024, 2048, the sizes the block sizer tries and --chunk, 5 tries each, numpy and torch into
a reused buffer, one block over every thread or one block a thread on each), or the scoring loop's own matmuls where
those ran faster; the scoring wall is the best of --repeats runs. ``--runs N`` repeats
the whole measurement in N fresh processes and reports the median and the worst ratio to the bound. Seen items come from the shop's
purchases over the last --history-days days; vectors are random (scoring cost does not depend on their values).
The same run times the scoring matmuls alone, the ranking of the same blocks by torch.topk (the previous ranking
step), both over the scoring loop's threads, and the one-off numba kernel load apart.

Why the ratio moves between machines: the matmul runs at the core's arithmetic rate, while the ranking reads every
score once, from memory when a block outgrows the cache. Each run therefore records the processor, its caches and
vector extensions, and the memory read rate it measures (a sum over a 512 MB array), and expresses the ranking as
passes over the score matrix at that rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import record
import torch

from ml.recsys import data, evaluate, score, topk
from ml.sources import synthetic as shop


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_seconds_per_madd(chunks: list[int], n_items: int, dim: int, workers: int, rng) -> float:
    """The machine's best matmul rate over the given row counts (so the bound does not move with --chunk): numpy's
    and torch's matmul of one block over every thread, and ``workers`` threads each multiplying a block of its own
    on one thread, as the scoring loop does."""
    best = float("inf")
    items_t = np.ascontiguousarray(rng.standard_normal((n_items, dim), dtype=np.float32).T)
    for chunk in chunks:
        users = rng.standard_normal((chunk, dim), dtype=np.float32)
        outs = [np.empty((chunk, n_items), dtype=np.float32) for _ in range(workers)]
        for library in score.EmbeddingScorer.LIBRARIES:
            for _ in range(5):
                t0 = time.perf_counter()
                score.matmul(library, users, items_t, outs[0])
                best = min(best, (time.perf_counter() - t0) / (chunk * n_items * dim))
            with evaluate.one_thread_per_call(), ThreadPoolExecutor(workers) as pool:
                for _ in range(5):
                    t0 = time.perf_counter()
                    list(pool.map(functools.partial(score.matmul, library, users, items_t), outs))
                    best = min(best, (time.perf_counter() - t0) / (workers * chunk * n_items * dim))
    return best


def blocks_in_threads(work, n_users: int, chunk: int, workers: int) -> float:
    """Seconds for ``evaluate.for_each_block`` to call ``work(rows)`` on every block of ``chunk`` users, as
    ``evaluate.top_k`` goes through them."""
    t0 = time.perf_counter()
    evaluate.for_each_block(work, n_users, chunk, workers)
    return time.perf_counter() - t0


def memory_read_gb_per_s(rng, megabytes: int = 512) -> float:
    """The best of 5 sums over an array far larger than any cache: the rate one core streams memory in."""
    array = rng.standard_normal(megabytes * 2**20 // 4, dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        array.sum()
        best = min(best, time.perf_counter() - t0)
    return array.nbytes / best / 1e9


def processor() -> dict[str, object]:
    """The processor as Linux describes it: model, caches and the vector extensions the kernels may use."""
    info: dict[str, object] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = set(fields.get("flags", "").split())
        info |= {"model": fields.get("model name", "?"), "vector_extensions": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})}
    for cache in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind = (cache / "level").read_text().strip(), (cache / "type").read_text().strip()
        if kind != "Instruction":
            info[f"L{level}_cache"] = (cache / "size").read_text().strip()
    return info


def summarise_runs(runs: list[dict]) -> dict[str, object]:
    """Median and worst of the runs' ratios to the bound, with each run's figures."""
    ratios = [r["ratio_to_bound"] for r in runs]
    return {"runs": len(runs), "ratio_median": statistics.median(ratios), "ratio_worst": max(ratios), "each": runs}


def repeat_in_fresh_processes(args: argparse.Namespace) -> None:
    names = ("scale", "history_days", "dim", "k", "chunk", "threads", "repeats")
    same = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in names if getattr(args, name) is not None]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.json"
            subprocess.run([sys.executable, __file__, *same, "--out", str(out), "--no-mlflow"], check=True)
            runs.append(json.loads(out.read_text()))
    summary = summarise_runs(runs)
    print(f"\n{'run':>4}{'wall s':>9}{'bound s':>9}{'ratio':>7}{'rank s':>8}{'GFLOP/s':>9}{'read GB/s':>10}{'rank passes':>12}{'chunk':>7}")
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>4}{r['wall_seconds']:>9.2f}{r['lower_bound_seconds']:>9.2f}{r['ratio_to_bound']:>7.2f}{r['ranking_seconds']:>8.2f}"
            f"{r['matmul_gflops']:>9.1f}{r['memory_read_gb_per_s']:>10.1f}{r['ranking_passes_over_scores']:>12.2f}{r['chunk']:>7}"
        )
    print(f"ratio to the bound over {args.runs} fresh processes: median {summary['ratio_median']:.2f}, worst {summary['ratio_worst']:.2f}")
    metrics = {"ratio_median": float(summary["ratio_median"]), "ratio_worst": float(summary["ratio_worst"])}
    record.save(args, f"recsys_scoring {args.scale} x{args.runs}", summary, metrics, {"runs": args.runs, "chunk": args.chunk})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="large")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=None, help="users per block (default: chosen while scoring, evaluate.BlockSizer)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurement in this many fresh processes")
    record.add_arguments(parser, "benchmarks/results/recsys_scoring_large.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.runs > 1:
        repeat_in_fresh_processes(args)
        return
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)

    cfg = shop.scale_config(args.scale)
    world = shop.build_world(cfg)
    batch = shop.simulate(world, cfg.end - dt.timedelta(days=args.history_days - 1), cfg.end)
    purchases = batch.tables["events"].query("event_type == 'purchase'")
    index = {p: i + 1 for i, p in enumerate(world.products["product_id"])}
    customers = world.customers["customer_id"].to_numpy()
    by_customer = purchases.groupby("customer_id")["product_id"].agg(list)
    histories = [np.array([index[p] for p in by_customer.get(c, [])], dtype=np.int64) for c in customers]
    seen = data.user_item_matrix(histories, cfg.n_products)
    rng = np.random.default_rng(0)
    users = rng.standard_normal((len(customers), args.dim), dtype=np.float32)
    items = rng.standard_normal((cfg.n_products, args.dim), dtype=np.float32)
    del batch, purchases

    rss_before = peak_rss_mb()
    read_rate = memory_read_gb_per_s(rng)
    # the same sizes whatever --chunk is, so that a fixed chunk and the block sizer are held to the same bound
    sizes = {256, 1024, 2048, *evaluate.BlockSizer.CANDIDATES, *((args.chunk,) if args.chunk else ())}
    per_madd = matmul_seconds_per_madd(sorted(sizes), cfg.n_products, args.dim, args.threads, rng)
    bound = per_madd * len(customers) * cfg.n_products * args.dim
    t0 = time.perf_counter()
    topk.top_k_rows(np.zeros((1, cfg.n_products), dtype=np.float32), args.k)  # numba: load (or compile) the kernel
    jit_seconds = time.perf_counter() - t0
    scorer = score.EmbeddingScorer(users, items)
    walls, chosen = [], []
    for _ in range(args.repeats):  # best of n, as the bound is the best of 5: this machine's timings are noisy
        sizer = args.chunk or evaluate.BlockSizer()
        t0 = time.perf_counter()
        _, best = score.recommend(scorer.score, seen, args.k, sizer)
        walls.append(time.perf_counter() - t0)
        chosen.append(sizer if isinstance(sizer, int) else sizer.chosen)
    wall = min(walls)
    chunk = chosen[walls.index(wall)]
    matmul_wall = torch_topk_wall = float("inf")
    for _ in range(args.repeats):  # the scoring matmuls alone, and the same blocks ranked by torch.topk instead
        matmul_wall = min(matmul_wall, blocks_in_threads(scorer.score, len(customers), chunk, args.threads))
        by_torch = blocks_in_threads(lambda rows: torch.topk(torch.from_numpy(scorer.score(rows)), args.k, dim=1), len(customers), chunk, args.threads)
        torch_topk_wall = min(torch_topk_wall, by_torch)
    torch_topk_wall -= matmul_wall
    assert np.isfinite(best).all(), "a customer received a seen or missing item"
    # The scoring loop's own matmuls are a measurement of the same rate too: the bound is the faster of the two.
    bound = min(bound, matmul_wall)
    result = {
        "customers": len(customers),
        "products": cfg.n_products,
        "dim": args.dim,
        "k": args.k,
        "chunk": chunk,
        "chunks_chosen": chosen,
        "matmul_library": scorer.library,
        "matmul_library_trial_seconds": scorer.seconds,
        "threads": args.threads,
        "seen_pairs": int(seen.nnz),
        "wall_seconds": wall,
        "matmul_seconds_in_scoring": matmul_wall,
        "lower_bound_seconds": bound,
        "repeats": args.repeats,
        "wall_seconds_each": walls,
        "ranking_seconds": wall - matmul_wall,
        "torch_topk_ranking_seconds": torch_topk_wall,
        "jit_load_seconds": jit_seconds,
        "ratio_to_bound": wall / bound,
        "matmul_gflops": 2 / per_madd / 1e9,
        "customers_per_second": len(customers) / wall,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_scoring_mb": rss_before,
        "memory_read_gb_per_s": read_rate,
        # how many times the ranking could have read the whole score matrix at the measured memory rate
        "ranking_passes_over_scores": (wall - matmul_wall) * read_rate * 1e9 / (len(customers) * cfg.n_products * 4),
        "processor": processor(),
    }
    print(
        f"\n{'customers':>10}{'products':>10}{'dim':>5}{'k':>5}{'wall s':>9}{'matmul s':>9}{'bound s':>9}{'ratio':>7}"
        f"{'rank s':>8}{'torch.topk s':>13}{'GFLOP/s':>9}{'peak MB':>9}"
    )
    print(
        f"{result['customers']:>10}{result['products']:>10}{args.dim:>5}{args.k:>5}{wall:>9.1f}{matmul_wall:>9.1f}{bound:>9.1f}"
        f"{result['ratio_to_bound']:>7.2f}{wall - matmul_wall:>8.2f}{torch_topk_wall:>13.2f}{result['matmul_gflops']:>9.1f}{result['peak_rss_mb']:>9.0f}"
    )
    params = {k: getattr(args, k) for k in ("scale", "history_days", "dim", "k", "chunk", "threads", "repeats")}
    record.save(args, f"recsys_scoring {args.scale}", result, record.row_metrics([result], ()), params)


if __name__ == "__main__":
    main()
