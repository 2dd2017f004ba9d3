"""Cold start: products the model has never seen take the mean score of their catalogue siblings (same
category and brand, else same category); customers with no known history get what sells recently in their
region, topped up by what sells everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def sibling_matrix(known_ids: np.ndarray, catalogue: pd.DataFrame) -> tuple[np.ndarray, sp.csr_matrix]:
    """New catalogue products (not in ``known_ids``) and a (known x new) averaging matrix: column j holds
    1/|siblings| on the known products that share product j's category and brand, else its category.
    Products with no sibling at all get an empty column (never recommended by the model)."""
    catalogue = catalogue.drop_duplicates("product_id")
    known = catalogue[catalogue["product_id"].isin(known_ids)]
    new = catalogue[~catalogue["product_id"].isin(known_ids)].reset_index(drop=True)
    position = pd.Series(np.arange(len(known_ids)), index=pd.Index(known_ids))
    rows, cols, vals = [], [], []
    by_pair = known.groupby(["category", "brand"], dropna=False)["product_id"].apply(list).to_dict()
    by_category = known.groupby("category", dropna=False)["product_id"].apply(list).to_dict()
    for j, (category, brand) in enumerate(zip(new["category"], new["brand"], strict=True)):
        siblings = by_pair.get((category, brand)) or by_category.get(category) or []
        rows += list(position[siblings].to_numpy())
        cols += [j] * len(siblings)
        vals += [1.0 / max(len(siblings), 1)] * len(siblings)
    matrix = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(known_ids), len(new)))
    return new["product_id"].to_numpy(dtype=str), matrix


def with_new_items(score, siblings: sp.csr_matrix, unavailable: np.ndarray):
    """Extend a scorer over known items with the sibling-mean scores of new items; known items no longer in
    the catalogue (``unavailable`` mask) and new items without siblings are never recommended."""
    orphans = np.diff(siblings.tocsc().indptr) == 0

    def extended(rows: np.ndarray) -> np.ndarray:
        block = np.array(score(rows), dtype=np.float32)  # own copy: the masking below writes into it
        new = np.asarray((siblings.T @ block.T).T, dtype=np.float32) if siblings.shape[1] else np.empty((len(rows), 0), np.float32)
        block[:, unavailable] = -np.inf
        new[:, orphans] = -np.inf
        return np.hstack([block, new])

    return extended


def popular_by_region(recent: pd.DataFrame, customers: pd.DataFrame, product_ids: np.ndarray, k: int) -> pd.DataFrame:
    """Top-k products per region from recent interactions (``recent`` events), ranked by the region's count
    with the global count breaking ties and filling thin regions. Returns (region, rank, product_id, score);
    region ``None`` is the global list for customers whose region is unknown."""
    allowed = pd.Index(product_ids)
    recent = recent[recent["product_id"].isin(allowed)].merge(customers[["customer_id", "region"]], on="customer_id", how="left")
    global_counts = recent["product_id"].value_counts().reindex(allowed, fill_value=0).astype(float)
    tie_break = global_counts / (global_counts.max() + 1.0)
    lists = []
    for region in [None, *sorted(customers["region"].dropna().unique())]:
        local = recent[recent["region"] == region]["product_id"].value_counts().reindex(allowed, fill_value=0) if region else 0.0
        score = (local + tie_break).sort_values(ascending=False, kind="stable").head(k)
        lists.append(
            pd.DataFrame(
                {"region": region, "rank": np.arange(1, len(score) + 1), "product_id": score.index.to_numpy(dtype=str), "score": score.to_numpy(dtype=float)}
            )
        )
    return pd.concat(lists, ignore_index=True)
