"""Airflow plugin: serve the validation reports (and their Great Expectations Data Docs) inside the Airflow UI.

Mounted on the API server at ``/ecom/reports/``: an index of the days, and each day's ``index.html``, whether it
passed (``reports/validation/ds=...``) or was quarantined (``quarantine/drop/ds=.../report``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ecom/reports"


def create_app():
    """The FastAPI app; the lake location comes from the settings when a request arrives, not at import."""
    import datetime as dt
    import html
    import mimetypes

    from fastapi import FastAPI, HTTPException, Response
    from fastapi.responses import HTMLResponse

    from ml import lake
    from ml.errors import EcomError
    from ml.settings import get_settings

    app = FastAPI(title="ecom validation reports")
    kinds = {"validation": ("reports", "validation", "index.html"), "quarantine": ("quarantine", "drop", "report/index.html")}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        rows = []
        for kind, (zone, table, page) in kinds.items():
            days = sorted(lake.list_partitions(get_settings().lake, zone, table), reverse=True)
            rows += [f'<li><a href="{kind}/ds={d}/{page}">{kind} ds={d}</a></li>' for d in days]
        body = "".join(rows) or "<li>no reports yet: run ecom_ingest</li>"
        return f"<html><body><h1>Validation reports</h1><ul>{body}</ul></body></html>"

    @app.get("/{kind}/{path:path}")
    def report_file(kind: str, path: str) -> Response:
        if kind not in kinds:
            raise HTTPException(404, f"unknown report kind {kind!r}")
        zone, table, _ = kinds[kind]
        day, _, name = path.partition("/")
        try:
            content = lake.read_partition_file(get_settings().lake, zone, table, dt.date.fromisoformat(day.removeprefix("ds=")), name)
        except (ValueError, EcomError):
            content = None
        if content is None:
            raise HTTPException(404, f"no report file {kind}/{html.escape(path)}")
        return Response(content, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")

    return app


class EcomReportsPlugin(AirflowPlugin):
    name = "ecom_reports"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ecom validation reports"}]
    external_views = [{"name": "Validation reports", "href": f"{URL_PREFIX}/", "destination": "nav"}]
