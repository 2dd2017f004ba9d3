"""The Great Expectations adapter: suites generated from the contract (phase "schema" on the raw text, phase
"content" on typed values and the batch window), run one checkpoint per table in an in-memory context, and
their failed results turned into report failures with sample rows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ml import contract
from ml.validation.checks import SAMPLE_ROWS, csv_line
from ml.validation.report import Failure
from ml.validation.window import VOLUME_BOUNDS, BatchWindow


def schema_expectations(spec: contract.Table, present: list[str]) -> list:
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


def content_expectations(spec: contract.Table, window: BatchWindow) -> list:
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


def gx_context(docs_dir: Path):
    """An in-memory GX context whose Data Docs site is written to ``docs_dir``, no progress bars.

    Nothing outlives one drop's gate but its Data Docs, so suites, checkpoints and results stay in memory: a
    file-backed project writes and re-reads each of them as YAML or JSON, for nothing."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = {"class_name": "SiteBuilder", "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}}
    ctx.variables.data_docs_sites = {"local_site": site}
    return ctx


def build_data_docs(ctx, docs_dir: Path) -> None:
    """Write the context's Data Docs into ``docs_dir``, without the site assets no page links to.

    GX copies its whole ``static`` folder into every site: fonts and animated GIFs of its own tutorial, 4 MB in 20
    files, which the pages never load (they link the favicon only). A daily report kept them all, in the lake and in
    every quarantine, uploaded and copied file by file on an object store."""
    ctx.build_data_docs()
    pages = "\n".join(page.read_text(errors="replace") for page in docs_dir.rglob("*.html"))
    static = docs_dir / "static"
    for asset in [p for p in static.rglob("*") if p.is_file()]:
        if f"static/{asset.relative_to(static).as_posix()}" not in pages:
            asset.unlink()
    for folder in sorted(static.rglob("*"), reverse=True):  # a folder after its subfolders
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def run_suites(ctx, phase: str, frames: dict[str, pd.DataFrame], expectations: dict[str, list]) -> tuple[list[Failure], int]:
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
