"""Champion/challenger promotion by alias, with the decision written on the version."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from conftest import make_settings
from ml import registry
from ml.errors import RegistryError


class ConstantModel(mlflow.pyfunc.PythonModel):
    """Predicts a constant score per row: enough to exercise logging, signatures and loading."""

    def __init__(self, value: float):
        self.value = value

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({"score": [self.value] * len(model_input)})


def _train(name: str, value: float) -> str:
    example = pd.DataFrame({"customer_id": ["C1", "C2"], "recency_days": [3.0, 10.0]})
    with mlflow.start_run():
        uri = registry.log_pyfunc_model(ConstantModel(value), "model", example, registry.pip_requirements())
    return registry.register(None, uri, name)


def test_decide_is_a_pure_rule():
    assert registry.decide("ndcg", 0.5, None, 0.01, True, "h").promoted
    assert registry.decide("ndcg", 0.505, 0.5, 0.01, True, "h").promoted is False
    assert registry.decide("ndcg", 0.506, 0.5, 0.01, True, "h").promoted
    assert registry.decide("mase", 0.80, 0.90, 0.05, False, "h").promoted
    assert registry.decide("mase", 0.86, 0.90, 0.05, False, "h").promoted is False


def test_the_baseline_is_a_bar_for_every_candidate_the_first_included():
    below = registry.decide("ndcg", 0.20, None, 0.01, True, "h", baseline=("recent popularity", 0.21))
    assert not below.promoted and not below.beats_baseline
    assert "0.2 does not beat the baseline's (recent popularity) 0.21" in below.reason
    first = registry.decide("ndcg", 0.30, None, 0.01, True, "h", baseline=("recent popularity", 0.21))
    assert first.promoted and "no champion yet" in first.reason and "beats the baseline's (recent popularity) 0.21" in first.reason
    # lower is better: a MASE must come in under seasonal naive's by the margin, then under the champion's
    assert not registry.decide("mase", 0.99, 0.95, 0.02, False, "h", baseline=("seasonal naive", 1.0)).promoted
    assert registry.decide("mase", 0.90, 0.95, 0.02, False, "h", baseline=("seasonal naive", 1.0)).promoted


def test_a_candidate_worse_than_the_baseline_on_a_guard_metric_does_not_beat_it():
    wrmsse = registry.Guard("wrmsse", 0.75, 0.72, "ETS")
    pinball = registry.Guard("pinball", 0.20, 0.22, "ETS")
    lost = registry.decide("mase", 0.80, None, 0.02, False, "h", baseline=("seasonal naive", 1.0), guards=(wrmsse, pinball))
    assert not lost.promoted and not lost.beats_baseline
    assert "mase 0.8 beats the baseline's (seasonal naive) 1" in lost.reason and "wrmsse 0.75 is worse than the baseline's (ETS) 0.72" in lost.reason
    assert "pinball" not in lost.reason  # only the guards it failed
    won = registry.decide("mase", 0.80, None, 0.02, False, "h", baseline=("seasonal naive", 1.0), guards=(registry.Guard("wrmsse", 0.72, 0.72, "ETS"), pinball))
    assert won.promoted and "wrmsse 0.72 is no worse than the baseline's (ETS) 0.72" in won.reason


def test_when_nothing_beats_the_baseline_the_baseline_is_served(settings):
    client = registry.configure(settings, "registry-test")
    name = "baseline_scorer"
    served = []

    def serve() -> str:
        served.append(_train(name, 0.5))
        return served[-1]

    weak = _train(name, 1.0)
    decision = registry.promote(client, name, weak, "ndcg_at_10", 0.20, "split-A", baseline=registry.Baseline("recent popularity", 0.25, serve))
    assert not decision.promoted and len(served) == 1
    assert str(registry.champion(client, name).version) == served[0]  # not the weak first version
    assert "0.2 does not beat the baseline's (recent popularity) 0.25" in decision.reason and f"served instead (v{served[0]})" in decision.reason
    baseline_version = client.get_model_version(name, served[0])
    assert baseline_version.tags["gate.decision"] == "baseline served" and float(baseline_version.tags["eval.ndcg_at_10"]) == 0.25
    assert "ndcg_at_10 0.2" in baseline_version.description and "recent popularity (ndcg_at_10 0.25)" in baseline_version.description
    assert client.get_model_version(name, weak).tags["gate.baseline_value"] == "0.25"

    # a strong challenger beats both; a later weak one loses to the baseline, and the champion (measured here above
    # the baseline) stays: no second baseline version
    strong = _train(name, 2.0)
    assert registry.promote(client, name, strong, "ndcg_at_10", 0.40, "split-A", baseline=registry.Baseline("recent popularity", 0.25, serve)).promoted
    again = _train(name, 1.5)
    kept = registry.promote(client, name, again, "ndcg_at_10", 0.24, "split-A", baseline=registry.Baseline("recent popularity", 0.25, serve))
    assert not kept.promoted and len(served) == 1 and str(registry.champion(client, name).version) == strong
    # the margin is a candidate's bar: a champion better than the baseline, if not by a 50% margin, keeps serving
    demanding = registry.promote(
        client, name, _train(name, 1.6), "ndcg_at_10", 0.26, "split-A", margin=0.5, baseline=registry.Baseline("recent popularity", 0.25, serve)
    )
    assert not demanding.promoted and len(served) == 1 and str(registry.champion(client, name).version) == strong
    # on a new holdout where the champion falls below the baseline, the baseline is served again
    later = _train(name, 1.2)
    registry.promote(
        client, name, later, "ndcg_at_10", 0.20, "split-B", evaluate_champion=lambda uri: 0.22, baseline=registry.Baseline("recent popularity", 0.30, serve)
    )
    assert len(served) == 2 and str(registry.champion(client, name).version) == served[1]
    assert client.get_model_version(name, strong).tags["gate.replaced_by"] == served[1]


def _promotion_flow(settings):
    client = registry.configure(settings, "registry-test")
    name = "toy_scorer"
    v1 = _train(name, 1.0)
    first = registry.promote(client, name, v1, "ndcg_at_10", 0.30, holdout="split-A")
    assert first.promoted and first.reason == "no champion yet"

    v2 = _train(name, 2.0)
    worse = registry.promote(client, name, v2, "ndcg_at_10", 0.302, holdout="split-A", margin=0.01)
    assert not worse.promoted and worse.champion == 0.30
    assert str(registry.champion(client, name).version) == v1
    assert str(client.get_model_version_by_alias(name, registry.CHALLENGER).version) == v2
    tags = client.get_model_version(name, v2).tags
    assert tags["gate.decision"] == "rejected" and float(tags["gate.champion_value"]) == 0.30
    assert float(tags["gate.margin"]) == 0.01 and "does not beat" in client.get_model_version(name, v2).description

    with pytest.raises(RegistryError, match="evaluated on holdout 'split-A', not 'split-B'"):
        registry.promote(client, name, v2, "ndcg_at_10", 0.5, holdout="split-B")
    v3 = _train(name, 3.0)
    better = registry.promote(client, name, v3, "ndcg_at_10", 0.40, holdout="split-B", evaluate_champion=lambda uri: 0.31)
    assert better.promoted and better.champion == 0.31
    assert client.get_model_version(name, v1).tags["gate.replaced_by"] == v3

    champion = registry.load_champion(settings, name)
    scores = champion.predict(pd.DataFrame({"customer_id": ["C9"], "recency_days": [1.0]}))
    assert scores["score"].tolist() == [3.0]
    info = mlflow.models.get_model_info(f"models:/{name}/{v3}")
    assert info.signature is not None and "recency_days" in str(info.signature.inputs)


def test_promotion_on_embedded_sqlite(settings):
    _promotion_flow(settings)


@pytest.mark.postgres
def test_promotion_on_postgres_backend(tmp_path, postgres_url):
    import uuid

    import sqlalchemy as sa

    db = f"mlflow_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        url = postgres_url.rsplit("/", 1)[0] + f"/{db}"
        _promotion_flow(make_settings(tmp_path / "ecom", MLFLOW_TRACKING_URI=url))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def test_missing_champion_is_a_clear_error(settings):
    registry.configure(settings, "registry-test")
    with pytest.raises(RegistryError, match="no champion for model 'nothing_here'"):
        registry.load_champion(settings, "nothing_here")
