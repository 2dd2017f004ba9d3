"""Order baskets from the contract's orders and order lines: one set of products per order."""

from __future__ import annotations

import pandas as pd

from ml.errors import EcomError


def baskets(orders: pd.DataFrame, order_items: pd.DataFrame) -> pd.Series:
    """The distinct products of each order (index: order_id), oldest order first; orders without a line are left out."""
    if orders.empty or order_items.empty:
        raise EcomError("orders/order_items: no rows; association rules need order baskets")
    lines = order_items[["order_id", "product_id"]].merge(orders[["order_id", "order_ts"]], on="order_id", how="inner")
    if lines.empty:
        raise EcomError(f"order_items: none of {len(order_items)} lines match an order (e.g. {order_items['order_id'].head(3).tolist()})")
    lines = lines.assign(product_id=lines["product_id"].astype(str)).sort_values(["order_ts", "order_id"], kind="stable")
    grouped = lines.groupby("order_id", sort=False)
    return grouped["product_id"].agg(lambda products: sorted(set(products))).rename("products")
