"""ecom_ingest: land the day's raw drop -> validate it (Great Expectations gate) -> publish curated tables.

Daily, and on demand from the UI with Params. A failing drop is quarantined with its report and the run fails
at ``validate`` with the table, the expectation and bad rows; ``publish`` then never runs. Logic lives in
``ml.ingest``; this file only wires tasks (no heavy imports at module level).
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import CURATED_ASSET_URIS, DAG_DEFAULTS
from ml.sources import SOURCE_NAMES

CURATED_ASSETS = [Asset(uri=uri, name=f"curated.{table}") for table, uri in CURATED_ASSET_URIS.items()]


@dag(
    dag_id="ecom_ingest",
    schedule="@daily",
    tags=["ecom", "ingest", "validation"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "ds": Param(None, type=["null", "string"], format="date", description="Logical date override (YYYY-MM-DD)"),
        "source": Param("synthetic", enum=list(SOURCE_NAMES), description="Where the drop comes from"),
        "scale": Param(None, type=["null", "string"], enum=[None, "tiny", "demo", "large"], description="Synthetic shop size"),
        "backfill_days": Param(None, type=["null", "integer"], minimum=0, maximum=3650, description="Days before ds in the drop"),
        "path": Param(None, type=["null", "string"], description="Input folder (files source) or dataset folder"),
    },
)
def ecom_ingest():
    @task
    def land() -> dict:
        from ml import ingest
        from ml.orchestration import ingest_ds, ingest_request
        from ml.settings import get_settings

        ctx = get_current_context()
        settings, params, run = get_settings(), ctx["params"], ctx["dag_run"]
        ds = ingest_ds(settings, params, run.logical_date, run.run_after)
        ingest.ensure_dirs(settings)
        return ingest.land(settings, ingest_request(settings, params, ds)).__dict__

    @task(retries=0)  # a failed gate is not transient: rerun after fixing the source
    def validate(landed: dict) -> dict:
        from ml import ingest
        from ml.settings import get_settings

        return ingest.validate(get_settings(), landed["ds"])

    @task(outlets=CURATED_ASSETS)
    def publish(checked: dict) -> dict:
        from ml import ingest
        from ml.settings import get_settings

        return ingest.publish(get_settings(), checked["ds"])

    publish(validate(land()))


ecom_ingest()
