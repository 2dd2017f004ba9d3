"""The daily step: the frequently-bought-together rules of the order baskets in the window through ds, as
``product_associations(ds, product_id, associated_product_id, support, confidence, lift)``."""

from __future__ import annotations

import datetime as dt
import logging

from ml import contract
from ml.associations import data, io, model
from ml.associations.pipeline import AssociationsConfig
from ml.settings import Settings

log = logging.getLogger(__name__)

COLUMNS = tuple(contract.table(io.TABLE).column_names)


def mine_day(settings: Settings, ds: dt.date, config: AssociationsConfig) -> dict:
    """Mine the window's baskets and stage the rules for the publish."""
    orders, items = io.load_orders(settings, ds, config.window_days)
    baskets = data.baskets(orders, items)
    rules = model.mine(baskets, config.rules())
    io.stage_rules(settings, ds, rules.assign(ds=ds.isoformat())[list(COLUMNS)])
    log.info(
        "ds=%s: %d rules for %d products from %d baskets (%d with two products or more) of %d days",
        ds,
        len(rules),
        rules["product_id"].nunique(),
        len(baskets),
        int((baskets.map(len) >= 2).sum()),
        config.window_days,
    )
    return {"baskets": len(baskets), "rules": len(rules), "products": int(rules["product_id"].nunique())}
