"""MLflow helpers: log a model with its signature and explicit requirements, register it, and promote it by
alias (``challenger`` -> ``champion``) only when it beats the champion and the strongest simple baseline on the
same holdout by a stated margin. When nothing beats the baseline, the baseline itself is registered and served.

The decision, both metric values, the margin and the holdout are written on the version (tags and
description), so a reviewer sees in the registry UI why a version is or is not the champion.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ml.errors import RegistryError
from ml.settings import Settings

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
BASE_REQUIREMENTS = ("mlflow", "pandas", "numpy", "pyarrow")


def configure(settings: Settings, experiment: str):
    """Point MLflow at the settings' tracking/registry store and select ``experiment``; returns a client."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        # A tracking server proxies artifacts itself (mlflow-artifacts:/); a database URI needs a location.
        served = settings.mlflow_tracking_uri.startswith(("http://", "https://"))
        location = None if served else f"{settings.mlflow_artifact_root.rstrip('/')}/{experiment}"
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def pip_requirements(*packages: str) -> list[str]:
    """Pins for the packages a model needs at load time, from the installed versions (explicit, so MLflow
    does not spend seconds inferring them)."""
    pins = []
    for name in dict.fromkeys((*BASE_REQUIREMENTS, *packages)):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise RegistryError(f"model requirement {name!r} is not installed; install it or drop it from the list") from None
    return pins


def log_pyfunc_model(python_model: Any, name: str, input_example: Any, requirements: list[str], params: dict[str, Any] | None = None) -> str:
    """Log a ``mlflow.pyfunc.PythonModel`` in the active run with a signature inferred from the example and
    its prediction (and the inference ``params`` with their defaults); returns the model URI."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, python_model.predict(None, input_example, params), params=params)
    info = mlflow.pyfunc.log_model(name=name, python_model=python_model, input_example=input_example, signature=signature, pip_requirements=requirements)
    return info.model_uri


def log_benchmark_run(
    settings: Settings,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    figures: dict[str, Any],
    artifacts: tuple[Path, ...] = (),
) -> str:
    """One MLflow run holding a benchmark's figures (spaces in metric names become underscores), plots (artifact
    path -> matplotlib figure) and result files, beside the training runs a reviewer already looks at; returns
    the run id."""
    import mlflow

    configure(settings, experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({name.replace(" ", "_"): value for name, value in metrics.items()})
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        for artifact in artifacts:
            mlflow.log_artifact(str(artifact), "results")
    return run.info.run_id


LAKE_VERSIONS_TAG = "lake.versions"


def tag_lake_versions(settings: Settings, entry: RegistryEntry, run_id: str, versions: dict[str, set[int]]) -> dict[str, Any]:
    """Tag a training run with the Delta version of each lake table it read (``lake.versions``, JSON), so its
    training data can be read again exactly (``lake.read_range(..., version=)``); returns the versions. A table read
    at several versions (a commit landed between two of its reads) is tagged with all of them, and warned about."""
    import json

    read: dict[str, Any] = {}
    for table, seen in sorted(versions.items()):
        read[table] = min(seen) if len(seen) == 1 else sorted(seen)
        if len(seen) > 1:
            log.warning("run %s read %s at versions %s: a commit landed while it read", run_id, table, sorted(seen))
    configure(settings, entry.experiment).set_tag(run_id, LAKE_VERSIONS_TAG, json.dumps(read))
    return read


def register(client, model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Register ``model_uri`` as a new version of ``name``; returns the version number."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags=tags or {})
    return str(version.version)


@dataclass(frozen=True)
class RegistryEntry:
    """Where a trained pipeline's runs go and what its gate compares: experiment, registered model, gate metric."""

    experiment: str
    model: str
    metric: str
    higher_is_better: bool


def register_run(settings: Settings, entry: RegistryEntry, result: dict, tags: dict[str, str]) -> dict:
    """The register step every trained pipeline shares: ``result["model_uri"]`` becomes a new version of the entry's
    model, tagged with the run's ds and ``tags``; returns ``result`` with the version."""
    client = configure(settings, entry.experiment)
    return result | {"version": register(client, result["model_uri"], entry.model, tags={"ds": result["ds"], **tags})}


def register_baseline(
    settings: Settings, entry: RegistryEntry, ds: str, name: str, python_model: Any, example: Any, requirements: list[str], tags: dict[str, str]
) -> str:
    """Log a baseline (a ``mlflow.pyfunc.PythonModel``) in a run of its own and register it as a new version of
    the entry's model, tagged ``baseline``: what :class:`Baseline`'s ``serve`` does; returns the version."""
    import mlflow

    client = configure(settings, entry.experiment)
    with mlflow.start_run(run_name=f"baseline {name} ds={ds}"):
        mlflow.set_tags({"baseline": name, "ds": ds})
        uri = log_pyfunc_model(python_model, "model", example, requirements)
    return register(client, uri, entry.model, tags={"ds": ds, "baseline": name, **tags})


def metric_tags(prefix: str, metrics: dict[str, Any]) -> dict[str, str]:
    """``{"<prefix>.<metric>": repr(value)}``: metrics as version tags a reviewer reads in the registry."""
    return {f"{prefix}.{k}": repr(v) for k, v in metrics.items()}


class NotComparable(RegistryError):
    """Raised by ``evaluate_champion`` when the champion cannot be measured fairly on this holdout (e.g. it
    trained on part of it): the challenger is then kept as challenger, with this reason on the version."""


@dataclass(frozen=True)
class Decision:
    """Outcome of a champion/challenger comparison."""

    promoted: bool
    metric: str
    challenger: float
    champion: float | None
    margin: float
    higher_is_better: bool
    holdout: str
    reason: str
    beats_baseline: bool = True  # False: the challenger lost to the baseline (the champion may still be compared)


@dataclass(frozen=True)
class Guard:
    """Another headline metric on the same holdout: the candidate must be no worse on it than the best simple
    method (``baseline_name``), or it does not beat the baseline."""

    metric: str
    value: float  # the candidate's
    baseline_value: float
    baseline_name: str
    higher_is_better: bool = False

    def holds(self) -> tuple[bool, str]:
        ok = self.value >= self.baseline_value if self.higher_is_better else self.value <= self.baseline_value
        verdict = "is no worse than" if ok else "is worse than"
        return ok, f"{self.metric} {self.value:.6g} {verdict} the baseline's ({self.baseline_name}) {self.baseline_value:.6g}"


@dataclass(frozen=True)
class Baseline:
    """The strongest simple method measured on the same holdout: the bar every candidate must clear by the margin,
    the first one included, and be no worse than on each ``guards`` metric. ``serve()`` registers it as a version
    of the model (returns the version), so that it is what the daily step serves when nothing beats it."""

    name: str
    value: float
    serve: Callable[[], str] | None = None
    guards: tuple[Guard, ...] = ()


def beats(metric: str, value: float, other: float, other_name: str, margin: float, higher_is_better: bool) -> tuple[bool, str]:
    """Whether ``value`` beats ``other`` by more than ``margin`` (relative: 0.01 means 1% better), and why in words."""
    bar = other * (1 + margin) if higher_is_better else other * (1 - margin)
    wins = value > bar if higher_is_better else value < bar
    op = ">" if higher_is_better else "<"
    verdict = "beats" if wins else "does not beat"
    return wins, f"{metric} {value:.6g} {verdict} {other_name} {other:.6g} by the margin ({op} {bar:.6g}, margin {margin:.2%})"


def decide(
    metric: str,
    challenger: float,
    champion: float | None,
    margin: float,
    higher_is_better: bool,
    holdout: str,
    baseline: tuple[str, float] | None = None,
    guards: tuple[Guard, ...] = (),
) -> Decision:
    """Pure rule: promote when the challenger beats the baseline (when there is one) by more than ``margin``
    (relative: 0.01 means 1% better) and is no worse than it on each guard metric, and beats the champion (when
    there is one) by the margin."""
    reasons = []
    if baseline is not None:
        wins, why = beats(metric, challenger, baseline[1], f"the baseline's ({baseline[0]})", margin, higher_is_better)
        held = [guard.holds() for guard in guards]
        if not wins or not all(ok for ok, _ in held):
            why = "; ".join([why, *(text for ok, text in held if not ok)])
            return Decision(False, metric, challenger, champion, margin, higher_is_better, holdout, why, beats_baseline=False)
        reasons += [why, *(text for _, text in held)]
    if champion is None:
        return Decision(True, metric, challenger, None, margin, higher_is_better, holdout, "; ".join(["no champion yet", *reasons]))
    wins, why = beats(metric, challenger, champion, "the champion's", margin, higher_is_better)
    return Decision(wins, metric, challenger, champion, margin, higher_is_better, holdout, "; ".join([why, *reasons]))


def champion(client, name: str):
    """The champion ModelVersion of ``name``, or None when no version holds the alias yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if "alias" in str(exc) and "not found" in str(exc):
            return None
        raise


def promote(
    client,
    name: str,
    version: str,
    metric: str,
    value: float,
    holdout: str,
    margin: float = 0.01,
    higher_is_better: bool = True,
    evaluate_champion: Callable[[str], float] | None = None,
    baseline: Baseline | None = None,
) -> Decision:
    """Give ``version`` the challenger alias, compare it with the baseline and the champion on the same holdout,
    and move the champion alias when it wins. ``holdout`` identifies the evaluation data; if the champion was
    measured on another holdout, ``evaluate_champion(model_uri)`` re-measures it (else RegistryError: no unfair
    comparisons). When the challenger loses to the baseline and no champion beats it either (none yet, or one
    measured here no better than it), ``baseline.serve()`` registers the baseline and it becomes the champion."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    champion_value, not_comparable = None, None
    current = champion(client, name)
    champion_version = None if current is None else str(current.version)
    if current is not None and champion_version != version:
        if current.tags.get("eval.holdout") == holdout and f"eval.{metric}" in current.tags:
            champion_value = float(current.tags[f"eval.{metric}"])
        elif evaluate_champion is not None:
            try:
                champion_value = float(evaluate_champion(f"models:/{name}/{champion_version}"))
            except NotComparable as exc:
                not_comparable = str(exc)
        else:
            raise RegistryError(
                f"{name} champion v{champion_version} was evaluated on holdout {current.tags.get('eval.holdout')!r}, "
                f"not {holdout!r}; pass evaluate_champion to measure it on the same holdout"
            )
    if not_comparable:
        decision = Decision(False, metric, value, None, margin, higher_is_better, holdout, f"not compared: {not_comparable}")
    else:
        bar = None if baseline is None else (baseline.name, baseline.value)
        decision = decide(metric, value, champion_value, margin, higher_is_better, holdout, bar, () if baseline is None else baseline.guards)
    if baseline is not None and baseline.serve is not None and not decision.beats_baseline and not not_comparable:
        # the margin is a candidate's bar; a sitting champion keeps serving while it is better than the baseline at all
        champion_holds = champion_value is not None and beats(metric, champion_value, baseline.value, "", 0.0, higher_is_better)[0]
        if not champion_holds:
            served = _serve_baseline(client, name, baseline, metric, holdout, margin, version, decision.reason, champion_version, champion_value)
            decision = replace(decision, reason=f"{decision.reason}; the baseline is served instead (v{served})")
    tags = {
        "eval.holdout": holdout,
        f"eval.{metric}": repr(value),
        "gate.decision": "promoted" if decision.promoted else "rejected",
        "gate.metric": metric,
        "gate.margin": repr(margin),
        "gate.champion_version": champion_version or "",
        "gate.champion_value": "" if champion_value is None else repr(champion_value),
        "gate.reason": decision.reason,
        **({"gate.baseline": baseline.name, "gate.baseline_value": repr(baseline.value)} if baseline else {}),
    }
    for key, val in tags.items():
        client.set_model_version_tag(name, version, key, val)
    verdict = "PROMOTED to champion" if decision.promoted else "kept as challenger"
    client.update_model_version(name, version, description=f"{verdict}: {decision.reason} (holdout {holdout}).")
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion_version and champion_version != version:
            client.set_model_version_tag(name, champion_version, "gate.replaced_by", version)
    log.info("%s v%s %s: %s", name, version, verdict, decision.reason)
    return decision


def _serve_baseline(
    client,
    name: str,
    baseline: Baseline,
    metric: str,
    holdout: str,
    margin: float,
    challenger: str,
    challenger_lost: str,
    champion_version: str | None,
    champion_value: float | None,
) -> str:
    """Register the baseline and make it the champion, with the reason in words on the version (``challenger_lost``:
    why the challenger did not beat it)."""
    assert baseline.serve is not None
    served = baseline.serve()
    reason = f"served as the baseline {baseline.name} ({metric} {baseline.value:.6g}): the challenger v{challenger} lost to it ({challenger_lost})"
    if champion_version is not None:
        reason += f", and the champion v{champion_version} ({metric} {champion_value:.6g}) is no better than it"
    tags = {
        "eval.holdout": holdout,
        f"eval.{metric}": repr(baseline.value),
        "gate.decision": "baseline served",
        "gate.metric": metric,
        "gate.margin": repr(margin),
        "gate.baseline": baseline.name,
        "gate.baseline_value": repr(baseline.value),
        "gate.reason": reason,
    }
    for key, val in tags.items():
        client.set_model_version_tag(name, served, key, val)
    client.update_model_version(name, served, description=f"CHAMPION as the baseline: {reason} (holdout {holdout}).")
    client.set_registered_model_alias(name, CHAMPION, served)
    if champion_version and champion_version != served:
        client.set_model_version_tag(name, champion_version, "gate.replaced_by", served)
    log.warning("%s: %s; v%s is served", name, reason, served)
    return served


def gate_run(
    settings: Settings,
    entry: RegistryEntry,
    registered: dict,
    value: float,
    margin: float,
    evaluate_champion: Callable[[str], float],
    baseline: Baseline | None = None,
) -> dict:
    """The gate step every trained pipeline shares: :func:`promote` the registered version (its ``value`` of the
    metric on its holdout) against the ``baseline`` and the champion, re-measured there by ``evaluate_champion``;
    returns the decision."""
    decision = promote(
        configure(settings, entry.experiment),
        entry.model,
        registered["version"],
        entry.metric,
        value,
        registered["holdout"],
        margin=margin,
        higher_is_better=entry.higher_is_better,
        evaluate_champion=evaluate_champion,
        baseline=baseline,
    )
    return {"version": registered["version"], "promoted": decision.promoted, "reason": decision.reason}


def champion_version(settings: Settings, entry: RegistryEntry) -> str:
    """The version of the entry's model holding ``@champion`` now: resolved once per run, so every scoring shard
    uses the same one even if a concurrent run moves the alias."""
    current = champion(configure(settings, entry.experiment), entry.model)
    if current is None:
        raise RegistryError(f"no {entry.model}@{CHAMPION} in {settings.mlflow_tracking_uri}: train and gate a model first")
    return str(current.version)


def load_python_model(settings: Settings, uri: str):
    """The Python object behind a logged pyfunc model (``runs:/...`` or ``models:/...``)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def load_champion(settings: Settings, name: str):
    """The ``@champion`` version of ``name`` as a pyfunc model; a clear error when there is none."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    except Exception as exc:  # MlflowException for an unknown model or alias
        raise RegistryError(f"no champion for model {name!r} in {settings.mlflow_tracking_uri}: train and promote one first ({exc})") from exc
