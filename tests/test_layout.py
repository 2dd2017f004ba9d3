"""The layout rules of docs/architecture.md, checked on the imports of every module under ml/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ML = Path(__file__).resolve().parent.parent / "ml"
PIPELINES = ("recsys", "forecast", "inventory", "intervention", "routing")
STORAGE = {"ml.lake", "ml.lake_storage", "ml.staging", "ml.serving"}
SHARED_MODULES = ("pipeline.py", "io.py", "data.py", "model.py", "evaluate.py")


def imports(path: Path) -> set[str]:
    """Every module a file imports (``from ml import lake`` counts as ``ml.lake``), at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_ml_never_imports_airflow():
    offenders = [str(p.relative_to(ML)) for p in modules(ML) if any(m.split(".")[0] == "airflow" for m in imports(p))]
    assert offenders == []


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_pipeline_reaches_storage_only_through_its_io_module(pipeline):
    folder = ML / pipeline
    offenders = {p.name: sorted(imports(p) & STORAGE) for p in modules(folder) if p.name != "io.py" and imports(p) & STORAGE}
    assert offenders == {}, f"only ml/{pipeline}/io.py may import {sorted(STORAGE)}"
    assert imports(folder / "io.py") & STORAGE  # and io.py does: the rule is not vacuous


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_has_the_same_modules_and_imports_no_other_pipeline(pipeline):
    folder = ML / pipeline
    assert [name for name in SHARED_MODULES if not (folder / name).exists()] == []
    assert (folder / "__init__.py").exists()
    others = {f"ml.{other}" for other in PIPELINES if other != pipeline}
    crossing = {p.name: sorted(m for m in imports(p) if any(m == o or m.startswith(o + ".") for o in others)) for p in modules(folder)}
    assert {name: found for name, found in crossing.items() if found} == {}


def test_core_modules_import_no_pipeline():
    core = [p for p in ML.glob("*.py")] + modules(ML / "validation")
    pipelines = tuple(f"ml.{name}" for name in PIPELINES)
    offenders = {str(p.relative_to(ML)): sorted(m for m in imports(p) if m.startswith(pipelines)) for p in core}
    # the CLI is the one entry point that runs the pipelines, importing their declarations inside its commands
    assert {name: found for name, found in offenders.items() if found and name != "cli.py"} == {}


def test_the_closed_loop_touches_storage_and_pipelines_only_in_its_loop_module():
    """The shop, the policies and the report are pure; ``ml/simulation/loop.py`` is the edge that runs the platform."""
    edge = STORAGE | {"ml.ingest"}
    pipelines = tuple(f"ml.{name}" for name in PIPELINES)
    offenders = {p.name: sorted(m for m in imports(p) if m in edge or m.startswith(pipelines)) for p in modules(ML / "simulation") if p.name != "loop.py"}
    assert {name: found for name, found in offenders.items() if found} == {}
    assert imports(ML / "simulation" / "loop.py") & edge
