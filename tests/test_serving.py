import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

from ml import serving
from ml.errors import EcomError


def _rows(ds: str, n: int, value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"ds": ds, "customer_id": [f"C{i}" for i in range(n)], "score": value})


def _check_replace_semantics(url: str, table: str) -> None:
    serving.replace_ds(url, table, "2024-01-01", _rows("2024-01-01", 3))
    serving.replace_ds(url, table, "2024-01-02", _rows("2024-01-02", 2))
    serving.replace_ds(url, table, "2024-01-01", _rows("2024-01-01", 4, 2.0))  # rerun of the same day
    day1 = serving.read_ds(url, table, "2024-01-01")
    assert len(day1) == 4 and set(day1["score"]) == {2.0}
    assert len(serving.read_ds(url, table, "2024-01-02")) == 2
    # A failing insert (a column the table lacks) rolls back the delete too: the old rows stay.
    bad = _rows("2024-01-01", 1).assign(unknown_column=1)
    with pytest.raises(EcomError, match=f"serving table '{table}'.*rolled back"):
        serving.replace_ds(url, table, "2024-01-01", bad)
    assert len(serving.read_ds(url, table, "2024-01-01")) == 4


def test_replace_ds_on_sqlite(tmp_path):
    _check_replace_semantics(f"sqlite:///{tmp_path / 'serving.db'}", "scores")


@pytest.mark.postgres
def test_replace_ds_on_postgres(postgres_url):
    table = f"scores_{uuid.uuid4().hex[:8]}"
    try:
        _check_replace_semantics(postgres_url, table)
    finally:
        eng = sa.create_engine(postgres_url)
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        eng.dispose()


def test_rows_of_another_day_are_refused(tmp_path):
    with pytest.raises(EcomError, match="rows have ds != 2024-01-01"):
        serving.replace_ds(f"sqlite:///{tmp_path / 's.db'}", "scores", "2024-01-01", _rows("2024-01-02", 1))
