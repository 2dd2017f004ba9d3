"""The lake on Delta tables (``ml.lake``) against the Parquet lake it replaced, on the same publish and read work at
the large shop's daily volume (issue 20: publishing and reading one ds of events may be at most 1.5x slower than on
the Parquet lake).

    python benchmarks/lake_formats.py --scale large --history-days 730 --out benchmarks/results/lake_formats.json

The anchor is the Parquet lake as it was: one Parquet file a table and day in a folder partition, replaced by a
rename, through the same day commits (``ml.lake`` still keeps folder partitions for files that are not rows, so the
anchor is the same code path, not a copy). The shop simulates ``--sample-days`` days; their events and inventory are
published as ``--history-days`` consecutive days (each day's rows are a sample day's, relabelled), so both lakes
hold tables with as many daily versions as a shop of that age; the Delta log is then dated and cleaned up as that
shop's would be (:meth:`DeltaLake.age_log`). Then, ``--repeats`` times each: publish one more day
(events alone, then events + inventory in one day commit), read that day's events, and read 28 days of events. A task is a fresh process,
so reads are timed both cold (the Delta table opened anew: its log replayed from the last checkpoint) and warm (an
open table brought up to date, as for every read after a task's first). Last, delta-rs alone on a table with no
history (:func:`delta_rs_floor`): opening it, and one transaction, what neither a publish nor a first read can cost less
than. With a PostgreSQL server (``--ducklake-catalog``, default ``ECOM_TEST_POSTGRES_URL``) the same work runs on
DuckLake too, the other format the issue names (:class:`DuckLake`); its cold read is a new connection that attaches
the catalog, as a fresh task's would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import record

from ml import lake
from ml.sources import synthetic

TABLES = ("events", "inventory")
RANGE_DAYS = 28


def sample_days(scale: str, days: int) -> list[dict[str, pd.DataFrame]]:
    """The last ``days`` days of the shop's events and inventory, one dict of frames per day (``ds`` column dropped)."""
    cfg = synthetic.scale_config(scale)
    world = synthetic.build_world(cfg)
    batch = synthetic.simulate(world, cfg.end - dt.timedelta(days=days - 1), cfg.end)
    events, inventory = batch.tables["events"], batch.tables["inventory"]
    event_day = events["event_ts"].dt.date
    out = []
    for k in range(days):
        day = cfg.end - dt.timedelta(days=days - 1 - k)
        out.append(
            {
                "events": events[event_day == day].reset_index(drop=True),
                "inventory": inventory[pd.to_datetime(inventory["ds"]).dt.date == day].drop(columns="ds").reset_index(drop=True),
            }
        )
    return out


class ParquetLake:
    """The Parquet lake before Delta: one file a table and day in a folder partition that a day commit renames into
    place."""

    name = "parquet folders (before)"
    FILE = "part-0.parquet"

    def __init__(self, root: Path):
        self.root = root

    def publish(self, ds: dt.date, frames: dict[str, pd.DataFrame]) -> None:
        with lake.commit(self.root, label=f"bench ds={ds}") as day:
            for table, frame in frames.items():
                folder = day.folder("curated", table, ds)
                frame.to_parquet(folder / self.FILE, index=False)
                with open(folder / self.FILE, "rb") as fh:
                    os.fsync(fh.fileno())

    def read_day(self, table: str, ds: dt.date, cold: bool) -> pd.DataFrame:
        with lake.reading(self.root):
            return pd.read_parquet(lake.partition_dir(self.root, "curated", table, ds) / self.FILE)

    def read_range(self, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        with lake.reading(self.root):
            days = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
            return pd.concat([pd.read_parquet(lake.partition_dir(self.root, "curated", table, d) / self.FILE) for d in days], ignore_index=True)


class DeltaLake:
    """Today's lake: Delta tables partitioned by ds, a day commit makes one transaction a table."""

    name = "delta (ml.lake)"

    def __init__(self, root: Path):
        self.root = root

    def publish(self, ds: dt.date, frames: dict[str, pd.DataFrame]) -> None:
        with lake.commit(self.root, label=f"bench ds={ds}") as day:
            for table, frame in frames.items():
                day.write("curated", table, ds, frame)

    def read_day(self, table: str, ds: dt.date, cold: bool) -> pd.DataFrame:
        if cold:
            lake.forget_open_tables()
        return lake.read_partition(self.root, "curated", table, ds)

    def read_range(self, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return lake.read_range(self.root, "curated", table, start, end)

    def age_log(self) -> None:
        """Date each table's log files as if each version came a day after the one before, then clean the log up
        as the checkpoint hook does. A table published daily for two years keeps the log retention's worth of
        commit files (30 days by default), not one for every day since it began: a history published in seconds
        would keep them all, and every commit and open lists them."""
        from deltalake import DeltaTable

        now = time.time()
        for table in TABLES:
            log = self.root / "curated" / table / "_delta_log"
            latest = DeltaTable(str(log.parent)).version()
            for entry in log.iterdir():
                if entry.name[:20].isdigit():
                    written = now - (latest - int(entry.name[:20])) * 86400
                    os.utime(entry, (written, written))
            DeltaTable(str(log.parent)).cleanup_metadata()
        lake.forget_open_tables()


class DuckLake:
    """DuckLake (the issue's other candidate format): the catalog in PostgreSQL, which workers on other hosts share,
    the data files in the lake's folder, each table partitioned by ds. A day is one catalog transaction across its
    tables (the day deleted, then inserted); a task's first read connects, loads the extensions and attaches the
    catalog."""

    name = "ducklake (catalog in PostgreSQL)"

    def __init__(self, root: Path, catalog_url: str):
        import duckdb
        import duckdb_extension_ducklake
        import duckdb_extension_postgres_scanner
        import psycopg2
        from sqlalchemy.engine import make_url

        self.root, server = root, make_url(catalog_url)
        self.database = f"ecom_lake_formats_{os.getpid()}"
        self.admin = psycopg2.connect(host=server.host, port=server.port or 5432, user=server.username, password=server.password, dbname=server.database)
        self.admin.autocommit = True
        with self.admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self.database}")
            cursor.execute(f"CREATE DATABASE {self.database}")
        credentials = f" password={server.password}" if server.password else ""
        self.catalog = f"dbname={self.database} host={server.host} port={server.port or 5432} user={server.username}{credentials}"
        self.extensions = [  # the wheels hold the extensions built for the duckdb release of the same version
            Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"  # type: ignore[arg-type]
            for module, name in ((duckdb_extension_ducklake, "ducklake"), (duckdb_extension_postgres_scanner, "postgres_scanner"))
        ]
        self.tables: set[str] = set()
        try:
            self.connection = self.connect()
        except BaseException:
            self.drop_catalog()
            raise

    def connect(self):
        import duckdb

        connection = duckdb.connect()
        for extension in self.extensions:
            connection.execute(f"LOAD '{extension}'")
        connection.execute(f"ATTACH 'ducklake:postgres:{self.catalog}' AS lake (DATA_PATH '{self.root}/')")
        return connection

    def publish(self, ds: dt.date, frames: dict[str, pd.DataFrame]) -> None:
        connection = self.connection
        for table, frame in frames.items():
            connection.register(f"new_{table}", frame.assign(ds=ds.isoformat()))
            if table not in self.tables:
                connection.execute(f"CREATE TABLE IF NOT EXISTS lake.{table} AS SELECT * FROM new_{table} LIMIT 0")
                connection.execute(f"ALTER TABLE lake.{table} SET PARTITIONED BY (ds)")
                self.tables.add(table)
        connection.execute("BEGIN")
        for table in frames:
            connection.execute(f"DELETE FROM lake.{table} WHERE ds = ?", [ds.isoformat()])
            connection.execute(f"INSERT INTO lake.{table} SELECT * FROM new_{table}")
        connection.execute("COMMIT")

    def read_day(self, table: str, ds: dt.date, cold: bool) -> pd.DataFrame:
        connection = self.connect() if cold else self.connection
        try:
            return connection.execute(f"SELECT * FROM lake.{table} WHERE ds = ?", [ds.isoformat()]).df()
        finally:
            if cold:
                connection.close()

    def read_range(self, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self.connection.execute(f"SELECT * FROM lake.{table} WHERE ds BETWEEN ? AND ?", [start.isoformat(), end.isoformat()]).df()

    def close(self) -> None:
        self.connection.close()
        self.drop_catalog()

    def drop_catalog(self) -> None:
        """Drop the catalog's database: nothing of a run is left on the server, whether it ended or failed."""
        with self.admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {self.database}")
        self.admin.close()


def timed(work: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median and worst seconds of ``repeats`` runs."""
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(seconds), "worst_s": max(seconds)}


def delta_rs_floor(root: Path, frame: pd.DataFrame, repeats: int) -> dict[str, dict[str, float]]:
    """delta-rs's own cost on a table with no history (one version, two days): opening it, and one predicate
    overwrite of a day with a file already written, the open table brought up to date first as a publish does.
    Neither depends on the lake's history or on ``ml.lake``: a Delta publish and a first read cannot cost less."""
    from deltalake import DeltaTable, write_deltalake
    from deltalake.transaction import AddAction

    path = root / "floor"
    write_deltalake(path, pd.concat([frame.assign(ds="2024-01-01"), frame.assign(ds="2024-01-02")]), partition_by=["ds"])
    table = DeltaTable(path)
    file = next(uri for uri in table.file_uris() if "ds=2024-01-01" in uri)
    add = AddAction(str(Path(file).relative_to(path)), os.path.getsize(file), {"ds": "2024-01-02"}, int(time.time() * 1000), True, None)

    def transaction() -> None:
        table.update_incremental()
        table.create_write_transaction([add], "overwrite", table.schema(), partition_by=["ds"], partition_filters=[("ds", "in", ["2024-01-02"])])

    return {"open the table": timed(lambda: DeltaTable(path), repeats), "one transaction": timed(transaction, repeats)}


def run_format(store: ParquetLake | DeltaLake | DuckLake, days: list[dict[str, pd.DataFrame]], history_days: int, repeats: int) -> dict[str, object]:
    first = dt.date(2024, 1, 1)
    t0 = time.perf_counter()
    for k in range(history_days):
        store.publish(first + dt.timedelta(days=k), days[k % len(days)])
        if (k + 1) % 100 == 0:
            logging.info("%s: %d of %d days published", store.name, k + 1, history_days)
    history_s = time.perf_counter() - t0
    if isinstance(store, DeltaLake):
        store.age_log()
    new, new_frames = first + dt.timedelta(days=history_days), days[history_days % len(days)]
    rows = {
        "publish one day of events": timed(lambda: store.publish(new, {"events": new_frames["events"]}), repeats),
        "publish one day (events + inventory)": timed(lambda: store.publish(new, new_frames), repeats),
        "read one day of events (cold)": timed(lambda: store.read_day("events", new, cold=True), repeats),
        "read one day of events (warm)": timed(lambda: store.read_day("events", new, cold=False), repeats),
        f"read {RANGE_DAYS} days of events": timed(lambda: store.read_range("events", new - dt.timedelta(days=RANGE_DAYS - 1), new), repeats),
    }
    check = store.read_day("events", new, cold=False)
    if len(check) != len(new_frames["events"]):
        raise AssertionError(f"{store.name}: read {len(check)} events back, published {len(new_frames['events'])}")
    return {"format": store.name, "history_publish_s": history_s, "operations": rows, "disk_mb": record.disk_bytes(store.root) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="large")
    parser.add_argument("--sample-days", type=int, default=7)
    parser.add_argument("--history-days", type=int, default=730)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--ducklake-catalog",
        default=os.environ.get("ECOM_TEST_POSTGRES_URL"),
        help="a PostgreSQL server for DuckLake's catalog (a database is made there, then dropped); default ECOM_TEST_POSTGRES_URL, else no DuckLake",
    )
    record.add_arguments(parser, "benchmarks/results/lake_formats.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("ml.lake").setLevel(logging.WARNING)

    days = sample_days(args.scale, args.sample_days)
    per_day = {table: statistics.mean(len(d[table]) for d in days) for table in TABLES}
    logging.info("%s shop: %s rows a day on average", args.scale, {t: round(n) for t, n in per_day.items()})
    results = []
    stores: list[Callable[[Path], ParquetLake | DeltaLake | DuckLake]] = [ParquetLake, DeltaLake]
    if args.ducklake_catalog:
        stores.append(lambda root: DuckLake(root, args.ducklake_catalog))
    else:
        logging.warning("no --ducklake-catalog (nor ECOM_TEST_POSTGRES_URL): DuckLake not measured")
    for make_store in stores:
        root = Path(tempfile.mkdtemp(prefix="lake-formats-"))
        store = make_store(root)
        try:
            results.append(run_format(store, days, args.history_days, args.repeats))
        finally:
            if isinstance(store, DuckLake):
                store.close()
            shutil.rmtree(root, ignore_errors=True)

    floor_root = Path(tempfile.mkdtemp(prefix="lake-formats-"))
    try:
        floor = delta_rs_floor(floor_root, days[-1]["events"], max(args.repeats, 20))
    finally:
        shutil.rmtree(floor_root, ignore_errors=True)

    parquet, delta, *others = results
    ducklake = others[0] if others else None
    print(f"\n{args.scale} shop, {args.history_days} daily versions; rows a day: " + ", ".join(f"{t} {n:,.0f}" for t, n in per_day.items()))
    header = f"{'operation':<40}{'parquet median s':>18}{'delta median s':>16}{'delta worst s':>15}{'delta / parquet':>17}"
    print(header + (f"{'ducklake median s':>19}{'ducklake / parquet':>20}" if ducklake else ""))
    ratios, ducklake_ratios = {}, {}
    for operation, p in parquet["operations"].items():  # type: ignore[union-attr]
        d = delta["operations"][operation]  # type: ignore[index]
        ratios[operation] = d["median_s"] / p["median_s"]
        line = f"{operation:<40}{p['median_s']:>18.3f}{d['median_s']:>16.3f}{d['worst_s']:>15.3f}{ratios[operation]:>17.2f}"
        if ducklake:
            k = ducklake["operations"][operation]  # type: ignore[index]
            ducklake_ratios[operation] = k["median_s"] / p["median_s"]
            line += f"{k['median_s']:>19.3f}{ducklake_ratios[operation]:>20.2f}"
        print(line)
    print(
        "delta-rs alone, on a table with no history (median s): "
        + ", ".join(f"{operation} {timing['median_s']:.4f}" for operation, timing in floor.items())
        + f"; a Parquet publish of one day of events: {parquet['operations']['publish one day of events']['median_s']:.4f}"  # type: ignore[index]
    )
    for r in results:
        print(f"{r['format']:<22} history of {args.history_days} days published in {r['history_publish_s']:.0f} s, {r['disk_mb']:.0f} MB on disk")
    payload = {
        "scale": args.scale,
        "history_days": args.history_days,
        "repeats": args.repeats,
        "rows_per_day": per_day,
        "formats": results,
        "delta_over_parquet": ratios,
        "ducklake_over_parquet": ducklake_ratios,
        "delta_rs_without_history": floor,
    }
    metrics = {record.metric_name("delta_over_parquet", op): v for op, v in ratios.items()}
    metrics |= {record.metric_name("ducklake_over_parquet", op): v for op, v in ducklake_ratios.items()}
    params = {k: getattr(args, k) for k in ("scale", "sample_days", "history_days", "repeats")}
    record.save(args, f"lake_formats {args.scale}", payload, metrics, params)


if __name__ == "__main__":
    main()
