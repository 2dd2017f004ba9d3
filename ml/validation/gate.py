"""The gate on one drop: every layer in order, the report written beside the Data Docs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from ml import contract
from ml.delivery import Drop, delivery_failures
from ml.validation.checks import column_failures, nullable_notes, read_drop_file, referential_failures, timezone_failures
from ml.validation.gx import build_data_docs, content_expectations, gx_context, run_suites, schema_expectations
from ml.validation.report import Failure, Report, write_report
from ml.validation.window import BatchWindow

log = logging.getLogger(__name__)


def validate_drop(drop: Drop, window: BatchWindow, reference: dict[str, pd.DataFrame], docs_dir: Path) -> tuple[Report, dict[str, pd.DataFrame]]:
    """Run every layer on a drop; returns the report and the typed frames that passed."""
    ds = window.end.isoformat()
    t0 = time.perf_counter()
    failures, checks = delivery_failures(drop)
    notes: list[str] = []
    text_frames: dict[str, pd.DataFrame] = {}
    differs_from_manifest = {f.table for f in failures if f.check == "file_matches_manifest"}
    for table, path in drop.tables().items():
        if table in differs_from_manifest:
            continue  # a truncated or altered file is not read: its rows would be noise
        frame, file_failures = read_drop_file(path, table)
        checks += 1
        failures += file_failures
        if frame is None:
            continue
        checks += 2 + sum(c.kind == "timestamp" for c in contract.table(table).columns)  # rows, columns, zones
        listed_rows = drop.listed[path.name]["rows"]
        if len(frame) != listed_rows:
            failures.append(Failure(table, "file_rows_match_manifest", None, f"{path.name} has {len(frame)} data rows, the manifest lists {listed_rows}"))
        extra_failures, extra_notes = column_failures(table, frame, drop.allow_extra_columns)
        tz_failures, tz_notes = timezone_failures(table, frame)
        frame, null_notes = nullable_notes(table, frame)
        failures += extra_failures + tz_failures
        notes += extra_notes + null_notes + tz_notes
        text_frames[table] = frame
    rows = {t: len(f) for t, f in text_frames.items()}
    ctx = gx_context(docs_dir / "data_docs")
    schema_exps = {t: schema_expectations(contract.table(t), list(f.columns)) for t, f in text_frames.items()}
    schema_failures, n = run_suites(ctx, "schema", text_frames, schema_exps)
    checks += n
    failures += schema_failures
    broken = {f.table for f in schema_failures} | {f.table for f in failures if f.check == "timestamp_timezone_consistent"}
    typed = {t: contract.conform(t, f) for t, f in text_frames.items() if t not in broken}
    content_exps = {t: content_expectations(contract.table(t), window) for t in typed}
    content_failures, n = run_suites(ctx, "content", typed, content_exps)
    checks += n
    failures += content_failures
    fk_failures, skipped, n = referential_failures(typed, reference)
    checks += n
    failures += fk_failures
    if text_frames:
        build_data_docs(ctx, docs_dir / "data_docs")
    report = Report(ds=ds, rows=rows, failures=failures, checks_run=checks, skipped=skipped, notes=notes)
    write_report(report, docs_dir)
    elapsed = time.perf_counter() - t0
    log.info("%s (%d rows in %.1fs, %.0f rows/s)", report.summary(), sum(rows.values()), elapsed, sum(rows.values()) / max(elapsed, 1e-9))
    return report, ({} if failures else typed)
