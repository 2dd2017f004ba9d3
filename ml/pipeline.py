"""A pipeline declared once: its config, its ordered steps, its inputs and its outputs.

The Airflow DAG factory (``dags/ecom_factory.py``), the ``ecom`` CLI and the UI's Params are all derived from a
:class:`Pipeline`, so a new knob is one config field and a new step is one entry in ``steps``. Light to import
(DAG files read it at parse time): the step functions import their heavy modules inside their bodies.

A run flows like this, in Airflow and in the CLI alike::

    resolve (ds + config) -> steps[0] -> ... -> steps[-1] -> fan_out over items (mapped) -> publish

Each step takes the :class:`Run` and the previous step's return value (a small JSON-able dict) and returns the
next one; the last step lists the fan-out items under ``"items"``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from ml.errors import ConfigError
from ml.settings import Settings

ITEMS = "items"
"""Key under which a pipeline's last step lists the items its fan-out step is mapped over."""


def option(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A config field with its description and bounds: the one place a Param, a CLI option and the check come from."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum, "choices": None if choices is None else tuple(choices)}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """One config field as a JSON-schema Param and a CLI option see it."""

    name: str
    default: Any
    types: tuple[str, ...]  # JSON-schema types, "null" first when the field is optional
    item_type: str | None  # element type of an array field
    doc: str
    minimum: float | None
    maximum: float | None
    exclusive_minimum: float | None
    choices: tuple[Any, ...] | None

    @property
    def optional(self) -> bool:
        return "null" in self.types

    @property
    def base_type(self) -> str:
        return next(t for t in self.types if t != "null")

    def schema(self) -> dict[str, Any]:
        """Keyword arguments of ``airflow.sdk.Param`` (JSON schema) for this field."""
        out: dict[str, Any] = {"type": list(self.types) if self.optional else self.base_type, "description": self.doc}
        bounds = {"minimum": self.minimum, "maximum": self.maximum, "exclusiveMinimum": self.exclusive_minimum}
        target = out
        if self.item_type is not None:
            out["items"] = target = {"type": [self.item_type, "null"] if self.item_type == "integer" else self.item_type}
        target.update({k: v for k, v in bounds.items() if v is not None})
        if self.choices is not None:
            target["enum"] = [*([None] if self.optional else []), *self.choices]
        return out

    def check(self, owner: str, value: Any) -> None:
        """Raise ConfigError naming the field when ``value`` breaks its bounds or choices."""
        if value is None:
            if not self.optional:
                raise ConfigError(f"{owner} {self.name} must be set")
            return
        values = value if self.item_type is not None else (value,)
        for v in values:
            if v is None:
                continue
            if self.choices is not None and v not in self.choices:
                raise ConfigError(f"{owner} {self.name}={v!r} is not one of {list(self.choices)}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.minimum is not None and v < self.minimum:
                    raise ConfigError(f"{owner} {self.name}={v} must be at least {self.minimum}")
                if self.maximum is not None and v > self.maximum:
                    raise ConfigError(f"{owner} {self.name}={v} must be at most {self.maximum}")
                if self.exclusive_minimum is not None and v <= self.exclusive_minimum:
                    raise ConfigError(f"{owner} {self.name}={v} must be above {self.exclusive_minimum}")


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _json_types(annotation: Any) -> tuple[tuple[str, ...], str | None]:
    """JSON-schema types of a field annotation (int, float | None, tuple[int | None, ...], ...)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        found, item = _json_types(inner[0])
        return ("null", *found) if type(None) in args else found, item
    if origin is tuple:
        item_types, _ = _json_types(args[0])
        return ("array",), next(t for t in item_types if t != "null")
    if annotation in _JSON_TYPES:
        return (_JSON_TYPES[annotation],), None
    raise TypeError(f"config fields must be int, float, str, bool, optional or tuples of them; got {annotation!r}")


@dataclass(frozen=True)
class PipelineConfig:
    """Base of every pipeline's frozen config dataclass: fields declared with :func:`option` are checked here
    against their bounds; a subclass adds checks across fields in :meth:`check`."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for spec in self.fields():
            spec.check(owner, getattr(self, spec.name))
        self.check()

    def check(self) -> None:
        """Checks that involve several fields (override)."""

    @classmethod
    def fields(cls) -> list[FieldSpec]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            json_types, item = _json_types(hints[f.name])
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.{f.name} needs a default: declare it with option()")
            meta = f.metadata
            out.append(
                FieldSpec(
                    f.name,
                    list(default) if isinstance(default, tuple) else default,
                    json_types,
                    item,
                    meta.get("doc", ""),
                    meta.get("minimum"),
                    meta.get("maximum"),
                    meta.get("exclusive_minimum"),
                    meta.get("choices"),
                )
            )
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        """The config from DAG Params, CLI options or an XCom dict. None means "the default"; an unknown key is an
        error that names it (a typo in a trigger's conf must not be silently ignored)."""
        names = {f.name: f for f in cls.fields()}
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
        chosen = {k: v for k, v in params.items() if k in names and v is not None}
        for name, value in chosen.items():
            if names[name].item_type is not None:
                chosen[name] = tuple(value)
        return cls(**chosen)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists), for XCom and logs."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Run:
    """What every step of one run knows: where things are, which day, with which config."""

    settings: Settings
    ds: dt.date
    config: Any  # the pipeline's PipelineConfig subclass


StepFn = Callable[[Run, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One task of the chain: ``fn(run, previous) -> next``."""

    name: str
    fn: StepFn
    queue: str = "default"
    retries: int | None = None  # None: the DAG default


@dataclass(frozen=True)
class FanOut:
    """A task mapped over the items the last step listed (shards, warehouses, depots)."""

    name: str
    fn: Callable[[Run, Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Pipeline:
    """Everything the DAG, the CLI and the Params of one pipeline are derived from."""

    name: str
    """CLI command (``ecom <name>``)."""
    dag_id: str
    doc: str
    config: type[PipelineConfig]
    steps: tuple[Step, ...]
    publish: Callable[[Run, dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
    """Last task: gathers the fan-out results and writes the outputs; returns a summary with the ds."""
    outputs: tuple[str, ...]
    """Tables this pipeline publishes as ``zone/table`` (each an Airflow Asset ``ecom://zone/table``)."""
    triggers: tuple[str, ...] = ()
    """Tables (``zone/table``) whose Asset events start a run; their events carry the ds to run on."""
    schedule: str | None = None
    """A time schedule instead of Asset triggers (ecom_ingest: ``@daily``)."""
    default_ds: Callable[[Settings, Any, dt.date | None], dt.date | None] | None = None
    """ds of a run without a ds Param nor Asset events, given the config and the run's date (None when unknown);
    returning None leaves the run's logical date."""
    fan_out: FanOut | None = None
    publish_name: str = "publish"
    reads: tuple[str, ...] = ()
    """Daily tables (``zone/table``) besides the triggers that must hold the run's ds before it starts."""
    optional: tuple[str, ...] = ()
    """Triggers a run can do without (their rows only add features), so a manual run need not wait for them."""
    tags: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every daily table that must hold the ds: the triggers and the other reads."""
        return (*(t for t in self.triggers if t not in self.optional), *self.reads)

    def run(self, settings: Settings, ds: dt.date, config: PipelineConfig, start_at: str | None = None) -> dict[str, Any]:
        """Every step in one process, in the DAG's order (fan-out items one after another): the CLI's path. Each
        return value goes through the same strict-JSON conversion as XCom, so a step sees what it would in Airflow.
        ``start_at`` skips the steps before the one named (``champion``: score with the registered champion, no
        training), as a schedule that retrains weekly and scores daily does."""
        from ml import lake
        from ml.orchestration import xcom_safe

        names = [step.name for step in self.steps]
        if start_at is not None and start_at not in names:
            raise ConfigError(f"{self.dag_id} has no step {start_at!r} to start at; its steps are {names}")
        lake.recover(settings.lake, settings.serving_url)
        run = Run(settings, ds, config)
        previous: dict[str, Any] = {"ds": ds.isoformat(), "config": config.as_dict()}
        trail: dict[str, Any] = {}
        for step in self.steps[names.index(start_at) if start_at else 0 :]:
            previous = xcom_safe(step.fn(run, previous))
            trail[step.name] = previous
        results = [xcom_safe(self.fan_out.fn(run, item, previous)) for item in previous[ITEMS]] if self.fan_out else []
        return {
            "ds": ds.isoformat(),
            "steps": trail,
            self.fan_out.name if self.fan_out else "fan_out": results,
            self.publish_name: xcom_safe(self.publish(run, previous, results)),
        }


def model_steps(
    train_module: str, *, evaluate: str | None = "evaluate", train_queue: str = "default", items: Callable[[Run], list[Any]] | None = None
) -> tuple[Step, ...]:
    """The chain every trained pipeline shares: train -> [evaluate] -> register -> gate -> champion.

    ``train_module`` provides ``train_run(settings, ds, config)``, ``evaluate_run`` and ``gate`` (each
    ``(settings, ds, previous) -> dict``, ds a ``datetime.date``), and for the shared register step its
    ``REGISTRY_ENTRY`` and ``version_tags(evaluated)``. The champion step resolves the entry's champion version once
    per run, so every fan-out item uses the same model, and lists
    ``items(run)`` for the fan-out."""

    def module() -> Any:
        return importlib.import_module(train_module)

    def step(name: str, *args: Any) -> dict[str, Any]:
        out: dict[str, Any] = getattr(module(), name)(*args)
        return out

    def train(run: Run, resolved: dict[str, Any]) -> dict[str, Any]:
        from ml import lake, registry

        with lake.recording_reads() as read:
            trained = step("train_run", run.settings, run.ds, run.config)
        registry.tag_lake_versions(run.settings, module().REGISTRY_ENTRY, trained["run_id"], read)
        return trained

    def forward(name: str) -> StepFn:
        return lambda run, previous: step(name, run.settings, run.ds, previous)

    def register(run: Run, evaluated: dict[str, Any]) -> dict[str, Any]:
        from ml import registry

        return registry.register_run(run.settings, module().REGISTRY_ENTRY, evaluated, module().version_tags(evaluated))

    def gate(run: Run, registered: dict[str, Any]) -> dict[str, Any]:
        decision = step("gate", run.settings, run.ds, registered)
        return {**decision, "holdout": registered["holdout"], "metrics": registered["metrics"]}

    def champion(run: Run, gated: dict[str, Any]) -> dict[str, Any]:
        from ml import registry

        version = registry.champion_version(run.settings, module().REGISTRY_ENTRY)
        return {"version": version, ITEMS: items(run) if items else [], "gate": gated}

    chain = [Step("train", train, queue=train_queue)]
    if evaluate:
        chain.append(Step(evaluate, forward("evaluate_run")))
    return (*chain, Step("register", register), Step("gate", gate), Step("champion", champion))


def publish_shards(score_module: str, counted: str) -> Callable[[Run, dict[str, Any], list[dict[str, Any]]], dict[str, Any]]:
    """The publish step of a pipeline that scores ``config.shards`` shards with the champion: ``score_module``'s
    ``publish(settings, ds, shards, version)`` replaces the ds; the summary adds up each shard's ``counted``."""

    def publish(run: Run, champion: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
        module = importlib.import_module(score_module)
        rows = module.publish(run.settings, run.ds, run.config.shards, champion["version"])
        return {"ds": run.ds.isoformat(), "rows": rows, "version": champion["version"], counted: sum(r[counted] for r in results)}

    return publish


def table_ref(ref: str) -> tuple[str, str]:
    """``"curated/events"`` -> ``("curated", "events")``."""
    zone, _, table = ref.partition("/")
    if not table:
        raise ConfigError(f"table reference {ref!r} is not of the form zone/table")
    return zone, table


def asset_uri(ref: str) -> str:
    """URI of the Airflow Asset that stands for a lake table (``ecom://curated/events``)."""
    zone, table = table_ref(ref)
    return f"ecom://{zone}/{table}"


def producer_of(ref: str) -> str:
    """Who writes lake table ``zone/table``, for messages that tell what to run."""
    zone, table = table_ref(ref)
    return "ecom_ingest" if zone == "curated" else f"the pipeline that writes {table}"


def newest_partition(table: str) -> Callable[[Settings, Any, dt.date | None], dt.date]:
    """A ``default_ds`` for manual runs: the newest partition of ``zone/table`` at or before the run's date."""

    def newest(settings: Settings, config: Any, limit: dt.date | None) -> dt.date:
        from ml import lake

        zone, name = table_ref(table)
        days = [d for d in lake.list_partitions(settings.lake, zone, name) if limit is None or d <= limit]
        if not days:
            when = f" at or before {limit}" if limit else ""
            raise ConfigError(f"no {zone} {name} partition{when} under {settings.lake}; run {producer_of(table)} first")
        return days[-1]

    return newest
