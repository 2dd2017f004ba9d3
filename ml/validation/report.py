"""The gate's findings and its report: report.json for machines and index.html for people, linking to the GX Data
Docs pages."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path


@dataclass
class Failure:
    """One failed check: which table, which check (a GX expectation type or a named file/batch check)."""

    table: str
    check: str
    column: str | None
    detail: str
    unexpected_count: int | None = None
    sample: list[dict] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        count = f"; {self.unexpected_count} bad rows" if self.unexpected_count else ""
        sample = f"; sample: {self.sample[:3]}" if self.sample else ""
        return f"{where}: {self.check} failed: {self.detail}{count}{sample}"


@dataclass
class Report:
    """Outcome of validating one drop."""

    ds: str
    rows: dict[str, int]
    failures: list[Failure]
    checks_run: int
    skipped: list[str]
    notes: list[str] = field(default_factory=list)
    """What the gate accepted but changed or ignored (nullable columns filled, extra columns ignored, offsets
    converted): shown in the report so that nothing is dropped in silence."""

    @property
    def success(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.success:
            notes = "".join(f"\n  note: {n}" for n in self.notes)
            return f"drop ds={self.ds} passed {self.checks_run} checks on {len(self.rows)} tables{notes}"
        lines = "\n".join(f"  - {f.describe()}" for f in self.failures[:20])
        return f"drop ds={self.ds} FAILED {len(self.failures)} of {self.checks_run} checks:\n{lines}"

    def to_dict(self) -> dict:
        return {
            "ds": self.ds,
            "success": self.success,
            "rows": self.rows,
            "checks_run": self.checks_run,
            "skipped": self.skipped,
            "notes": self.notes,
            "failures": [asdict(f) for f in self.failures],
        }


def write_report(report: Report, folder: Path) -> None:
    """report.json for machines and index.html for people (links to the GX Data Docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    status = "PASSED" if report.success else "FAILED"
    rows = "".join(f"<tr><td>{escape(t)}</td><td>{n}</td><td>{_docs_links(folder, t)}</td></tr>" for t, n in sorted(report.rows.items()))
    fails = "".join(
        f"<tr><td>{escape(f.table)}</td><td>{escape(f.column or '')}</td><td>{f.check}</td><td>{escape(f.detail)}</td>"
        f"<td>{f.unexpected_count or ''}</td><td><code>{escape(json.dumps(f.sample[:3], default=str))}</code></td></tr>"
        for f in report.failures
    )
    skipped = "".join(f"<li>{escape(s)}</li>" for s in report.skipped)
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    docs = '<p><a href="data_docs/index.html">Great Expectations Data Docs</a></p>' if (folder / "data_docs").exists() else ""
    (folder / "index.html").write_text(
        f"<html><head><meta charset='utf-8'><title>Validation {report.ds}</title></head><body>"
        f"<h1>Validation of the drop for ds={report.ds}: {status}</h1><p>{report.checks_run} checks.</p>{docs}"
        f"<h2>Rows</h2><table border=1><tr><th>table</th><th>rows</th><th>GX results</th></tr>{rows}</table>"
        f"<h2>Failures</h2><table border=1><tr><th>table</th><th>column</th><th>check</th><th>detail</th><th>bad rows</th>"
        f"<th>sample</th></tr>{fails}</table><h2>Accepted with changes</h2><ul>{notes}</ul>"
        f"<h2>Not checked</h2><ul>{skipped}</ul></body></html>"
    )


def _docs_links(folder: Path, table: str) -> str:
    """Links to a table's GX validation-result pages (rendered server-side, so readable offline; the Data Docs
    index builds its tables with JavaScript from a CDN)."""
    links = []
    for phase in ("schema", "content"):
        pages = sorted((folder / "data_docs" / "validations" / table / phase).rglob("*.html"))
        if pages:
            links.append(f'<a href="{pages[-1].relative_to(folder).as_posix()}">{phase}</a>')
    return " ".join(links)
