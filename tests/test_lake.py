import pandas as pd
import pytest

from ml import lake


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


def test_write_replaces_partition_whole(tmp_path):
    lake.write_partition(tmp_path, "curated", "t", "2024-01-02", _frame(5))
    lake.write_partition(tmp_path, "curated", "t", "2024-01-02", _frame(2))
    assert lake.read_partition(tmp_path, "curated", "t", "2024-01-02")["x"].tolist() == [0, 1]
    assert lake.partition_rows(tmp_path, "curated", "t", "2024-01-02") == 2
    leftovers = [p.name for p in (tmp_path / "curated" / "t").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_crash_during_write_keeps_the_old_partition(tmp_path):
    lake.write_partition(tmp_path, "curated", "t", "2024-01-02", _frame(3))
    target = lake.partition_dir(tmp_path, "curated", "t", "2024-01-02")
    with pytest.raises(RuntimeError):
        with lake.atomic_dir(target) as tmp:
            (tmp / lake.PARQUET_FILE).write_bytes(b"PAR1 half a file")
            raise RuntimeError("killed mid-write")
    assert lake.read_partition(tmp_path, "curated", "t", "2024-01-02")["x"].tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["ds=2024-01-02"]


def test_read_range_and_latest(tmp_path):
    for day, n in [("2024-01-01", 1), ("2024-01-02", 2), ("2024-01-05", 5)]:
        lake.write_partition(tmp_path, "curated", "t", day, _frame(n))
    with pytest.raises(lake.MissingPartitionsError, match=r"2 day\(s\) missing in 2024-01-02..2024-01-05: 2024-01-03..2024-01-04"):
        lake.read_range(tmp_path, "curated", "t", "2024-01-02", "2024-01-05")  # missing days are not zeros
    for day in ("2024-01-03", "2024-01-04"):
        lake.write_partition(tmp_path, "curated", "t", day, _frame(0))  # published days without rows are zeros
    assert len(lake.read_range(tmp_path, "curated", "t", "2023-12-01", "2024-01-05")) == 8  # before the first: fine
    assert len(lake.read_latest(tmp_path, "curated", "t", "2024-01-04")) == 0  # the empty day 2024-01-04
    assert lake.list_partitions(tmp_path, "curated", "t")[0].isoformat() == "2024-01-01"


def test_unknown_zone_and_bad_date_are_clear_errors(tmp_path):
    with pytest.raises(Exception, match="unknown lake zone 'gold'"):
        lake.partition_dir(tmp_path, "gold", "t", "2024-01-01")
    with pytest.raises(Exception, match="not of the form YYYY-MM-DD"):
        lake.partition_dir(tmp_path, "curated", "t", "01/02/2024")
