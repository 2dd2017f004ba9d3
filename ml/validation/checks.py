"""The checks made with pandas: each CSV file of a drop (empty, not UTF-8, wrong delimiter, truncated,
unparsable; extra, missing-nullable and timezone-mixing columns) and referential integrity across tables (a GX
value set of every product id would bloat the suite and its Data Docs)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from ml import contract
from ml.delivery import did_you_mean
from ml.validation.report import Failure

SAMPLE_ROWS = 5


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
