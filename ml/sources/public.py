"""Adapters from the public datasets in ECOM_SHARED_DATA into the contract (read each PROVENANCE.txt).

Each ``read_*`` function takes the dataset's path and returns contract frames; nothing is invented: a field
the dataset lacks stays null (the contract allows it) or its table is not produced. Timestamps are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ml import contract
from ml.errors import SourceError
from ml.settings import Settings
from ml.sources import Source, SourceBatch, SourceRequest, in_window

log = logging.getLogger(__name__)

BEAUTY_EPOCH = pd.Timestamp("2014-07-23", tz="UTC")
"""The S3-Rec Beauty sequences carry order but no time: event k of a user is stamped BEAUTY_EPOCH + k seconds,
so every event lands in one day and only the order is meaningful (leave-last-out evaluation needs nothing else)."""

HILLSTROM_SENT = pd.Timestamp("2008-03-01T09:00:00", tz="UTC")
"""Nominal send date of the Hillstrom e-mails (the release gives none); its outcome window is two weeks."""
HILLSTROM_TREATMENTS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": contract.CONTROL}


def _frames(**tables: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Contract frames of a public dataset; the nullable columns it does not have are null."""
    return {name: contract.conform(name, contract.fill_nullable(name, frame)[0]) for name, frame in tables.items()}


def _customers_from(ids: pd.Series, region: pd.Series | str = "unknown") -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ids.to_numpy(), "signup_date": pd.NaT, "region": region, "lat": np.nan, "lon": np.nan})


def _products_from(ids: pd.Series, category, title=None) -> pd.DataFrame:
    frame = pd.DataFrame({"product_id": ids.to_numpy(), "category": category, "brand": None, "title": title})
    for col in ("price", "unit_cost", "case_pack", "moq", "lead_time_days", "supplier_id"):
        frame[col] = None
    return frame.astype({c: "float64" for c in ("price", "unit_cost")}).astype({c: "Int64" for c in ("case_pack", "moq", "lead_time_days")})


def read_amazon_beauty(path: Path) -> dict[str, pd.DataFrame]:
    """The S3-Rec Beauty sequences, ``Beauty.txt`` in the dataset's folder."""
    return read_sequences(path / "Beauty.txt")


def read_sequences(file: Path) -> dict[str, pd.DataFrame]:
    """A sequence file in the S3-Rec format (``Beauty.txt``, ``Sports.txt``, ...): one line per user,
    ``user item item ...`` in time order, no timestamps."""
    users: list[str] = []
    items: list[str] = []
    pos: list[int] = []
    with open(file) as fh:
        for line in fh:
            user, *seq = line.split()
            users += [user] * len(seq)
            items += seq
            pos += range(len(seq))
    events = pd.DataFrame(
        {
            "customer_id": users,
            "product_id": items,
            "event_ts": BEAUTY_EPOCH + pd.to_timedelta(np.asarray(pos), unit="s"),
            "event_type": "purchase",
        }
    )
    events["session_id"] = events["customer_id"]
    # A repeated (user, item) at the same position cannot happen; at different positions it keeps both rows.
    return _frames(customers=_customers_from(pd.Series(sorted(set(users)))), events=events)


def read_amazon_instruments(path: Path) -> dict[str, pd.DataFrame]:
    """``Musical_Instruments.json``: one review per line; a review is taken as a purchase at its review time."""
    raw = pd.read_json(path / "Musical_Instruments.json", lines=True)
    ts = pd.to_datetime(raw["unixReviewTime"], unit="s", utc=True)
    events = pd.DataFrame({"customer_id": raw["reviewerID"], "product_id": raw["asin"].astype(str), "event_ts": ts, "event_type": "purchase"})
    events["session_id"] = events["customer_id"] + "-" + ts.dt.strftime("%Y%m%d")
    events = events.drop_duplicates(["customer_id", "product_id", "event_ts", "event_type"])
    products = _products_from(pd.Series(sorted(events["product_id"].unique())), "musical_instruments")
    return _frames(customers=_customers_from(pd.Series(sorted(events["customer_id"].unique()))), products=products, events=events)


def read_movielens_100k(path: Path) -> dict[str, pd.DataFrame]:
    """``u.data`` ratings become purchases (the rating value is dropped: implicit feedback); ``u.item`` gives
    titles and the first genre as category; ``u.user`` the zip code as region."""
    ratings = pd.read_csv(path / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    genres = [g.split("|")[0] for g in (path / "u.genre").read_text(encoding="latin-1").strip().splitlines() if g]
    items = pd.read_csv(path / "u.item", sep="|", header=None, encoding="latin-1")
    flags = items.iloc[:, 5 : 5 + len(genres)].to_numpy()
    users = pd.read_csv(path / "u.user", sep="|", names=["user", "age", "gender", "occupation", "zip"])
    ts = pd.to_datetime(ratings["ts"], unit="s", utc=True)
    events = pd.DataFrame({"customer_id": ratings["user"].astype(str), "product_id": ratings["item"].astype(str), "event_ts": ts, "event_type": "purchase"})
    events["session_id"] = events["customer_id"] + "-" + ts.dt.strftime("%Y%m%d")
    products = _products_from(items[0].astype(str), np.asarray(genres)[flags.argmax(axis=1)], items[1])
    customers = _customers_from(users["user"].astype(str), "zip_" + users["zip"].astype(str))
    return _frames(customers=customers, products=products, events=events)


def read_bakery(path: Path) -> dict[str, pd.DataFrame]:
    """``BreadBasket_DMS.csv``: one row per item sold; a transaction is an anonymous order; lines count items.
    The placeholder item ``NONE`` is dropped (logged)."""
    raw = pd.read_csv(path / "BreadBasket_DMS.csv", dtype=str)
    none = raw["Item"].str.upper() == "NONE"
    log.info("bakery: dropping %d rows with the placeholder item NONE", int(none.sum()))
    raw = raw[~none]
    raw["product_id"] = raw["Item"].str.lower().str.replace(r"[^a-z0-9]+", "_", regex=True).str.strip("_")
    raw["order_id"] = "T" + raw["Transaction"].str.zfill(6)
    ts = pd.to_datetime(raw["Date"] + "T" + raw["Time"], utc=True)
    orders = pd.DataFrame({"order_id": raw["order_id"], "order_ts": ts}).groupby("order_id", as_index=False)["order_ts"].min()
    orders = orders.assign(customer_id=None, ship_lat=np.nan, ship_lon=np.nan, promised_date=pd.NaT, warehouse_id=None, window_start=pd.NaT, window_end=pd.NaT)
    items = raw.groupby(["order_id", "product_id"], as_index=False).size().rename(columns={"size": "qty"})
    items = items.assign(unit_price=np.nan, discount=np.nan)
    names = raw.drop_duplicates("product_id").sort_values("product_id")
    products = _products_from(names["product_id"], "bakery", names["Item"])
    return _frames(products=products, orders=orders, order_items=items)


def read_pharma(path: Path) -> dict[str, pd.DataFrame]:
    """``salesdaily.csv``: daily sales per ATC category (fractional doses); one order per day, one line per
    category with positive sales."""
    raw = pd.read_csv(path / "salesdaily.csv", sep=";")
    atc = ["M01AB", "M01AE", "N02BA", "N02BE", "N05B", "N05C", "R03", "R06"]
    day = pd.to_datetime(raw["datum"], format="%m/%d/%Y", utc=True)
    raw["order_id"] = "PH" + day.dt.strftime("%Y%m%d")
    orders = pd.DataFrame({"order_id": raw["order_id"], "order_ts": day}).drop_duplicates("order_id")
    orders = orders.assign(customer_id=None, ship_lat=np.nan, ship_lon=np.nan, promised_date=pd.NaT, warehouse_id=None, window_start=pd.NaT, window_end=pd.NaT)
    items = raw.melt(id_vars="order_id", value_vars=atc, var_name="product_id", value_name="qty")
    items = items[items["qty"] > 0].assign(unit_price=np.nan, discount=np.nan)
    products = _products_from(pd.Series(atc), [a[:3] for a in atc], atc)
    return _frames(products=products, orders=orders, order_items=items)


def read_hillstrom(path: Path) -> dict[str, pd.DataFrame]:
    """``hillstrom_part_a.csv``: each row a customer in the randomized e-mail test; conversion within two weeks."""
    raw = read_hillstrom_features(path)
    unknown = set(raw["segment"]) - set(HILLSTROM_TREATMENTS)
    if unknown:
        raise SourceError(f"hillstrom: unknown segment values {sorted(unknown)}; expected {sorted(HILLSTROM_TREATMENTS)}")
    campaigns = pd.DataFrame(
        {
            "campaign_id": "hillstrom_2008",
            "customer_id": raw["customer_id"],
            "treatment": raw["segment"].map(HILLSTROM_TREATMENTS),
            "sent_ts": HILLSTROM_SENT,
            "outcome_end_ts": HILLSTROM_SENT + pd.Timedelta(days=14),
            "converted": raw["conversion"].astype(bool),
            "revenue": raw["spend"].astype(float),
        }
    )
    return _frames(customers=_customers_from(raw["customer_id"], raw["zip_code"]), coupon_campaigns=campaigns)


def read_hillstrom_features(path: Path) -> pd.DataFrame:
    """The Hillstrom rows with a stable ``customer_id`` (``H`` + row number): the pre-treatment features
    (recency, history, mens, womens, zip_code, newbie, channel) are not contract columns, so the uplift
    pipeline reads them from here."""
    raw = pd.read_csv(path / "hillstrom_part_a.csv")
    raw.insert(0, "customer_id", [f"H{i:05d}" for i in range(len(raw))])
    return raw


DATASETS: dict[str, tuple[str, Callable[[Path], dict[str, pd.DataFrame]]]] = {
    "amazon_beauty": ("recsys/amazon-beauty", read_amazon_beauty),
    "amazon_instruments": ("recsys/amazon-musical-instruments-5core", read_amazon_instruments),
    "movielens_100k": ("recsys/movielens-100k", read_movielens_100k),
    "bakery": ("forecast/bakery-breadbasket", read_bakery),
    "pharma": ("forecast/pharma-sales-daily", read_pharma),
    "hillstrom": ("uplift/hillstrom", read_hillstrom),
}


def dataset_path(settings: Settings, name: str, override: str | None = None) -> Path:
    path = Path(override) if override else settings.shared_data_dir / DATASETS[name][0]
    if not path.exists():
        raise SourceError(f"dataset {name!r} not found at {path}; set ECOM_SHARED_DATA or pass --path")
    return path


def last_day(settings: Settings, name: str, path: str | None = None) -> dt.date:
    """The newest fact day of a dataset: the natural ds of its drop."""
    tables = DATASETS[name][1](dataset_path(settings, name, path))
    days = [f[contract.table(t).time_column].max() for t, f in tables.items() if contract.table(t).time_column and len(f)]
    return max(days).date()


def _adapter(name: str) -> Source:
    def land(settings: Settings, request: SourceRequest) -> SourceBatch:
        return in_window(DATASETS[name][1](dataset_path(settings, name, request.path)), request)

    land.__doc__ = DATASETS[name][1].__doc__
    return land


ADAPTERS: dict[str, Source] = {name: _adapter(name) for name in DATASETS}
