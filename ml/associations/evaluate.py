"""Basket completion: leave one product out of each test basket and ask for the ``k`` products most likely to go
with the rest; the hit rate is the share of baskets whose held-out product is among them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Completer = Callable[[list[str], int], list[str]]
"""(the basket without its held-out product, k) -> k products to offer."""


def completion_hit_rate(test: pd.Series, completers: dict[str, Completer], k: int = 3, seed: int = 0) -> dict[str, float]:
    """For every test basket of two or more products, one product held out at random (the same one for every
    completer); the share of those baskets each completer's top ``k`` recovers."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(completers, 0)
    scored = 0
    for basket in test:
        if len(basket) < 2:
            continue
        held = basket[int(rng.integers(len(basket)))]
        rest = [p for p in basket if p != held]
        scored += 1
        for name, complete in completers.items():
            hits[name] += held in complete(rest, k)
    if scored == 0:
        raise ValueError("no test basket has two products: nothing to complete")
    return {name: count / scored for name, count in hits.items()} | {"baskets": float(scored)}
