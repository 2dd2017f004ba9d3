"""MLflow helpers: log a model with its signature and explicit requirements, register it, and promote it by
alias (``challenger`` -> ``champion``) only when it beats the champion on the same holdout by a stated margin.

The decision, both metric values, the margin and the holdout are written on the version (tags and
description), so a reviewer sees in the registry UI why a version is or is not the champion.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
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


def decide(metric: str, challenger: float, champion: float | None, margin: float, higher_is_better: bool, holdout: str) -> Decision:
    """Pure rule: promote when there is no champion, or the challenger beats it by more than ``margin``
    (relative: 0.01 means 1% better)."""
    if champion is None:
        return Decision(True, metric, challenger, None, margin, higher_is_better, holdout, "no champion yet")
    bar = champion * (1 + margin) if higher_is_better else champion * (1 - margin)
    beats = challenger > bar if higher_is_better else challenger < bar
    op = ">" if higher_is_better else "<"
    verdict = "beats" if beats else "does not beat"
    reason = f"{metric} {challenger:.6g} {verdict} the champion's {champion:.6g} by the margin ({op} {bar:.6g}, margin {margin:.2%})"
    return Decision(beats, metric, challenger, champion, margin, higher_is_better, holdout, reason)


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
) -> Decision:
    """Give ``version`` the challenger alias, compare it with the champion on the same holdout, and move the
    champion alias when it wins. ``holdout`` identifies the evaluation data; if the champion was measured on
    another holdout, ``evaluate_champion(model_uri)`` re-measures it (else RegistryError: no unfair comparisons)."""
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
        decision = decide(metric, value, champion_value, margin, higher_is_better, holdout)
    tags = {
        "eval.holdout": holdout,
        f"eval.{metric}": repr(value),
        "gate.decision": "promoted" if decision.promoted else "rejected",
        "gate.metric": metric,
        "gate.margin": repr(margin),
        "gate.champion_version": champion_version or "",
        "gate.champion_value": "" if champion_value is None else repr(champion_value),
        "gate.reason": decision.reason,
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


def gate_run(settings: Settings, entry: RegistryEntry, registered: dict, value: float, margin: float, evaluate_champion: Callable[[str], float]) -> dict:
    """The gate step every trained pipeline shares: :func:`promote` the registered version (its ``value`` of the
    metric on its holdout), the champion re-measured there by ``evaluate_champion``; returns the decision."""
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
    )
    return {"version": registered["version"], "promoted": decision.promoted, "reason": decision.reason}


def champion_version(settings: Settings, experiment: str, name: str) -> str:
    """The version of ``name`` holding ``@champion`` now: resolved once per run, so every scoring shard uses the
    same one even if a concurrent run moves the alias."""
    current = champion(configure(settings, experiment), name)
    if current is None:
        raise RegistryError(f"no {name}@{CHAMPION} in {settings.mlflow_tracking_uri}: train and gate a model first")
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
