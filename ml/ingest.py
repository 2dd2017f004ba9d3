"""Ingest: land a raw drop, validate it, publish it to the curated lake. One function per Airflow task.

- ``land``: a source (the synthetic shop, a public-dataset adapter, or a folder of CSV files) writes the drop for
  ``ds`` into ``raw/drop/ds=YYYY-MM-DD/`` as one CSV per contract table plus ``manifest.json`` (each file's
  bytes, rows and SHA-256, as the source states them).
- ``validate``: the gate (:mod:`ml.validation`), starting with the delivery against its manifest; a failing drop
  moves whole to ``quarantine/drop/ds=.../`` with its report and the step raises; curated data is never touched.
- ``publish``: only a drop whose fingerprint matches a passing report is split into curated daily partitions
  (facts by event day, dimensions as a snapshot at ds), with its validation summary for the serving store, in
  one lake commit.

Every write replaces its partition or its ds rows whole, so rerunning a day gives identical results.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ml import contract, delivery, lake
from ml.errors import DataValidationError, EcomError
from ml.settings import Settings
from ml.sources import SourceRequest, get_source
from ml.validation import checks, gate, window

log = logging.getLogger(__name__)

DROP = "drop"
VALIDATION_RUNS = "validation_runs"
MANIFEST = delivery.MANIFEST


@dataclass
class LandResult:
    ds: str
    source: str
    drop_dir: str
    window_start: str
    rows: dict[str, int] = field(default_factory=dict)


def land(settings: Settings, request: SourceRequest) -> LandResult:
    """Produce the drop for ``request.ds`` from its source and commit it to the raw zone with its manifest: each
    file's bytes, rows and SHA-256 as the source states them (the files source: as its sender listed them)."""
    t0 = time.perf_counter()
    lake.recover(settings.lake, settings.serving_url)
    batch = get_source(request.source)(settings, request)
    with lake.commit(settings.lake, label=f"land ds={request.ds}") as change:
        folder = change.folder("raw", DROP, request.ds)
        listed = dict(batch.listed)
        for name, frame in batch.tables.items():
            write_csv(name, frame, folder / f"{name}.csv")
            listed[f"{name}.csv"] = delivery.describe(folder / f"{name}.csv", rows=len(frame))
        for name, path in batch.files.items():
            shutil.copyfile(path, folder / name)
        rows = {name.removesuffix(".csv"): entry["rows"] for name, entry in listed.items() if name.endswith(".csv")}
        manifest = {
            "ds": request.ds.isoformat(),
            "source": request.source,
            "window_start": batch.window_start.isoformat(),
            "request": request.describe(),
            "rows": rows,
            "files": listed,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for name, frame in batch.ground_truth.items():
            change.write("ground_truth", name, request.ds, frame)
    target = lake.partition_location(settings.lake, "raw", DROP, request.ds)
    log.info("landed %s drop for ds=%s (%s) in %.1fs: %s", request.source, request.ds, batch.window_start, time.perf_counter() - t0, rows)
    return LandResult(str(manifest["ds"]), request.source, target, str(manifest["window_start"]), rows)


def write_csv(table: str, frame: pd.DataFrame, path: Path) -> None:
    """Write a contract frame as the CSV a warehouse export would be: ISO dates and UTC timestamps."""
    spec = contract.table(table)
    out = contract.conform(table, frame)
    for col in spec.columns:
        if col.kind == "date":
            out[col.name] = out[col.name].dt.strftime("%Y-%m-%d")
        elif col.kind == "timestamp":
            out[col.name] = out[col.name].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out.to_csv(path, index=False)


def fingerprint(drop_dir: Path) -> str:
    """SHA-256 over the drop's files: publish only what was validated, byte for byte."""
    digest = hashlib.sha256()
    for path in sorted(drop_dir.iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(delivery.sha256(path).encode())
    return digest.hexdigest()


def _read_manifest(settings: Settings, ds: dt.date, drop_dir: Path) -> dict:
    path = drop_dir / MANIFEST
    if not path.exists():
        where = lake.partition_location(settings.lake, "raw", DROP, ds)
        raise EcomError(f"no drop at {where} (or it has no {MANIFEST}); run the land step for this ds first")
    return json.loads(path.read_text())


def _drop(drop_dir: Path, manifest: dict) -> delivery.Drop:
    """The drop as its manifest describes it, with the source's choice on extra columns."""
    return delivery.Drop(drop_dir, manifest["files"], bool(manifest["request"].get("allow_extra_columns", False)))


def report_location(settings: Settings, ds: dt.date) -> str:
    return lake.partition_location(settings.lake, "reports", "validation", ds)


def newest_curated_day(settings: Settings, before: dt.date, tables: list[str] | None = None) -> dt.date | None:
    """The newest day before ``before`` that the curated fact tables (or ``tables``) hold, None for an empty lake."""
    names = tables if tables is not None else [t for t, spec in contract.TABLES.items() if spec.kind == "fact"]
    days = [d for name in names for d in lake.list_partitions(settings.lake, "curated", name) if d < before]
    return max(days, default=None)


def check_continuity(settings: Settings, start: dt.date, end: dt.date, tables: list[str]) -> None:
    """The gate's first check: a drop must continue the curated history without a hole. A fact table whose newest
    day is older than the day before the drop's window would read the days between as missing forever."""
    behind = {}
    for name in tables:
        if contract.table(name).kind != "fact":
            continue
        newest = newest_curated_day(settings, start, [name])
        if newest is not None and (start - newest).days > 1:
            behind[name] = newest
    if not behind:
        return
    newest = max(behind.values())
    missing = (start - newest).days - 1
    raise DataValidationError(
        f"gap before the drop for ds={end}: the curated lake ends on {newest} ({', '.join(f'{t} {d}' for t, d in sorted(behind.items()))}) "
        f"but the drop starts on {start}, so {missing} day(s) {newest + dt.timedelta(days=1)}..{start - dt.timedelta(days=1)} "
        f"would be missing in {sorted(behind)}. Nothing was published. Land them with this day in one drop: rerun with "
        f"backfill_days={(end - newest).days - 1} (or Param fill_gap=true / ecom ingest --fill-gap)",
        failures=[{"table": t, "check": "continuity", "newest_curated_day": d.isoformat()} for t, d in sorted(behind.items())],
    )


def validate(settings: Settings, ds: dt.date) -> dict:
    """Run the gate on the drop of ``ds``. Raises DataValidationError (after quarantining) if it fails; a drop
    that would leave a hole in the curated history is refused before any check (and not quarantined: it is
    valid, only incomplete)."""
    lake.recover(settings.lake, settings.serving_url)
    with lake.local_folder(settings.lake, "raw", DROP, ds) as drop_dir:
        manifest = _read_manifest(settings, ds, drop_dir)
        drop = _drop(drop_dir, manifest)
        tables = list(drop.tables())
        start, end = dt.date.fromisoformat(manifest["window_start"]), ds
        check_continuity(settings, start, end, tables)
        batch = window.batch_window(settings.lake, start, end, tables)
        reference = _reference_tables(settings, start, tables)
        with lake.commit(settings.lake, label=f"validation report ds={end}") as change:
            folder = change.folder("reports", "validation", ds)
            report, _ = gate.validate_drop(drop, batch, reference, folder)
            payload = json.loads((folder / "report.json").read_text()) | {"fingerprint": fingerprint(drop_dir), "source": manifest["source"]}
            (folder / "report.json").write_text(json.dumps(payload, indent=2, default=str))
        if report.success:
            index = f"{report_location(settings, ds)}/index.html"
            return {"ds": report.ds, "checks": report.checks_run, "rows": report.rows, "notes": report.notes, "report": index}
        quarantine = lake.partition_location(settings.lake, "quarantine", DROP, ds)
        with lake.local_folder(settings.lake, "reports", "validation", ds) as final_report, lake.commit(settings.lake, label=f"quarantine ds={end}") as change:
            folder = change.folder("quarantine", DROP, ds)
            for path in drop_dir.iterdir():
                shutil.copy2(path, folder / path.name)
            shutil.copytree(final_report, folder / "report")
            change.remove("raw", DROP, ds)
    raise DataValidationError(
        f"{report.summary()}\nThe drop was quarantined at {quarantine}; open {quarantine}/report/index.html. "
        "Curated data was not changed. Fix the source and rerun the day.",
        report_path=f"{quarantine}/report/index.html",
        failures=report.failures,
    )


def _reference_tables(settings: Settings, start: dt.date, tables: list[str]) -> dict[str, pd.DataFrame]:
    """Curated parents for foreign keys whose table is not in the drop (dimension snapshots before the window)."""
    needed = {fk.table for name in tables for fk in contract.table(name).foreign_keys} - set(tables)
    ref = {}
    for name in needed:
        if contract.table(name).kind == "dimension" and any(d < start for d in lake.list_partitions(settings.lake, "curated", name)):
            ref[name] = lake.read_latest(settings.lake, "curated", name, start - dt.timedelta(days=1))
    return ref


def publish(settings: Settings, ds: dt.date) -> dict:
    """Split the validated drop into curated partitions and record the validation in the serving store, all in one
    lake commit: readers see the whole day or none of it."""
    lake.recover(settings.lake, settings.serving_url)
    with lake.local_folder(settings.lake, "raw", DROP, ds) as drop_dir:
        manifest = _read_manifest(settings, ds, drop_dir)
        report = _validation_report(settings, ds)
        if not report.get("success") or report.get("fingerprint") != fingerprint(drop_dir):
            raise EcomError(f"the drop for ds={ds} has no passing validation report for its current bytes; run validate first")
        drop = _drop(drop_dir, manifest)
        typed = {name: contract.conform(name, contract.fill_nullable(name, checks.read_csv_text(path))[0]) for name, path in drop.tables().items()}
    start, end = dt.date.fromisoformat(manifest["window_start"]), ds
    written = {}
    with lake.commit(settings.lake, settings.serving_url, label=f"ingest ds={end}") as change:
        for name, frame in typed.items():
            spec = contract.table(name)
            if spec.kind == "dimension":
                change.write("curated", name, end, frame)
                written[name] = 1
                continue
            day = _partition_day(name, frame, typed)
            days = pd.date_range(start, end, freq="D").date
            groups = dict(tuple(frame.groupby(day.to_numpy(), sort=True))) if len(frame) else {}
            change.write_days("curated", name, {d: groups.get(d, frame.iloc[0:0]) for d in days})
            written[name] = len(days)
        summary = pd.DataFrame(
            {
                "ds": end.isoformat(),
                "table_name": sorted(typed),
                "rows": [len(typed[t]) for t in sorted(typed)],
                "window_start": start.isoformat(),
                "source": manifest["source"],
                "checks_run": report["checks_run"],
                "report_path": f"{report_location(settings, ds)}/index.html",
            }
        )
        change.write("reports", VALIDATION_RUNS, end, summary)
        change.serve(VALIDATION_RUNS, end, "reports", summary)
    log.info("published ds=%s: %s partitions", end, written)
    return {"ds": end.isoformat(), "partitions": written, "tables": sorted(typed)}


def _validation_report(settings: Settings, ds: dt.date) -> dict:
    """The gate's report on the drop of ds ({} if it has none)."""
    report = lake.read_partition_file(settings.lake, "reports", "validation", ds, "report.json")
    return {} if report is None else json.loads(report)


def _partition_day(name: str, frame: pd.DataFrame, typed: dict[str, pd.DataFrame]) -> pd.Series:
    spec = contract.table(name)
    if spec.time_column:
        return frame[spec.time_column].dt.date
    if spec.placed_by:  # the gate refused a drop without the parent table
        parent = spec.placed_by
        parent_day = typed[parent.table].set_index(parent.ref_column)[contract.table(parent.table).time_column].dt.date
        return frame[parent.column].map(parent_day)
    raise EcomError(f"fact table {name!r} has no time column to partition by")


def run_day(settings: Settings, request: SourceRequest) -> dict:
    """land -> validate -> publish for one ds, as the DAG does; used by the CLI and the demo."""
    landed = land(settings, request)
    checked = validate(settings, request.ds)
    published = publish(settings, request.ds)
    return {"land": landed.__dict__, "validate": checked, "publish": published}


def ensure_dirs(settings: Settings) -> None:
    """Create the local folders of the embedded configuration (called by entry points, never at import)."""
    for path in (settings.home, settings.lake):
        if isinstance(path, Path):  # an object-store lake needs no folder
            os.makedirs(path, exist_ok=True)
