"""The gate stops every kind of bad drop with a message naming the table and the check; curated data stays."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_settings
from ml import ingest, lake
from ml.errors import DataValidationError
from ml.sources import SourceRequest

DS = "2024-03-20"


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory) -> Path:
    """Curated history up to the day before DS, and a clean landed drop for DS."""
    home = tmp_path_factory.mktemp("base") / "ecom"
    s = make_settings(home)
    ingest.run_day(s, SourceRequest("synthetic", "2024-03-19", scale="tiny", backfill_days=13))
    ingest.land(s, SourceRequest("synthetic", DS, scale="tiny", backfill_days=0))
    return home


@pytest.fixture
def case(base_lake, tmp_path):
    home = tmp_path / "ecom"
    shutil.copytree(base_lake, home)
    s = make_settings(home)
    return s, lake.partition_dir(s.lake_dir, "raw", ingest.DROP, DS)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _edit(table: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(drop: Path) -> None:
        path = drop / f"{table}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        change(frame).to_csv(path, index=False)

    return apply


def _set(column: str, value: str, rows=slice(0, 2)):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index[rows], column] = value
        return frame

    return change


def _raw(table: str, change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(drop: Path) -> None:
        path = drop / f"{table}.csv"
        path.write_bytes(change(path.read_bytes()))

    return apply


BAD_DROPS = {
    "missing_column": (_edit("order_items", lambda f: f.drop(columns="qty")), "order_items", "expect_column_to_exist"),
    "wrong_type": (_edit("orders", _set("order_ts", "yesterday")), "orders", "expect_column_values_to_match_regex"),
    "null_keys": (_edit("events", _set("customer_id", "")), "events", "expect_column_values_to_not_be_null"),
    "duplicate_keys": (_edit("orders", lambda f: pd.concat([f, f.head(2)])), "orders", "expect_column_values_to_be_unique"),
    "negative_quantity": (_edit("order_items", _set("qty", "-3")), "order_items", "expect_column_values_to_be_between"),
    "unknown_product_ids": (_edit("order_items", _set("product_id", "P99999")), "order_items", "referential_integrity"),
    "future_timestamps": (_edit("events", _set("event_ts", "2024-04-30T10:00:00.000000Z")), "events", "expect_column_values_to_be_between"),
    "empty_file": (_raw("products", lambda b: b""), "products", "file_not_empty"),
    "truncated_file": (_raw("events", lambda b: b[: len(b) // 2]), "events", "file_is_complete"),
    "wrong_delimiter": (_raw("customers", lambda b: b.replace(b",", b";")), "customers", "file_delimiter_is_comma"),
    "wrong_encoding": (_raw("products", lambda b: b.replace(b"item 1 ", "Crème brûlée ".encode("latin-1"), 1)), "products", "file_is_utf8"),
    "unknown_event_type": (_edit("events", _set("event_type", "click")), "events", "expect_column_values_to_be_in_set"),
    "volume_collapse": (_edit("events", lambda f: f.tail(1)), "events", "expect_table_row_count_to_be_between"),
    "stale_drop": (_edit("orders", lambda f: f.head(0)), "orders", "expect_table_row_count_to_be_between"),
    "promise_before_order": (_edit("orders", _set("promised_date", "2024-01-01")), "orders", "expect_column_pair_values_a_to_be_greater_than_b"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DROPS))
def test_bad_drop_is_stopped_and_quarantined(case, kind):
    settings, drop = case
    corrupt, table, check = BAD_DROPS[kind]
    curated_before = _digest(settings.lake_dir / "curated")
    corrupt(drop)
    with pytest.raises(DataValidationError) as err:
        ingest.validate(settings, DS)
    message = str(err.value)
    assert f"{table}" in message and check in message, message
    assert any(f.table == table and f.check == check for f in err.value.failures)
    failure = next(f for f in err.value.failures if f.table == table and f.check == check)
    if check not in ("file_not_empty", "file_is_utf8", "file_delimiter_is_comma", "expect_column_to_exist",
                     "expect_table_row_count_to_be_between"):
        assert failure.sample, f"{kind}: no sample of bad rows"
    quarantine = lake.partition_dir(settings.lake_dir, "quarantine", ingest.DROP, DS)
    assert (quarantine / "report" / "index.html").exists() and (quarantine / f"{table}.csv").exists()
    assert not drop.exists(), "a failed drop must leave the raw zone"
    assert _digest(settings.lake_dir / "curated") == curated_before
    with pytest.raises(Exception, match="run the land step"):
        ingest.publish(settings, DS)


def test_clean_drop_passes_and_publishes(case):
    settings, _ = case
    checked = ingest.validate(settings, DS)
    assert checked["checks"] > 150 and Path(checked["report"]).exists()
    assert (Path(checked["report"]).parent / "data_docs" / "index.html").exists()
    summary = Path(checked["report"]).read_text()
    assert 'href="data_docs/validations/orders/content/' in summary and "PASSED" in summary
    published = ingest.publish(settings, DS)
    assert published["partitions"]["events"] == 1
    assert len(lake.read_partition(settings.lake_dir, "curated", "events", DS)) > 0


def test_drop_changed_after_validation_is_not_published(case):
    settings, drop = case
    ingest.validate(settings, DS)
    _edit("orders", _set("warehouse_id", "W0"))(drop)
    with pytest.raises(Exception, match="no passing validation report for its current bytes"):
        ingest.publish(settings, DS)
