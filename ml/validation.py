"""The validation gate: delivery checks, file checks, Great Expectations suites derived from the contract, and
batch checks.

A drop passes four layers, each reported with the table, the check and a sample of bad rows:
0. the delivery against its manifest: no file missing, extra or misnamed (with a "did you mean"), none truncated
   or altered (size and SHA-256), row counts as listed, and a table's parent in the same drop when its rows are
   placed by it (order lines with their orders);
1. file checks on every CSV (empty, not UTF-8, wrong delimiter, truncated, unparsable), columns the contract does
   not have (refused, or ignored and reported when the source allows it), timestamps that mix naive values with
   offsets (refused; a consistent offset is converted to UTC and reported);
2. GX phase "schema" on the raw text: required columns exist (a nullable column left out is filled with nulls
   and reported), required values present, values look like their type, values in their allowed set;
3. GX phase "content" on typed values: ranges, unique keys, ordered column pairs, the batch window (no future or
   stale rows), freshness of daily tables and volume against previous days; plus referential integrity,
   computed with pandas because a GX value set of every product id would bloat the suite and its Data Docs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml import contract, lake
from ml.delivery import Drop, delivery_failures, did_you_mean
from ml.validation_report import Failure, Report, write_report

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5
VOLUME_HISTORY_DAYS = 28
VOLUME_BOUNDS = (0.2, 5.0)
"""A fact table's rows per day must stay within these multiples of its median over the previous days."""


# ---------------------------------------------------------------- file checks


def csv_line(row: int) -> int:
    """Line number in the CSV file of a 0-based data row (line 1 is the header)."""
    return row + 2


def read_drop_file(path: Path, table: str) -> tuple[pd.DataFrame | None, list[Failure]]:
    """Read one CSV of a drop as text columns; file-level problems come back as failures, never raised."""
    data = path.read_bytes()
    if not data.strip():
        return None, [Failure(table, "file_not_empty", None, f"{path.name} is empty (0 data bytes); re-export the table")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Failure(table, "file_is_utf8", None, f"{path.name}: byte {data[exc.start]:#04x} at offset {exc.start} is not UTF-8; re-export as UTF-8")]
    header = text.split("\n", 1)[0].rstrip("\r")
    expected = contract.table(table).column_names
    if "," not in header and any(d in header for d in ";\t|"):
        sep = next(d for d in ";\t|" if d in header)
        return None, [
            Failure(
                table, "file_delimiter_is_comma", None, f"{path.name}: header {header[:80]!r} is separated by {sep!r}, not ','; expected columns {expected}"
            )
        ]
    if not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        fields = next(csv.reader([last]), [])
        n_header = len(next(csv.reader([header])))
        if len(fields) < n_header or last.count('"') % 2:
            line_no = text.count("\n") + 1
            return None, [
                Failure(
                    table,
                    "file_is_complete",
                    None,
                    f"{path.name}: last line {line_no} has {len(fields)} of {n_header} fields and no newline: the file looks truncated; re-send it",
                    sample=[{"line": line_no, "text": last[:120]}],
                )
            ]
    try:
        frame = read_csv_text(io.StringIO(text))
    except (pd.errors.ParserError, csv.Error) as exc:
        return None, [Failure(table, "file_parses_as_csv", None, f"{path.name}: {exc}")]
    return frame, []


def read_csv_text(source) -> pd.DataFrame:
    """A drop CSV as text columns, empty fields as nulls (the gate and publish read files the same way)."""
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])


def column_failures(table: str, frame: pd.DataFrame, allow_extra: bool) -> tuple[list[Failure], list[str]]:
    """Columns the contract does not have: refused, or ignored with a note when the source allows it."""
    spec = contract.table(table)
    extra = [c for c in frame.columns if c not in spec.column_names]
    if not extra:
        return [], []
    if allow_extra:
        return [], [f"{table}: ignored column(s) {extra} that the contract does not have (allow_extra_columns)"]
    return [
        Failure(
            table,
            "no_extra_columns",
            c,
            f"column {c!r} is not in the contract{did_you_mean(c, spec.column_names)}; remove it at the source, or "
            "set allow_extra_columns=true to ignore such columns (they are reported)",
        )
        for c in extra
    ], []


def nullable_notes(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill the nullable columns a file left out, with a note naming them."""
    filled, absent = contract.fill_nullable(table, frame)
    return filled, ([f"{table}: column(s) {absent} not in the file; filled with nulls (nullable in the contract)"] if absent else [])


OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def timezone_failures(table: str, frame: pd.DataFrame) -> tuple[list[Failure], list[str]]:
    """Timestamps must state their zone one way within a column: all naive (read as UTC, as the contract says) or
    all with an offset (converted to UTC; a non-UTC offset is reported). Naive values mixed with offsets are
    refused: which zone the naive ones are in cannot be known."""
    failures, notes = [], []
    for col in contract.table(table).columns:
        if col.kind != "timestamp" or col.name not in frame.columns:
            continue
        values = frame[col.name].dropna()
        if not len(values) or values.str.endswith("Z").all():
            continue
        aware = values.str.contains(OFFSET, regex=True)
        if aware.any() and not aware.all():
            naive_rows, aware_rows = values.index[~aware], values.index[aware]
            sample = [{"line": csv_line(int(i)), col.name: values[i]} for i in [*naive_rows[:2], *aware_rows[:2]]]
            failures.append(
                Failure(
                    table,
                    "timestamp_timezone_consistent",
                    col.name,
                    f"{int((~aware).sum())} values have no timezone and {int(aware.sum())} have one; state the offset on every value (or on none, meaning UTC)",
                    int((~aware).sum()),
                    sample,
                )
            )
        elif aware.all():
            offsets = values.str.extract(r"([+-]\d{2}:?\d{2})$")[0].dropna().unique()
            non_utc = sorted(o for o in offsets if o.replace(":", "") not in ("+0000", "-0000"))
            if non_utc:
                notes.append(f"{table}.{col.name}: converted from offset(s) {non_utc[:5]} to UTC")
    return failures, notes


# ---------------------------------------------------------------- suites from the contract


def _schema_expectations(spec: contract.Table, present: list[str]) -> list:
    import great_expectations.expectations as gxe

    exps: list = [gxe.ExpectColumnToExist(column=c.name) for c in spec.columns if not c.nullable]
    for col in spec.columns:
        if col.name not in present:
            continue
        if not col.nullable:
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.kind in contract.CSV_PATTERNS:
            exps.append(gxe.ExpectColumnValuesToMatchRegex(column=col.name, regex=contract.CSV_PATTERNS[col.kind]))
        if col.allowed:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)))
    return exps


@dataclass(frozen=True)
class BatchWindow:
    """The days a drop covers and what the lake says about the previous days."""

    start: dt.date
    end: dt.date
    previous_rows_per_day: dict[str, float]  # median rows/day of each fact table over the previous days
    previous_snapshot_rows: dict[str, int]  # rows of each dimension table's latest snapshot

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _content_expectations(spec: contract.Table, window: BatchWindow) -> list:
    import great_expectations.expectations as gxe

    exps: list = []
    for col in spec.columns:
        if col.min is not None or col.max is not None:
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max, strict_min=col.strict_min))
    if len(spec.key) == 1:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=spec.key[0]))
    else:
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key)))
    for a, b in spec.ordered:
        exps.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"))
    # Dimensions and daily facts must not arrive empty; sparse facts (campaign outcomes) may.
    min_rows, max_rows = (1 if spec.kind == "dimension" or spec.expect_daily else 0), None
    if spec.time_column:
        lo = pd.Timestamp(window.start, tz="UTC")
        hi = pd.Timestamp(window.end, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=spec.time_column, min_value=lo, max_value=hi))
        if spec.expect_daily:
            exps.append(gxe.ExpectColumnMaxToBeBetween(column=spec.time_column, min_value=pd.Timestamp(window.end, tz="UTC")))
        if spec.name in window.previous_rows_per_day:
            per_day = window.previous_rows_per_day[spec.name] * window.days
            min_rows, max_rows = max(1, int(VOLUME_BOUNDS[0] * per_day)), int(np.ceil(VOLUME_BOUNDS[1] * per_day))
    elif spec.name in window.previous_snapshot_rows:
        prev = window.previous_snapshot_rows[spec.name]
        min_rows, max_rows = max(1, prev // 2), prev * 2 + 10
    exps.append(gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, max_value=max_rows))
    return exps


# ---------------------------------------------------------------- running GX


def _gx_context(project_dir: Path):
    """A file-backed GX context in ``project_dir`` (its Data Docs site lives there too), no progress bars."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(project_dir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _run_suites(ctx, phase: str, frames: dict[str, pd.DataFrame], expectations: dict[str, list]) -> tuple[list[Failure], int]:
    """Validate each frame against its expectations; results are stored in the context for its Data Docs."""
    import great_expectations as gx

    if not frames:
        return [], 0
    source = ctx.data_sources.add_or_update_pandas(f"drop_{phase}")
    result_format = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_ROWS}
    failures, checks = [], 0
    for table, frame in frames.items():  # one checkpoint per table: GX binds one dataframe per run
        name = f"{table}.{phase}"
        batch_def = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("whole")
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=expectations[table]))
        definition = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition], result_format=result_format))
        for result in checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values():
            checks += len(result.results)
            failures += [_failure(table, r, frame) for r in result.results if not r.success]
    return failures, checks


def _failure(table: str, result, frame: pd.DataFrame) -> Failure:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")}
    column = kwargs.pop("column", None) or kwargs.get("column_A")
    res = result.result or {}
    rows = res.get("unexpected_index_list") or res.get("partial_unexpected_index_list") or []
    sample = []
    for idx in list(rows)[:SAMPLE_ROWS]:
        if isinstance(idx, (int, np.integer)) and 0 <= idx < len(frame):
            rec = {k: (None if pd.isna(v) else str(v)) for k, v in frame.iloc[int(idx)].to_dict().items()}
            sample.append({"line": csv_line(int(idx)), **rec})
    if not sample and res.get("partial_unexpected_list"):
        sample = [{"value": str(v)} for v in res["partial_unexpected_list"][:SAMPLE_ROWS]]
    if result.exception_info and result.exception_info.get("raised_exception"):
        detail = f"could not be evaluated: {result.exception_info.get('exception_message')}"
    else:
        rule = cfg.type.removeprefix("expect_").replace("_", " ")
        args = f" ({_short(kwargs)})" if _short(kwargs) else ""
        observed = f"; observed {res['observed_value']!r}" if "observed_value" in res else ""
        detail = f"{rule}{args}{observed}"
    return Failure(table, cfg.type, column, detail, res.get("unexpected_count"), sample)


def _short(kwargs: dict) -> str:
    return ", ".join(f"{k}={str(v)[:60]}" for k, v in kwargs.items() if v is not None and k != "column")


# ---------------------------------------------------------------- referential integrity


def referential_failures(typed: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> tuple[list[Failure], list[str], int]:
    """Foreign keys of every table in the drop against the drop itself, else the curated lake."""
    failures, skipped, checks = [], [], 0
    for name, frame in typed.items():
        for fk in contract.table(name).foreign_keys:
            parent = typed.get(fk.table, reference.get(fk.table))
            if parent is None:
                skipped.append(f"{name}.{fk.column} -> {fk.table}.{fk.ref_column}: no {fk.table} in the drop or the lake")
                continue
            checks += 1
            values = frame[fk.column]
            bad = values.notna() & ~values.isin(parent[fk.ref_column])
            if bad.any():
                rows = frame[bad].head(SAMPLE_ROWS)
                sample = [{"line": csv_line(int(i)), **{k: str(v) for k, v in r.items()}} for i, r in rows.iterrows()]
                failures.append(
                    Failure(
                        name,
                        "referential_integrity",
                        fk.column,
                        f"values not found in {fk.table}.{fk.ref_column} (e.g. {sorted(set(values[bad].astype(str)))[:3]})",
                        int(bad.sum()),
                        sample,
                    )
                )
    return failures, skipped, checks


# ---------------------------------------------------------------- the gate


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
    project = docs_dir / ".gx-project"  # inside the report's staging folder: a killed run leaves nothing elsewhere
    project.mkdir(parents=True, exist_ok=True)
    ctx = _gx_context(project)
    schema_exps = {t: _schema_expectations(contract.table(t), list(f.columns)) for t, f in text_frames.items()}
    schema_failures, n = _run_suites(ctx, "schema", text_frames, schema_exps)
    checks += n
    failures += schema_failures
    broken = {f.table for f in schema_failures} | {f.table for f in failures if f.check == "timestamp_timezone_consistent"}
    typed = {t: contract.conform(t, f) for t, f in text_frames.items() if t not in broken}
    content_exps = {t: _content_expectations(contract.table(t), window) for t in typed}
    content_failures, n = _run_suites(ctx, "content", typed, content_exps)
    checks += n
    failures += content_failures
    fk_failures, skipped, n = referential_failures(typed, reference)
    checks += n
    failures += fk_failures
    if text_frames:
        ctx.build_data_docs()
        shutil.copytree(project / "gx" / "uncommitted" / "data_docs" / "local_site", docs_dir / "data_docs")
    shutil.rmtree(project)
    report = Report(ds=ds, rows=rows, failures=failures, checks_run=checks, skipped=skipped, notes=notes)
    write_report(report, docs_dir)
    elapsed = time.perf_counter() - t0
    log.info("%s (%d rows in %.1fs, %.0f rows/s)", report.summary(), sum(rows.values()), elapsed, sum(rows.values()) / max(elapsed, 1e-9))
    return report, ({} if failures else typed)


def batch_window(lake_dir: Path, start: dt.date, end: dt.date, tables: list[str]) -> BatchWindow:
    """What the curated lake knows before ``start``: rows per day of fact tables, snapshot sizes of dimensions."""
    per_day, snapshot = {}, {}
    for name in tables:
        spec = contract.table(name)
        days = [d for d in lake.list_partitions(lake_dir, "curated", name) if d < start]
        if not days:
            continue
        if spec.kind == "fact" and spec.expect_daily:
            recent = days[-VOLUME_HISTORY_DAYS:]
            counts = [lake.partition_rows(lake_dir, "curated", name, d) for d in recent]
            per_day[name] = float(np.median(counts))
        elif spec.kind == "dimension":
            snapshot[name] = lake.partition_rows(lake_dir, "curated", name, days[-1])
    return BatchWindow(start=start, end=end, previous_rows_per_day=per_day, previous_snapshot_rows=snapshot)
