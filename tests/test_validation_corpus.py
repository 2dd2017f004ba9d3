"""The gate stops every kind of bad drop with a message naming the table and the check; curated data stays.

Most cases are bad exports: the sender's manifest describes the bad file (the test restates it). The "in transit"
cases change a file after its manifest was written, as a cut or tampered transfer would."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import S3_SUITE, committed_digests, copy_home, make_settings, put_partition_files
from ml import delivery, ingest, lake
from ml.errors import DataValidationError
from ml.sources import SourceRequest

DS = dt.date(2024, 3, 20)


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory) -> Path:
    """Curated history up to the day before DS, and a clean landed drop for DS."""
    home = tmp_path_factory.mktemp("base") / "ecom"
    s = make_settings(home)
    ingest.run_day(s, SourceRequest("synthetic", dt.date(2024, 3, 19), scale="tiny", backfill_days=13))
    ingest.land(s, SourceRequest("synthetic", DS, scale="tiny", backfill_days=0))
    return home


@pytest.fixture
def case(base_lake, tmp_path):
    """The settings of a copy of the base lake, and the landed drop as a local folder to spoil: the drop itself in a
    local lake, a copy of it for an object-store lake (:func:`_validate` puts it back, as a transfer would)."""
    home = tmp_path / "ecom"
    copy_home(base_lake, home)
    s = make_settings(home)
    if S3_SUITE:
        with lake.local_folder(s.lake, "raw", ingest.DROP, DS) as landed:
            return s, Path(shutil.copytree(landed, tmp_path / "drop"))
    return s, lake.partition_dir(s.lake, "raw", ingest.DROP, DS)


def _validate(settings, drop: Path) -> dict:
    """Validate the drop as it is in ``drop`` now."""
    if S3_SUITE:
        put_partition_files(settings.lake, "raw", ingest.DROP, DS, drop)
    return ingest.validate(settings, DS)


def _publish(settings, drop: Path) -> dict:
    if S3_SUITE:
        put_partition_files(settings.lake, "raw", ingest.DROP, DS, drop)
    return ingest.publish(settings, DS)


def _report(settings, name: str = "index.html", zone: str = "reports", table: str = "validation") -> str:
    content = lake.read_partition_file(settings.lake, zone, table, DS, name)
    assert content is not None, f"no {name} in {zone}/{table} ds={DS}"
    return content.decode()


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


def _rename(name: str, to: str) -> Callable[[Path], None]:
    def apply(drop: Path) -> None:
        (drop / name).rename(drop / to)

    return apply


def _unlist(name: str) -> Callable[[Path], None]:
    def apply(drop: Path) -> None:
        manifest = json.loads((drop / delivery.MANIFEST).read_text())
        del manifest["files"][name]
        (drop / delivery.MANIFEST).write_text(json.dumps(manifest))

    return apply


def _offsets(column: str, every: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Write every ``every``-th timestamp as the same instant at +05:00 (every=1: all of them)."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame.index[::every]
        local = pd.to_datetime(frame.loc[rows, column], utc=True).dt.tz_convert("Etc/GMT-5")
        frame.loc[rows, column] = local.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+05:00")
        if every > 1:  # the others lose their zone
            others = frame.index.difference(rows)
            frame.loc[others, column] = frame.loc[others, column].str.removesuffix("Z")
        return frame

    return change


def _restate(drop: Path, name: str) -> None:
    """The sender's manifest, written after its (bad) export."""
    manifest = json.loads((drop / delivery.MANIFEST).read_text())
    manifest["files"][name] = delivery.describe(drop / name)
    (drop / delivery.MANIFEST).write_text(json.dumps(manifest))


IN_TRANSIT = {
    # a value cut inside the last field: the field count stays complete, only the manifest's size tells
    "value_cut_in_last_field": (_raw("customers", lambda b: b.rstrip(b"\n")[:-4]), "customers", "file_matches_manifest"),
    "altered_same_size": (_raw("orders", lambda b: b.replace(b"W1", b"W2", 1)), "orders", "file_matches_manifest"),
    "cut_in_half": (_raw("events", lambda b: b[: len(b) // 2]), "events", "file_matches_manifest"),
    "misnamed_file": (_rename("orders.csv", "Orders.csv"), "orders", "file_in_manifest_delivered"),
    "file_not_listed": (_unlist("promotions.csv"), "promotions", "file_listed_in_manifest"),
    "missing_file": (lambda drop: (drop / "promotions.csv").unlink(), "promotions", "file_in_manifest_delivered"),
    "unknown_file": (lambda drop: (drop / "notes.csv").write_text("a\n1\n"), "notes", "file_named_after_table"),
}

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
    "extra_column": (_edit("orders", lambda f: f.assign(coupon_code="X")), "orders", "no_extra_columns"),
    "mixed_timezones": (_edit("events", _offsets("event_ts", every=2)), "events", "timestamp_timezone_consistent"),
    "missing_parent_table": (lambda drop: (drop / "orders.csv").unlink(), "order_items", "parent_table_in_drop"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DROPS) + sorted(IN_TRANSIT))
def test_bad_drop_is_stopped_and_quarantined(case, kind):
    settings, drop = case
    corrupt, table, check = BAD_DROPS.get(kind) or IN_TRANSIT[kind]
    curated_before = committed_digests(settings.lake, "curated")
    corrupt(drop)
    if kind == "missing_parent_table":
        _unlist("orders.csv")(drop)
    elif kind in BAD_DROPS:
        _restate(drop, f"{table}.csv")
    delivered = sorted(p.name for p in drop.iterdir())
    with pytest.raises(DataValidationError) as err:
        _validate(settings, drop)
    message = str(err.value)
    assert f"{table}" in message and check in message, message
    assert any(f.table == table and f.check == check for f in err.value.failures)
    failure = next(f for f in err.value.failures if f.table == table and f.check == check)
    if check in (
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_between",
        "referential_integrity",
        "file_is_complete",
        "expect_column_values_to_be_in_set",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "timestamp_timezone_consistent",
    ):
        assert failure.sample, f"{kind}: no sample of bad rows"
    with lake.local_folder(settings.lake, "quarantine", ingest.DROP, DS) as quarantine:
        assert (quarantine / "report" / "index.html").exists()
        assert sorted(p.name for p in quarantine.iterdir() if p.name != "report") == delivered
    assert DS not in lake.list_partitions(settings.lake, "raw", ingest.DROP), "a failed drop must leave the raw zone"
    assert committed_digests(settings.lake, "curated") == curated_before
    with pytest.raises(Exception, match="run the land step"):
        ingest.publish(settings, DS)


def test_clean_drop_passes_and_publishes(case):
    settings, drop = case
    checked = _validate(settings, drop)
    assert checked["checks"] > 150 and checked["report"] == f"{lake.partition_location(settings.lake, 'reports', 'validation', DS)}/index.html"
    assert _report(settings, "data_docs/index.html")
    summary = _report(settings)
    assert 'href="data_docs/validations/orders/content/' in summary and "PASSED" in summary
    with lake.local_folder(settings.lake, "reports", "validation", DS) as report:  # the site keeps the assets its pages link, only
        docs = report / "data_docs"
        pages = list(docs.rglob("*.html"))
        linked = {(page.parent / link).resolve() for page in pages for link in re.findall(r'(?:href|src)="([^"#:]*static/[^"]+)"', page.read_text())}
        assets = {p.resolve() for p in (docs / "static").rglob("*") if p.is_file()}
        assert assets and assets <= linked, (sorted(map(str, linked)), sorted(map(str, assets)))
    published = _publish(settings, drop)
    assert published["partitions"]["events"] == 1
    assert len(lake.read_partition(settings.lake, "curated", "events", DS)) > 0


def test_drop_changed_after_validation_is_not_published(case):
    settings, drop = case
    _validate(settings, drop)
    _edit("orders", _set("warehouse_id", "W0"))(drop)
    with pytest.raises(Exception, match="no passing validation report for its current bytes"):
        _publish(settings, drop)


def test_a_misnamed_file_gets_a_did_you_mean(case):
    settings, drop = case
    IN_TRANSIT["misnamed_file"][0](drop)
    with pytest.raises(DataValidationError) as err:
        _validate(settings, drop)
    assert "Orders.csv is not a contract table's file (did you mean 'orders.csv'?)" in str(err.value)
    assert any(f.check == "parent_table_in_drop" and f.table == "order_items" for f in err.value.failures)


def _accepted(settings, drop, table: str, change, **request) -> dict:
    _edit(table, change)(drop)
    _restate(drop, f"{table}.csv")
    if request:
        manifest = json.loads((drop / delivery.MANIFEST).read_text())
        manifest["request"].update(request)
        (drop / delivery.MANIFEST).write_text(json.dumps(manifest))
    checked = _validate(settings, drop)
    _publish(settings, drop)
    assert "Accepted with changes" in _report(settings)
    return checked


def test_a_nullable_column_left_out_is_filled_with_nulls_and_reported(case):
    settings, drop = case
    checked = _accepted(settings, drop, "orders", lambda f: f.drop(columns=["window_start", "window_end"]))
    assert any("['window_start', 'window_end'] not in the file; filled with nulls" in n for n in checked["notes"]), checked["notes"]
    assert lake.read_partition(settings.lake, "curated", "orders", DS)["window_start"].isna().all()


def test_a_consistent_offset_is_converted_to_utc_and_reported(case):
    settings, drop = case
    original = pd.read_csv(drop / "events.csv", dtype=str)["event_ts"]
    checked = _accepted(settings, drop, "events", _offsets("event_ts", every=1))
    assert any("events.event_ts: converted from offset(s) ['+05:00'] to UTC" in n for n in checked["notes"]), checked["notes"]
    published = lake.read_partition(settings.lake, "curated", "events", DS)["event_ts"]
    assert sorted(published) == sorted(pd.to_datetime(original, utc=True))


def test_an_extra_column_is_ignored_and_reported_when_the_source_allows_it(case):
    settings, drop = case
    checked = _accepted(settings, drop, "orders", lambda f: f.assign(coupon_code="X"), allow_extra_columns=True)
    assert any("ignored column(s) ['coupon_code']" in n for n in checked["notes"]), checked["notes"]
    assert "coupon_code" not in lake.read_partition(settings.lake, "curated", "orders", DS).columns
