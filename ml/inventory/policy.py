"""Textbook inventory theory the plan builds on: newsvendor, EOQ, safety stock from forecast quantiles, and
the normal loss function behind expected fill rates (Silver, Pyke & Peterson; Nahmias)."""

from __future__ import annotations

import numpy as np
from scipy import stats

Z_P90 = stats.norm.ppf(0.9)  # a P10-P90 interval of a normal spans 2 * Z_P90 standard deviations


def newsvendor(holding: float, shortage: float, mean: float, sd: float) -> tuple[float, float]:
    """Optimal order-up-to level for normal demand, and its expected overage + underage cost."""
    z = stats.norm.ppf(shortage / (holding + shortage))
    return mean + z * sd, (holding + shortage) * sd * float(stats.norm.pdf(z))


def eoq(annual_demand: float, order_cost: float, holding_per_unit_year: float) -> tuple[float, float]:
    """Economic order quantity and its annual ordering + holding cost."""
    q = np.sqrt(2 * annual_demand * order_cost / holding_per_unit_year)
    return float(q), float(np.sqrt(2 * annual_demand * order_cost * holding_per_unit_year))


def daily_sd(p10: np.ndarray, p90: np.ndarray) -> np.ndarray:
    """Demand standard deviation implied by a P10-P90 interval, read as a normal's."""
    return np.clip(np.asarray(p90, float) - np.asarray(p10, float), 0.0, None) / (2 * Z_P90)


def safety_stock(sd: np.ndarray, lead_time: np.ndarray, service_level: float) -> np.ndarray:
    """z * sigma over the protection period (lead time + one daily review), days independent.

    ``sd[sku, day]`` over the horizon; days past the horizon repeat its last day."""
    n_sku, horizon = sd.shape
    z = stats.norm.ppf(service_level)
    period = np.minimum(np.asarray(lead_time, int) + 1, horizon)
    cumulative = np.cumsum(sd**2, axis=1)
    variance = cumulative[np.arange(n_sku), period - 1] + np.maximum(np.asarray(lead_time, int) + 1 - horizon, 0) * sd[:, -1] ** 2
    return z * np.sqrt(variance)


def normal_loss(z: np.ndarray | float) -> np.ndarray:
    """Standard normal loss G(z) = E[(Z - z)+]: expected units short per sd of protection-period demand."""
    return stats.norm.pdf(z) - z * (1 - stats.norm.cdf(z))
