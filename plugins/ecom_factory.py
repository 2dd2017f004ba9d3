"""Builds an Airflow DAG from a pipeline declaration (``ml/pipeline.py``), so every file in dags/ is one call.

What the factory adds to the declaration, once for every pipeline:
- Params generated from the config dataclass's fields (defaults, bounds, choices, descriptions), plus ``ds``;
- a first task, ``resolve``, that refuses unknown Params, applies the deployment's defaults (Airflow Variable
  ``<dag_id>_params``) under the run's own Params, and resolves ds once: the ds Param, else the ds carried by
  the triggering Asset events, else the pipeline's default (see ``ml.orchestration.resolve_ds``);
- one task per step (training steps on their queue), the fan-out mapped over the items the last step lists;
- the publish task, whose Asset events carry ``{"ds": ...}`` for the DAGs downstream;
- every return value made strict JSON (no NaN, no numpy), as the Execution API demands.

It lives among the plugins because Airflow puts that folder on sys.path in every component (scheduler, DAG
processor, workers); it defines no DAG and no plugin itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

from ml.orchestration import DAG_DEFAULTS
from ml.pipeline import ITEMS, Pipeline, Step, asset_uri, table_ref

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from ml.pipeline import Run

SUMMARY = "summary"


def asset(ref: str) -> Asset:
    """The Airflow Asset of a lake table (``curated/events`` -> ``ecom://curated/events``, name ``curated.events``)."""
    zone, table = table_ref(ref)
    return Asset(uri=asset_uri(ref), name=f"{zone}.{table}")


def params_of(pipeline: Pipeline) -> dict[str, Param]:
    ds = Param(
        None, type=["null", "string"], format="date", description="Data date YYYY-MM-DD (empty: the triggering Asset events' ds, else the pipeline's default)"
    )
    return {"ds": ds, **{f.name: Param(f.default, **f.schema()) for f in pipeline.config.fields()}}


def _call(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run a step; the platform's own errors (bad data, bad Params, an infeasible plan) fail the task at once with
    their message, because a retry would redo the same work to the same end."""
    from airflow.sdk.exceptions import AirflowFailException

    from ml.errors import EcomError
    from ml.orchestration import xcom_safe

    try:
        out: dict[str, Any] = xcom_safe(fn(*args))
        return out
    except EcomError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _run(pipeline: Pipeline, resolved: dict[str, Any]) -> Run:
    """The step's Run, after finishing any commit a crashed task left half applied (lake and serving store)."""
    from ml import lake
    from ml.dates import as_date
    from ml.pipeline import Run
    from ml.settings import get_settings

    settings = get_settings()
    lake.recover(settings.lake, settings.serving_url)
    return Run(settings, as_date(resolved["ds"]), pipeline.config.from_params(resolved["config"]))


def refuse_unknown(pipeline: Pipeline, keys: Any, where: str) -> None:
    """A Param name the DAG does not take is an error that names it (a typo must not be silently ignored)."""
    from ml.errors import ConfigError

    known = {"ds", *(f.name for f in pipeline.config.fields())}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown Param(s) {unknown}; this DAG takes {sorted(known)}")


def deployment_params(pipeline: Pipeline) -> dict[str, Any]:
    """This deployment's defaults for runs that do not set a Param themselves (scheduled and Asset-triggered runs
    above all): the JSON object in the Airflow Variable ``<dag_id>_params`` (or the environment variable
    ``AIRFLOW_VAR_<DAG_ID>_PARAMS``), e.g. ``{"model": "ease"}``. A key that is not a Param is an error."""
    import json

    from airflow.sdk import Variable

    from ml.errors import ConfigError

    key = f"{pipeline.dag_id}_params"
    text = Variable.get(key, default=None)
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Airflow Variable {key} is not JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(values, dict) or "ds" in values:
        raise ConfigError(f"Airflow Variable {key} must be a JSON object of Params other than ds, got {text[:200]!r}")
    refuse_unknown(pipeline, values, f"Airflow Variable {key}")
    return values


def _resolve(pipeline: Pipeline) -> dict[str, Any]:
    import logging

    from ml.orchestration import resolve_ds
    from ml.settings import get_settings

    ctx = get_current_context()
    run, params = ctx["dag_run"], dict(ctx["params"])
    explicit = set(run.conf or {})
    refuse_unknown(pipeline, explicit, pipeline.dag_id)
    chosen = {k: v for k, v in params.items() if k != "ds"}
    deployment = deployment_params(pipeline)
    chosen.update({k: v for k, v in deployment.items() if k not in explicit})
    config = pipeline.config.from_params(chosen)
    events: dict[str, list[Mapping[str, Any]]] = {
        key.uri: [dict(e.extra or {}) for e in found] for key, found in (ctx.get("triggering_asset_events") or {}).items()
    }
    ds, how = resolve_ds(
        pipeline, get_settings(), config, param_ds=params.get("ds"), asset_events=events, logical_date=run.logical_date, run_after=run.run_after
    )
    logging.getLogger(__name__).info("%s runs on ds=%s, taken from %s", pipeline.dag_id, ds, how)
    return {"ds": ds.isoformat(), "ds_from": how, "config": config.as_dict()}


def _step_task(pipeline: Pipeline, step: Step, fans_out: bool) -> Any:
    """A step's task. The step before a fan-out returns its item list (what ``expand`` maps over: Airflow maps
    only over a return value) and pushes its whole result under the ``summary`` key for the tasks after it."""
    # multiple_outputs=False everywhere: TaskFlow would otherwise push every key of a dict return as its own XCom
    options: dict[str, Any] = {"task_id": step.name, "queue": step.queue, "multiple_outputs": False}
    if step.retries is not None:
        options["retries"] = step.retries

    @task(**options)
    def run_step(resolved: dict[str, Any], previous: dict[str, Any]) -> Any:
        out = _call(step.fn, _run(pipeline, resolved), previous)
        if not fans_out:
            return out
        get_current_context()["ti"].xcom_push(key=SUMMARY, value=out)
        return out[ITEMS]

    return run_step


def build_dag(pipeline: Pipeline) -> DAG:
    """The DAG of ``pipeline``: resolve -> steps -> fan-out (mapped) -> publish."""
    outlets = [asset(ref) for ref in pipeline.outputs]

    @dag(
        dag_id=pipeline.dag_id,
        schedule=pipeline.schedule or [asset(ref) for ref in pipeline.triggers] or None,  # neither: manual runs only
        tags=["ecom", *pipeline.tags],
        doc_md=pipeline.doc,
        params=params_of(pipeline),
        **DAG_DEFAULTS,
    )
    def pipeline_dag() -> None:
        @task(task_id="resolve", multiple_outputs=False)
        def resolve() -> dict[str, Any]:
            return _call(_resolve, pipeline)

        resolved = previous = resolve()
        for number, step in enumerate(pipeline.steps):
            fans_out = pipeline.fan_out is not None and number == len(pipeline.steps) - 1
            output = _step_task(pipeline, step, fans_out)(resolved, previous)
            previous = output[SUMMARY] if fans_out else output

        results: Any = []
        if pipeline.fan_out is not None:
            fan_out = pipeline.fan_out

            @task(task_id=fan_out.name, multiple_outputs=False)
            def each(item: Any, resolved: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
                return _call(fan_out.fn, _run(pipeline, resolved), item, previous)

            results = each.partial(resolved=resolved, previous=previous).expand(item=output)

        # none_failed: a fan-out over no items (a day without orders) is skipped, and the day is still published
        @task(task_id=pipeline.publish_name, outlets=outlets, trigger_rule="none_failed", multiple_outputs=False)
        def publish(resolved: dict[str, Any], previous: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
            summary = _call(pipeline.publish, _run(pipeline, resolved), previous, list(results or []))
            events = get_current_context()["outlet_events"]
            for outlet in outlets:
                events[outlet].extra = {"ds": resolved["ds"]}
            return summary

        publish(resolved, previous, results)  # type: ignore[arg-type]  # TaskFlow passes XComArgs, resolved at run time

    return pipeline_dag()
