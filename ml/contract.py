"""The data contract: canonical tables, their columns, types, units, allowed values and keys.

Written once here (and light to import: DAG files read it at parse time); the validation suites, the CSV parser, the
lake and the serving store are derived from it. The tables the pipelines publish (``OUTPUTS``) are checked against it
at publish.
Ids are strings everywhere; timestamps are timezone-aware UTC; dates are midnight UTC timestamps
(``date`` kind) so that Parquet, pandas and SQL agree on one representation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ml.errors import ContractError

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["string", "int", "float", "bool", "date", "timestamp"]

PANDAS_DTYPES: dict[str, str] = {
    "string": "string",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "date": "datetime64[us, UTC]",
    "timestamp": "datetime64[us, UTC]",
}

# How each kind looks in a CSV drop; checked before casting so a bad value is reported, not coerced to null.
CSV_PATTERNS: dict[str, str] = {
    "int": r"^-?\d+$",
    "float": r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$",
    "bool": r"^(?:[Tt]rue|[Ff]alse|TRUE|FALSE|0|1)$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "timestamp": r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: Kind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    allowed: tuple[str, ...] | None = None
    unit: str = ""
    doc: str = ""


def dtype_of(col: Column) -> str:
    """The pandas dtype of a column: nullable integers use pandas' Int64."""
    return "Int64" if col.kind == "int" and col.nullable else PANDAS_DTYPES[col.kind]


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must name an existing row of ``table.column``."""

    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns, natural key, event-time column and foreign keys."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    kind: Literal["dimension", "fact", "output"]
    time_column: str | None = None
    """For fact tables, the column whose UTC date places a row in a daily lake partition."""
    placed_by: ForeignKey | None = None
    """For a fact table without a time column: rows go to the partition of their parent row, so the parent table
    must arrive in the same drop (order lines with their orders)."""
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    ordered: tuple[tuple[str, str], ...] = ()
    """Pairs (a, b) with a >= b on every row where both are present."""
    expect_daily: bool = False
    """A healthy drop has rows on its last day (the freshness check applies)."""
    doc: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise ContractError(f"table {self.name!r} has no column {name!r}; columns: {self.column_names}")


def _money(name: str, doc: str = "", nullable: bool = False) -> Column:
    return Column(name, "float", nullable=nullable, min=0, unit="currency units", doc=doc)


def _lat(name: str = "lat", nullable: bool = False) -> Column:
    return Column(name, "float", nullable=nullable, min=-90, max=90, unit="degrees WGS84")


def _lon(name: str = "lon", nullable: bool = False) -> Column:
    return Column(name, "float", nullable=nullable, min=-180, max=180, unit="degrees WGS84")


EVENT_TYPES = ("view", "cart", "purchase")
CHARGEBACK_REASONS = ("fraud", "abuse", "dispute")
ABUSE_REASONS = ("fraud", "abuse")
RISK_DECISIONS = ("pass", "review", "hold")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            (
                Column("customer_id", "string"),
                Column("signup_date", "date", nullable=True, doc="null when the source does not know it"),
                Column("region", "string"),
                _lat(nullable=True),
                _lon(nullable=True),
            ),
            key=("customer_id",),
            kind="dimension",
            doc="One row per customer known at ds (a full snapshot).",
        ),
        Table(
            "products",
            (
                Column("product_id", "string"),
                Column("category", "string"),
                Column("brand", "string", nullable=True),
                Column("title", "string", nullable=True),
                # Planning fields are nullable: POS logs and review dumps lack them; the inventory plan checks them.
                _money("price", "list price", nullable=True),
                _money("unit_cost", "purchase cost per unit", nullable=True),
                Column("case_pack", "int", nullable=True, min=1, unit="units per case"),
                Column("moq", "int", nullable=True, min=0, unit="units"),
                Column("lead_time_days", "int", nullable=True, min=0, max=365, unit="days"),
                Column("supplier_id", "string", nullable=True),
            ),
            key=("product_id",),
            kind="dimension",
            doc="The catalogue at ds (a full snapshot).",
        ),
        Table(
            "events",
            (
                Column("customer_id", "string"),
                Column("product_id", "string"),
                Column("event_ts", "timestamp"),
                Column("event_type", "string", allowed=EVENT_TYPES),
                Column("session_id", "string"),
            ),
            key=("customer_id", "product_id", "event_ts", "event_type"),
            kind="fact",
            time_column="event_ts",
            expect_daily=True,
            foreign_keys=(
                ForeignKey("customer_id", "customers", "customer_id"),
                ForeignKey("product_id", "products", "product_id"),
            ),
            doc="Browsing events (view, add to cart, purchase).",
        ),
        Table(
            "orders",
            (
                Column("order_id", "string"),
                Column("customer_id", "string", nullable=True, doc="null for anonymous point-of-sale sales"),
                Column("order_ts", "timestamp"),
                _lat("ship_lat", nullable=True),
                _lon("ship_lon", nullable=True),
                Column("promised_date", "date", nullable=True),
                Column("warehouse_id", "string", nullable=True),
                Column("window_start", "timestamp", nullable=True, doc="delivery slot chosen at checkout; null: any time of the delivery shift"),
                Column("window_end", "timestamp", nullable=True),
                Column("device_id", "string", nullable=True, doc="fingerprint of the device the order was placed from"),
                Column("payment_id", "string", nullable=True, doc="fingerprint of the card or payment account"),
            ),
            key=("order_id",),
            kind="fact",
            time_column="order_ts",
            expect_daily=True,
            ordered=(("promised_date", "order_ts"), ("window_end", "window_start")),
            foreign_keys=(
                ForeignKey("customer_id", "customers", "customer_id"),
                ForeignKey("warehouse_id", "warehouses", "warehouse_id"),
            ),
        ),
        Table(
            "order_items",
            (
                Column("order_id", "string"),
                Column("product_id", "string"),
                Column("qty", "float", min=0, strict_min=True, unit="units (fractional for sales by weight or dose)"),
                _money("unit_price", "price paid per unit after discount; null when the source has no prices", True),
                Column("discount", "float", nullable=True, min=0, max=1, unit="fraction of list price"),
            ),
            key=("order_id", "product_id"),
            kind="fact",
            time_column=None,
            placed_by=ForeignKey("order_id", "orders", "order_id"),
            foreign_keys=(
                ForeignKey("order_id", "orders", "order_id"),
                ForeignKey("product_id", "products", "product_id"),
            ),
        ),
        Table(
            "inventory",
            (
                Column("ds", "date"),
                Column("warehouse_id", "string"),
                Column("product_id", "string"),
                Column("on_hand", "int", min=0, unit="units"),
                Column("on_order", "int", min=0, unit="units"),
            ),
            key=("ds", "warehouse_id", "product_id"),
            kind="fact",
            time_column="ds",
            expect_daily=True,
            foreign_keys=(
                ForeignKey("warehouse_id", "warehouses", "warehouse_id"),
                ForeignKey("product_id", "products", "product_id"),
            ),
            doc="Stock at the start of day ds.",
        ),
        Table(
            "warehouses",
            (
                Column("warehouse_id", "string"),
                _lat(),
                _lon(),
                Column("capacity_units", "int", min=0, unit="units"),
                Column("vehicles", "int", min=0),
                Column("vehicle_capacity", "int", min=1, unit="units"),
            ),
            key=("warehouse_id",),
            kind="dimension",
        ),
        Table(
            "promotions",
            (
                Column("product_id", "string"),
                Column("start_date", "date"),
                Column("end_date", "date"),
                Column("discount", "float", min=0, max=1, unit="fraction of list price"),
            ),
            key=("product_id", "start_date"),
            kind="dimension",
            foreign_keys=(ForeignKey("product_id", "products", "product_id"),),
            ordered=(("end_date", "start_date"),),
            doc="All promotions known at ds, past and planned.",
        ),
        Table(
            "coupon_campaigns",
            (
                Column("campaign_id", "string"),
                Column("customer_id", "string"),
                Column("treatment", "string", doc="an action name, or 'control'"),
                Column("sent_ts", "timestamp"),
                Column("outcome_end_ts", "timestamp", doc="end of the outcome window that starts at sent_ts"),
                Column("converted", "bool"),
                _money("revenue", "revenue in the outcome window"),
            ),
            key=("campaign_id", "customer_id"),
            kind="fact",
            time_column="outcome_end_ts",
            ordered=(("outcome_end_ts", "sent_ts"),),
            foreign_keys=(ForeignKey("customer_id", "customers", "customer_id"),),
            doc="A randomized coupon experiment; a row lands on the day its outcome window closes, not before.",
        ),
        Table(
            "chargebacks",
            (
                Column("order_id", "string", doc="an order of an earlier day"),
                Column("reported_ts", "timestamp"),
                Column("reason", "string", allowed=CHARGEBACK_REASONS),
            ),
            key=("order_id",),
            kind="fact",
            time_column="reported_ts",
            doc="Chargebacks and confirmed abuse reports; a row lands on the day it is reported, weeks after its order. "
            "fraud and abuse are the labels of the risk model; a dispute is not abuse.",
        ),
    )
}

CONTROL = "control"


def _ds() -> Column:
    return Column("ds", "date", doc="the run's logical date (YYYY-MM-DD)")


def _version() -> Column:
    return Column("model_version", "string", doc="MLflow registered-model version that produced the row")


OUTPUTS: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "recommendations",
            (
                _ds(),
                Column("customer_id", "string"),
                Column("rank", "int", min=1),
                Column("product_id", "string"),
                Column("score", "float", nullable=True),
                Column("model_name", "string"),
                _version(),
            ),
            key=("customer_id", "rank"),
            kind="output",
            doc="Top-K products per customer for ds, from the champion (cold start: recent regional popularity).",
        ),
        Table(
            "demand_forecasts",
            (
                _ds(),
                Column("product_id", "string"),
                Column("warehouse_id", "string"),
                Column("target_date", "date"),
                Column("p10", "float", min=0),
                Column("p50", "float", min=0),
                Column("p90", "float", min=0),
                _version(),
            ),
            key=("product_id", "warehouse_id", "target_date"),
            kind="output",
            ordered=(("p50", "p10"), ("p90", "p50")),
            doc="Daily demand quantiles per (product, warehouse) for the days after ds.",
        ),
        Table(
            "purchase_orders",
            (
                _ds(),
                Column("warehouse_id", "string"),
                Column("product_id", "string"),
                Column("order_date", "date"),
                Column("arrival_date", "date"),
                Column("qty", "int", min=0, strict_min=True, unit="units"),
                Column("reorder_point", "float", nullable=True),
                Column("safety_stock", "float", nullable=True),
                Column("expected_fill_rate", "float", nullable=True, min=0, max=1),
                _money("expected_cost", nullable=True),
                Column("solver_status", "string"),
                Column("mip_gap", "float", nullable=True, min=0),
            ),
            key=("warehouse_id", "product_id", "order_date"),
            kind="output",
            ordered=(("arrival_date", "order_date"),),
            doc="The order lines of each warehouse's plan, with the SKU's policy and the solve's honest status.",
        ),
        Table(
            "interventions",
            (
                _ds(),
                Column("customer_id", "string"),
                Column("action", "string"),
                Column("expected_uplift", "float"),
                Column("expected_profit", "float"),
                Column("expected_spend", "float", min=0),
                Column("propensity", "float", min=0, max=1),
                Column("reason", "string"),
                _version(),
            ),
            key=("customer_id",),
            kind="output",
            doc="Who gets which coupon the day after ds, with the expected uplift, profit and spend, and why.",
        ),
        Table(
            "delivery_routes",
            (
                _ds(),
                Column("depot_id", "string"),
                Column("vehicle_id", "string"),
                Column("stop_seq", "int", min=0),
                Column("order_id", "string", nullable=True, doc="null at the depot (start and end of a route)"),
                Column("node_id", "int"),
                _lat(),
                _lon(),
                Column("eta", "timestamp"),
                Column("window_start", "timestamp", nullable=True),
                Column("window_end", "timestamp", nullable=True),
                Column("demand", "int", min=0),
                Column("load", "int", min=0),
                Column("leg_seconds", "float", min=0),
                Column("leg_metres", "float", min=0),
            ),
            key=("depot_id", "vehicle_id", "stop_seq"),
            kind="output",
            doc="Each vehicle's stops for the delivery day after ds, in order, with arrival times and loads.",
        ),
        Table(
            "product_associations",
            (
                _ds(),
                Column("product_id", "string"),
                Column("associated_product_id", "string"),
                Column("support", "float", min=0, max=1, doc="share of the window's baskets that hold both"),
                Column("confidence", "float", min=0, max=1, doc="share of the product's baskets that also hold the associated one"),
                Column("lift", "float", min=0, doc="confidence over the associated product's share of baskets (1: chance)"),
            ),
            key=("product_id", "associated_product_id"),
            kind="output",
            doc="Frequently bought together: FP-growth rules from the order baskets of a window through ds.",
        ),
        Table(
            "customer_segments",
            (
                _ds(),
                Column("customer_id", "string"),
                Column("segment", "int", min=0, doc="behavioural cluster; the number keeps its meaning from day to day"),
                Column("segment_name", "string", doc="plain name from the segment's profile, e.g. 'frequent high-value single-category'"),
                Column("r", "int", min=1, max=5, doc="recency quintile among the lookback's buyers (5: most recent; 1: no order)"),
                Column("f", "int", min=1, max=5, doc="frequency quintile (5: most orders)"),
                Column("m", "int", min=1, max=5, doc="monetary quintile (5: most spent)"),
                Column("rfm_code", "string", doc="r, f and m as one code, 555 to 111"),
            ),
            key=("customer_id",),
            kind="output",
            doc="Every customer active in the lookback through ds: RFM code and behavioural segment.",
        ),
        Table(
            "segment_profiles",
            (
                _ds(),
                Column("segment", "int", min=0),
                Column("segment_name", "string"),
                Column("customers", "int", min=1),
                Column("revenue_share", "float", min=0, max=1, doc="share of the lookback's revenue"),
                Column("order_rate", "float", min=0, unit="orders per customer per 30 days"),
                Column("top_categories", "string", doc="most bought categories, comma separated (empty: no purchases)"),
                Column("churn_risk", "float", min=0, max=1, doc="mean lapse risk: chance a customer visiting at their own rate would have returned since"),
            ),
            key=("segment",),
            kind="output",
            doc="One row per segment of customer_segments: size, revenue share, order rate, top categories, churn risk.",
        ),
        Table(
            "order_risk",
            (
                _ds(),
                Column("order_id", "string"),
                Column("score", "float", min=0),
                Column("decision", "string", allowed=RISK_DECISIONS),
                Column("reasons", "string", doc="the features that raised the score most, in words"),
                _version(),
            ),
            key=("order_id",),
            kind="output",
            doc="Fraud and abuse risk of each order placed on ds: held orders are not routed, reviewed ones are checked within the day's budget.",
        ),
        Table(
            "delivery_exceptions",
            (_ds(), Column("depot_id", "string"), Column("order_id", "string"), Column("reason", "string"), Column("detail", "string")),
            key=("order_id",),
            kind="output",
            doc="Orders promised for the delivery day that no route serves, with the reason.",
        ),
    )
}


def table(name: str) -> Table:
    """The contract table called ``name`` (an input or an output table); a clear error for an unknown name."""
    try:
        return TABLES[name] if name in TABLES else OUTPUTS[name]
    except KeyError:
        raise ContractError(f"unknown table {name!r}; the contract has {sorted(TABLES)} and outputs {sorted(OUTPUTS)}") from None


def check_output(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """An output table's rows as the contract says, before they are published: exactly its columns, required
    values present, numbers numeric and within bounds, dates parseable, ordered pairs, a unique key. Returns the
    columns in contract order; a violation raises ContractError naming the table, the column and sample rows."""
    import pandas as pd

    spec = table(name)
    missing = [c for c in spec.column_names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.column_names]
    if missing or extra:
        raise ContractError(f"output {name!r}: columns differ from the contract: missing {missing}, not in the contract {extra}")
    out = frame[spec.column_names]
    for col in spec.columns:
        values = out[col.name]
        null = values.isna()
        if not col.nullable and null.any():
            raise ContractError(f"output {name!r} column {col.name!r}: {int(null.sum())} null values, e.g. rows {out[null].head(3).to_dict('records')}")
        present = values[~null]
        if col.kind in ("int", "float"):
            if not pd.api.types.is_numeric_dtype(present.dtype) and len(present):
                numbers = pd.to_numeric(present, errors="coerce")
                if numbers.isna().any():
                    raise ContractError(f"output {name!r} column {col.name!r}: not numeric, e.g. {present[numbers.isna()].head(3).tolist()}")
                present = numbers
            outside = pd.Series(False, index=present.index)
            if col.min is not None:
                outside |= (present <= col.min) if col.strict_min else (present < col.min)
            if col.max is not None:
                outside |= present > col.max
            if outside.any():
                bad = present[outside]
                raise ContractError(f"output {name!r} column {col.name!r}: {len(bad)} values outside [{col.min}, {col.max}], e.g. {bad.head(3).tolist()}")
        elif col.kind in ("date", "timestamp") and len(present):
            parsed = pd.to_datetime(present.astype(str), errors="coerce", format="mixed", utc=True)
            if parsed.isna().any():
                raise ContractError(f"output {name!r} column {col.name!r}: not a {col.kind}, e.g. {present[parsed.isna()].head(3).tolist()}")
    for later, earlier in spec.ordered:
        both = out[later].notna() & out[earlier].notna()
        wrong = both & (out[later] < out[earlier])
        if wrong.any():
            raise ContractError(
                f"output {name!r}: {later} < {earlier} on {int(wrong.sum())} rows, e.g. "
                f"{out.loc[wrong, [*spec.key, later, earlier]].head(3).to_dict('records')}"
            )
    duplicated = out.duplicated(list(spec.key))
    if duplicated.any():
        raise ContractError(
            f"output {name!r}: {int(duplicated.sum())} rows repeat the key {spec.key}, e.g. {out.loc[duplicated, list(spec.key)].head(3).to_dict('records')}"
        )
    return out


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the contract's columns, in order, cast to the contract's dtypes.

    Extra columns are dropped; a missing column or a value that cannot be cast raises ContractError
    naming the table and the column.
    """
    import pandas as pd

    spec = table(name)
    missing = [c for c in spec.column_names if c not in frame.columns]
    if missing:
        raise ContractError(f"table {name!r} is missing columns {missing}; got {list(frame.columns)}")
    out = {}
    for col in spec.columns:
        out[col.name] = _cast(frame[col.name], col, name)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def fill_nullable(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add the nullable columns a file left out, as nulls; returns the frame and the names filled (the gate
    reports them). Required columns are never filled."""
    absent = [c.name for c in table(name).columns if c.nullable and c.name not in frame.columns]
    return (frame.assign(**{c: None for c in absent}) if absent else frame), absent


def _cast(values: pd.Series, col: Column, table_name: str) -> pd.Series:
    import pandas as pd

    try:
        if col.kind in ("date", "timestamp"):
            if pd.api.types.is_string_dtype(values.dtype):
                ts = pd.to_datetime(values, utc=True, format="ISO8601")
            else:
                ts = pd.to_datetime(values, utc=True)
            ts = ts.astype(dtype_of(col))
            return ts.dt.normalize() if col.kind == "date" else ts
        if col.kind == "bool" and pd.api.types.is_string_dtype(values.dtype):
            return values.map(lambda v: str(v).lower() in ("true", "1")).astype("bool")
        if col.kind == "string":
            return values.astype("string")
        return values.astype(dtype_of(col))
    except (ValueError, TypeError) as exc:
        raise ContractError(f"table {table_name!r} column {col.name!r}: cannot cast to {col.kind}: {exc}") from exc


def empty(name: str) -> pd.DataFrame:
    """An empty frame with the contract's columns and dtypes."""
    import pandas as pd

    spec = table(name)
    return pd.DataFrame({c.name: pd.Series(dtype=dtype_of(c)) for c in spec.columns})


def _describe(col: Column) -> str:
    text = f"{col.name}{'?' if col.nullable else ''} {col.kind}"
    bounds = [f"{'>' if col.strict_min else '>='} {col.min:g}" if col.min is not None else "", f"<= {col.max:g}" if col.max is not None else ""]
    extra = [b for b in bounds if b] + ([" / ".join(col.allowed)] if col.allowed else [])
    return text + (f" ({', '.join(extra)})" if extra else "")


def markdown_table(outputs: bool = False) -> str:
    """The bring-your-own-data format (or, with ``outputs``, the tables the pipelines publish) as a Markdown table,
    written from the contract (the README shows both, and a test keeps them equal): key columns, then every column
    with its kind, bounds and allowed values."""
    header = (
        "| output table | key | columns (`?`: nullable) |"
        if outputs
        else "| table | key | columns (`?`: nullable: its values may be empty, or the column may be left out of the file) |"
    )
    lines = [header, "|---|---|---|"]
    for table in (OUTPUTS if outputs else TABLES).values():
        columns = "; ".join(_describe(c) for c in table.columns)
        columns += "".join(f"; {later} >= {earlier}" for later, earlier in table.ordered)
        if table.placed_by:
            columns += f"; arrives with {table.placed_by.table} in the same drop"
        lines.append(f"| {table.name} | {', '.join(table.key)} | {columns} |")
    return "\n".join(lines)
