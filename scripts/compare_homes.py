"""Compare the outputs of two ECOM_HOMEs (e.g. ``make demo`` before and after a refactor, same day and seed):
every Parquet partition and JSON file of the lake's curated, outputs, features and reports zones, and every table
of the serving store. Frames are compared sorted (row order is not part of the contract); run-specific fields
(report paths, timings, fingerprints) are left out. Exits 1 when anything differs.

    python scripts/compare_homes.py /tmp/demo-before /tmp/demo-after
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pandas as pd

ZONES = ("curated", "outputs", "features", "reports")
RUN_SPECIFIC = ("report_path", "seconds", "solve_seconds", "fingerprint", "report")


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in RUN_SPECIFIC if c in frame.columns])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True) if len(frame) else frame


def files(home: Path, zone: str) -> set[Path]:
    root = home / "lake" / zone
    return {p.relative_to(root) for p in root.rglob("*") if p.suffix in (".parquet", ".json") and not any(s.startswith(".") for s in p.parts)}


def json_without_run_fields(path: Path) -> object:
    value = json.loads(path.read_text())
    return {k: v for k, v in value.items() if k not in RUN_SPECIFIC} if isinstance(value, dict) else value


def compare(a: Path, b: Path) -> list[str]:
    differences, same = [], 0
    for zone in ZONES:
        left, right = files(a, zone), files(b, zone)
        differences += [f"{zone}/{p}: only in one home" for p in sorted(left ^ right)]
        for rel in sorted(left & right):
            x, y = a / "lake" / zone / rel, b / "lake" / zone / rel
            if rel.suffix == ".parquet":
                equal = canonical(pd.read_parquet(x)).equals(canonical(pd.read_parquet(y)))
            else:
                equal = json_without_run_fields(x) == json_without_run_fields(y)
            same += equal
            if not equal:
                differences.append(f"{zone}/{rel}: differs")
    for table in serving_tables(a) | serving_tables(b):
        equal = canonical(serving(a, table)).equals(canonical(serving(b, table)))
        same += equal
        if not equal:
            differences.append(f"serving {table}: differs")
    print(f"{same} identical files and serving tables")
    return differences


def serving_tables(home: Path) -> set[str]:
    with sqlite3.connect(home / "serving.db") as con:
        return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def serving(home: Path, table: str) -> pd.DataFrame:
    with sqlite3.connect(home / "serving.db") as con:
        return pd.read_sql(f'SELECT * FROM "{table}"', con)


if __name__ == "__main__":
    found = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for line in found:
        print(line)
    sys.exit(1 if found else 0)
