import datetime as dt

import pytest

from ml.errors import ConfigError
from ml.orchestration import curated_asset_uri, ingest_ds, ingest_request, resolve_ds

NOON = dt.datetime(2024, 5, 6, 12, tzinfo=dt.UTC)


def test_ds_param_wins_then_logical_date_then_run_after():
    assert resolve_ds("2024-01-02", NOON, NOON) == "2024-01-02"
    assert resolve_ds(None, NOON, None) == "2024-05-06"
    assert resolve_ds("", None, NOON) == "2024-05-06"
    with pytest.raises(ConfigError, match="trigger it with a ds"):
        resolve_ds(None, None, None)


@pytest.mark.shared_data
def test_public_dataset_runs_default_to_the_dataset_last_day(settings, shared_data):
    assert ingest_ds(settings, {"source": "bakery"}, NOON, NOON) == "2017-04-09"
    assert ingest_ds(settings, {"source": "bakery", "ds": "2017-01-31"}, NOON, NOON) == "2017-01-31"
    assert ingest_ds(settings, {"source": "synthetic"}, NOON, NOON) == "2024-05-06"


def test_params_become_a_source_request(settings):
    req = ingest_request(settings, {"source": "synthetic", "scale": "tiny", "backfill_days": 3, "path": ""}, "2024-05-06")
    assert (req.scale, req.backfill_days, req.path, req.seed) == ("tiny", 3, None, settings.seed)
    assert ingest_request(settings, {}, "2024-05-06").scale == settings.default_scale
    with pytest.raises(ConfigError, match="Param source='sap'"):
        ingest_request(settings, {"source": "sap"}, "2024-05-06")


def test_asset_uris_name_contract_tables():
    assert curated_asset_uri("orders") == "ecom://curated/orders"
    with pytest.raises(Exception, match="unknown table"):
        curated_asset_uri("baskets")
