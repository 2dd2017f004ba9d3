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
