import pandas as pd
import pytest

from ml import contract
from ml.errors import ContractError


def test_every_key_and_foreign_key_names_real_columns():
    for spec in contract.TABLES.values():
        assert set(spec.key) <= set(spec.column_names), spec.name
        for fk in spec.foreign_keys:
            assert fk.column in spec.column_names
            assert fk.ref_column in contract.table(fk.table).column_names
        for a, b in spec.ordered:
            assert {a, b} <= set(spec.column_names)
        if spec.time_column:
            assert spec.time_column in spec.column_names


def test_conform_casts_orders_and_drops_extra_columns():
    raw = pd.DataFrame({"extra": [1], "qty": ["2.5"], "order_id": ["O1"], "product_id": ["P1"], "unit_price": [None], "discount": ["0.1"]})
    out = contract.conform("order_items", raw)
    assert list(out.columns) == contract.table("order_items").column_names
    assert out["qty"].dtype == "float64" and out.loc[0, "qty"] == 2.5
    assert pd.isna(out.loc[0, "unit_price"])


def test_conform_makes_timestamps_utc_and_dates_midnight():
    raw = pd.DataFrame({"ds": ["2024-05-01T13:45:00Z"], "warehouse_id": ["W0"], "product_id": ["P1"], "on_hand": [3], "on_order": [0]})
    out = contract.conform("inventory", raw)
    assert str(out["ds"].dt.tz) == "UTC"
    assert out.loc[0, "ds"] == pd.Timestamp("2024-05-01", tz="UTC")


def test_missing_column_error_names_table_and_column():
    with pytest.raises(ContractError, match=r"'orders' is missing columns \['warehouse_id'\]"):
        contract.conform("orders", contract.empty("orders").drop(columns="warehouse_id"))


def test_unknown_table_lists_the_contract():
    with pytest.raises(ContractError, match="unknown table 'baskets'.*customers"):
        contract.table("baskets")


def test_uncastable_value_names_the_column():
    raw = contract.empty("warehouses").astype(object)
    raw.loc[0] = ["W0", "north", 7.0, 100, 2, 50]
    with pytest.raises(ContractError, match="'warehouses' column 'lat'"):
        contract.conform("warehouses", raw)


def test_the_readme_shows_the_format_the_gate_checks():
    """The README's bring-your-own-data table is the contract's own (it once left out orders.window_start/end,
    which the gate requires)."""
    from pathlib import Path

    from typer.testing import CliRunner

    from ml import contract
    from ml.cli import app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("<!-- contract-table") : readme.index("<!-- /contract-table -->")]
    assert block.split("\n", 1)[1].strip() == contract.markdown_table()
    assert "window_start? timestamp" in contract.markdown_table()
    assert CliRunner().invoke(app, ["contract"]).output.strip() == contract.markdown_table()
    outputs = readme[readme.index("<!-- output-table") : readme.index("<!-- /output-table -->")]
    assert outputs.split("\n", 1)[1].strip() == contract.markdown_table(outputs=True)
    assert CliRunner().invoke(app, ["contract", "--outputs"]).output.strip() == contract.markdown_table(outputs=True)


def test_an_output_that_breaks_its_contract_is_not_published(settings):
    """Publish checks the rows against the output table's contract and names the table, the column and rows."""
    from ml import lake, staging

    good = pd.DataFrame(
        {
            "ds": "2024-03-30",
            "customer_id": ["C1", "C1"],
            "rank": [1, 2],
            "product_id": ["P1", "P2"],
            "score": [0.9, 0.5],
            "model_name": "m",
            "model_version": "3",
        }
    )
    assert staging.write(settings, "recommendations", "2024-03-30", good) == 2
    cases = {
        r"output 'recommendations': columns differ from the contract: missing \['score'\]": good.drop(columns="score"),
        r"output 'recommendations' column 'rank': 1 values outside \[1": good.assign(rank=[0, 1]),
        r"output 'recommendations' column 'customer_id': 1 null values": good.assign(customer_id=["C1", None]),
        r"output 'recommendations': 1 rows repeat the key \('customer_id', 'rank'\)": good.assign(rank=[1, 1]),
        r"output 'recommendations' column 'ds': not a date": good.assign(ds="yesterday"),
    }
    for message, frame in cases.items():
        with pytest.raises(ContractError, match=message):
            staging.write(settings, "recommendations", "2024-03-30", frame)
    assert len(lake.read_partition(settings.lake, "outputs", "recommendations", "2024-03-30")) == 2
