"""The serving store: tables that applications read, keyed by the logical date ``ds``.

Writing a ``ds`` deletes that day's rows and inserts the new ones in one transaction, so a rerun replaces a
day instead of duplicating it, and a failed write leaves the previous rows in place.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from ml.dates import as_date
from ml.errors import EcomError


def engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets a busy timeout so parallel tasks wait instead of failing, and its folder
    (the embedded default keeps the file in ECOM_HOME, which nothing else may have created with the lake elsewhere)."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, pool_pre_ping=True)


def replace_ds(url: str, table: str, ds: str | dt.date, frame: pd.DataFrame, chunksize: int = 50_000) -> int:
    """Replace the rows of ``table`` for ``ds`` with ``frame`` in one transaction; returns rows written.

    ``frame`` must carry a ``ds`` column equal to ``ds`` on every row (checked, never rewritten silently).
    """
    day = as_date(ds).isoformat()
    if "ds" not in frame.columns:
        raise EcomError(f"serving table {table!r}: the frame has no 'ds' column")
    wrong = frame.loc[frame["ds"].astype(str).str[:10] != day, "ds"]
    if len(wrong):
        raise EcomError(f"serving table {table!r}: {len(wrong)} rows have ds != {day}, e.g. {wrong.head(3).tolist()}")
    rows = frame.assign(ds=day)
    eng = engine(url)
    try:
        with eng.begin() as conn:
            if sa.inspect(conn).has_table(table):
                conn.execute(sa.text(f'DELETE FROM "{table}" WHERE ds = :ds'), {"ds": day})
            # plain executemany: measured faster than multi-row VALUES (method="multi") on both SQLite and PostgreSQL
            rows.to_sql(table, conn, if_exists="append", index=False, chunksize=chunksize)
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        raise EcomError(f"serving table {table!r}: writing ds={day} failed and was rolled back (the previous rows are kept): {str(exc)[:500]}") from exc
    finally:
        eng.dispose()
    return len(rows)


def read_ds(url: str, table: str, ds: str | dt.date) -> pd.DataFrame:
    """The rows of ``table`` for ``ds`` (empty if the table does not exist yet)."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return pd.DataFrame()
            return pd.read_sql(sa.text(f'SELECT * FROM "{table}" WHERE ds = :ds'), conn, params={"ds": as_date(ds).isoformat()})
    finally:
        eng.dispose()
