"""Association rules between two products, mined with FP-growth (mlxtend): support, confidence and lift of
"bought X, also bought Y", the pairs that pass the thresholds, strongest first per product.

Only one-to-one rules are kept (``max_len=2``): the output table pairs a product with another, and a basket's
completion combines the rules of each product in it with popularity (``complete``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.errors import EcomError

RULE_COLUMNS = ("product_id", "associated_product_id", "support", "confidence", "lift")


@dataclass(frozen=True)
class RuleConfig:
    min_support: float = 0.002
    min_confidence: float = 0.05
    min_lift: float = 1.0
    max_per_product: int = 20


def mine(baskets: pd.Series, config: RuleConfig) -> pd.DataFrame:
    """Rules ``RULE_COLUMNS`` from the baskets (lists of products), at most ``max_per_product`` per product,
    highest confidence first (then lift)."""
    from mlxtend.frequent_patterns import association_rules, fpgrowth
    from mlxtend.preprocessing import TransactionEncoder

    if len(baskets) == 0:
        raise EcomError("no baskets to mine association rules from")
    encoder = TransactionEncoder()
    onehot = encoder.fit(list(baskets)).transform(list(baskets), sparse=True)
    frame = pd.DataFrame.sparse.from_spmatrix(onehot, columns=encoder.columns_)
    frequent = fpgrowth(frame, min_support=config.min_support, use_colnames=True, max_len=2)
    pairs = frequent[frequent["itemsets"].map(len) == 2]
    if pairs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c.endswith("id") else float) for c in RULE_COLUMNS})
    rules = association_rules(frequent, metric="confidence", min_threshold=config.min_confidence)
    rules = rules[rules["lift"] >= config.min_lift]
    out = pd.DataFrame(
        {
            "product_id": rules["antecedents"].map(lambda s: next(iter(s))).astype(str).to_numpy(),
            "associated_product_id": rules["consequents"].map(lambda s: next(iter(s))).astype(str).to_numpy(),
            "support": rules["support"].to_numpy(dtype=float),
            "confidence": rules["confidence"].to_numpy(dtype=float),
            "lift": rules["lift"].to_numpy(dtype=float),
        }
    )
    out = out.sort_values(["product_id", "confidence", "lift", "associated_product_id"], ascending=[True, False, False, True], kind="stable")
    return out.groupby("product_id", sort=False).head(config.max_per_product).reset_index(drop=True)


def complete(basket: list[str], rules: pd.DataFrame, k: int, base_rates: pd.Series) -> list[str]:
    """The ``k`` products most likely to join the basket. A product's chance is the highest confidence of a rule
    from a product in the basket to it, and its share of all baskets (``base_rates``, from :func:`popularity`)
    where no rule speaks for it: a rule the thresholds kept is evidence, popularity is the prior. Never a product
    already in the basket."""
    have = set(basket)
    mine = rules[rules["product_id"].isin(have) & ~rules["associated_product_id"].isin(have)]
    chance = base_rates[~base_rates.index.isin(have)].copy()
    if len(mine):
        chance = mine.groupby("associated_product_id")["confidence"].max().combine_first(chance)
    return [str(p) for p in chance.sort_values(ascending=False, kind="stable").index[:k]]


def popularity(baskets: pd.Series) -> pd.Series:
    """Each product's share of the baskets that hold it, highest first."""
    counts = pd.Series(np.concatenate([np.asarray(b, dtype=object) for b in baskets])).value_counts(sort=True)
    return (counts / len(baskets)).rename("share")
