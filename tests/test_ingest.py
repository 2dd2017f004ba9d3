"""Reruns of a day give identical partitions and serving rows; every public adapter passes the gate."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import committed_digests
from ml import contract, delivery, ingest, lake, serving
from ml.errors import SourceError
from ml.sources import SourceRequest, public

DS = dt.date(2024, 2, 10)


def test_rerunning_a_day_is_idempotent(settings):
    request = SourceRequest("synthetic", DS, scale="tiny", backfill_days=5)
    ingest.run_day(settings, request)
    first_files = committed_digests(settings.lake, "curated")
    first_rows = serving.read_ds(settings.serving_url, "validation_runs", DS)
    ingest.run_day(settings, request)
    assert committed_digests(settings.lake, "curated") == first_files
    second_rows = serving.read_ds(settings.serving_url, "validation_runs", DS)
    assert len(second_rows) == len(first_rows) == len(contract.TABLES)
    assert second_rows.drop(columns="report_path").equals(first_rows.drop(columns="report_path"))
    assert len(lake.list_partitions(settings.lake, "curated", "events")) == 6


def test_daily_drop_after_history_checks_volume_against_it(settings):
    ingest.run_day(settings, SourceRequest("synthetic", DS, scale="tiny", backfill_days=10))
    result = ingest.run_day(settings, SourceRequest("synthetic", dt.date(2024, 2, 11), scale="tiny", backfill_days=0))
    assert result["validate"]["rows"]["events"] > 0
    assert (
        lake.read_partition(settings.lake, "curated", "order_items", "2024-02-11")["order_id"]
        .isin(lake.read_partition(settings.lake, "curated", "orders", "2024-02-11")["order_id"])
        .all()
    )


def test_files_source_copies_a_folder_as_delivered(settings, tmp_path):
    ingest.land(settings, SourceRequest("synthetic", DS, scale="tiny", backfill_days=0))
    folder = tmp_path / "export"
    folder.mkdir()
    with lake.local_folder(settings.lake, "raw", ingest.DROP, DS) as delivered:
        for name in ("products", "orders", "order_items", "warehouses", "customers"):
            (folder / f"{name}.csv").write_bytes((delivered / f"{name}.csv").read_bytes())
    with pytest.raises(SourceError, match="has no manifest.json.*ecom manifest"):
        ingest.land(settings, SourceRequest("files", DS, path=str(folder)))
    delivery.write_manifest(folder)
    result = ingest.run_day(settings, SourceRequest("files", DS, path=str(folder)))
    assert sorted(result["publish"]["tables"]) == ["customers", "order_items", "orders", "products", "warehouses"]


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(public.DATASETS))
def test_public_dataset_passes_the_gate(settings, shared_data, name):
    ds = public.last_day(settings, name)
    result = ingest.run_day(settings, SourceRequest(name, ds))
    assert result["validate"]["checks"] > 10
    assert set(result["publish"]["tables"]) == set(public.DATASETS[name][1](settings.shared_data_dir / public.DATASETS[name][0]))


@pytest.mark.shared_data
def test_adapters_reproduce_the_provenance_counts(settings, shared_data):
    read = {name: fn(shared_data / sub) for name, (sub, fn) in public.DATASETS.items()}
    assert (len(read["amazon_beauty"]["customers"]), len(read["amazon_beauty"]["events"])) == (22_363, 198_502)
    assert read["amazon_beauty"]["events"]["product_id"].nunique() == 12_101
    mi = read["amazon_instruments"]
    assert (len(mi["customers"]), len(mi["products"]), len(mi["events"])) == (1_429, 900, 10_261)
    ml = read["movielens_100k"]
    assert (len(ml["customers"]), len(ml["products"]), len(ml["events"])) == (943, 1_682, 100_000)
    assert len(read["bakery"]["products"]) == 94  # 95 items less the NONE placeholder
    assert read["pharma"]["orders"]["order_ts"].dt.date.nunique() == 2_106
    assert len(read["hillstrom"]["coupon_campaigns"]) == 31_924
    assert set(read["hillstrom"]["coupon_campaigns"]["treatment"]) == {"mens_email", "womens_email", "control"}


def test_a_drop_that_leaves_a_gap_is_refused_and_fill_gap_lands_the_missing_days(settings):
    """The scheduled run of a lake whose history ended long ago: the gate names the gap and the fix, nothing is
    published; asked to, the source lands the missing days with ds in one validated drop."""
    import datetime as dt

    from ml.errors import DataValidationError
    from ml.ingest_pipeline import IngestConfig, request_for

    ingest.run_day(settings, SourceRequest("synthetic", dt.date(2024, 2, 10), scale="tiny", backfill_days=5))
    before = committed_digests(settings.lake, "curated")
    with pytest.raises(DataValidationError, match=r"ends on 2024-02-10 .* 9 day\(s\) 2024-02-11..2024-02-19 .* backfill_days=9"):
        ingest.run_day(settings, SourceRequest("synthetic", dt.date(2024, 2, 20), scale="tiny", backfill_days=0))
    assert committed_digests(settings.lake, "curated") == before
    assert serving.read_ds(settings.serving_url, "validation_runs", "2024-02-20").empty
    filled = ingest.run_day(settings, request_for(settings, dt.date(2024, 2, 20), IngestConfig(scale="tiny", fill_gap=True)))
    assert filled["land"]["window_start"] == "2024-02-11"
    assert lake.list_partitions(settings.lake, "curated", "orders")[-11:] == [dt.date(2024, 2, 10) + dt.timedelta(days=i) for i in range(11)]


def test_a_missing_day_is_an_error_not_a_zero(settings):
    from ml.lake import MissingPartitionsError

    ingest.run_day(settings, SourceRequest("synthetic", dt.date(2024, 2, 10), scale="tiny", backfill_days=5))
    assert len(lake.read_range(settings.lake, "curated", "orders", "2023-01-01", "2024-02-10")) > 0  # before history: fine
    with lake.commit(settings.lake, label="lose a day") as change:
        change.remove("curated", "orders", "2024-02-07")
    with pytest.raises(MissingPartitionsError, match=r"curated/orders: 1 day\(s\) missing in 2024-02-01..2024-02-10: 2024-02-07"):
        lake.read_range(settings.lake, "curated", "orders", "2024-02-01", "2024-02-10")
    with pytest.raises(MissingPartitionsError, match="2024-02-11"):
        lake.read_range(settings.lake, "curated", "orders", "2024-02-08", "2024-02-11")


def test_the_shop_calendar_ends_the_demo_history_where_asked_and_the_schedule_continues(settings):
    """``ecom demo`` opens the shop so that its history ends yesterday; the next day's scheduled drop continues
    it without a gap (same opening day, so the same rows for the same day)."""
    import datetime as dt

    from ml.sources import synthetic_source

    last = dt.date(2026, 11, 29)
    cfg = synthetic_source.open_shop(settings, "tiny", last)
    assert cfg.end == last and cfg.start == last - dt.timedelta(days=89)
    assert synthetic_source.open_shop(settings, "tiny", last + dt.timedelta(days=5)).start == cfg.start  # kept
    ingest.run_day(settings, SourceRequest("synthetic", last, scale="tiny", backfill_days=3))
    today = ingest.run_day(settings, SourceRequest("synthetic", last + dt.timedelta(days=1), scale="tiny", backfill_days=0))
    assert today["publish"]["ds"] == "2026-11-30" and len(lake.read_range(settings.lake, "curated", "orders", "2026-11-26", "2026-11-30")) > 0
