"""Airflow plugin: serve the validation reports (and their Great Expectations Data Docs) inside the Airflow UI.

Mounted on the API server at ``/ecom/reports/``: an index of the days, and each day's ``index.html``, whether it
passed (``reports/validation/ds=...``) or was quarantined (``quarantine/drop/ds=.../report``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ecom/reports"


def create_app():
    """The FastAPI app; the lake location comes from the settings when a request arrives, not at import."""
    import html

    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    from ml.settings import get_settings

    app = FastAPI(title="ecom validation reports")

    def roots():
        lake = get_settings().lake_dir
        return {"validation": lake / "reports" / "validation", "quarantine": lake / "quarantine" / "drop"}

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        rows = []
        for kind, root in roots().items():
            days = sorted((p.name for p in root.glob("ds=*")), reverse=True) if root.exists() else []
            target = "index.html" if kind == "validation" else "report/index.html"
            rows += [f'<li><a href="{kind}/{html.escape(d)}/{target}">{kind} {html.escape(d)}</a></li>' for d in days]
        body = "".join(rows) or "<li>no reports yet: run ecom_ingest</li>"
        return f"<html><body><h1>Validation reports</h1><ul>{body}</ul></body></html>"

    @app.get("/{kind}/{path:path}")
    def report_file(kind: str, path: str):
        root = roots().get(kind)
        if root is None:
            raise HTTPException(404, f"unknown report kind {kind!r}")
        file = (root / path).resolve()
        if not file.is_file() or root.resolve() not in file.parents:
            raise HTTPException(404, f"no report file {kind}/{path}")
        return FileResponse(file)

    return app


class EcomReportsPlugin(AirflowPlugin):
    name = "ecom_reports"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ecom validation reports"}]
    external_views = [{"name": "Validation reports", "href": f"{URL_PREFIX}/", "destination": "nav"}]
