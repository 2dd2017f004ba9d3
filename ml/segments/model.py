"""Behavioural clusters: a Gaussian mixture on the standardised :data:`~ml.segments.data.CLUSTER_FEATURES`, with
k chosen by split-half stability, warm-started from yesterday's centroids and matched to them (Hungarian
assignment), so segment 3 keeps meaning the same kind of customer; plain names from each segment's profile."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from ml.errors import EcomError
from ml.segments.data import CLUSTER_FEATURES

log = logging.getLogger(__name__)

REG_COVAR = 0.02
"""Added to each covariance's diagonal (standardised units): a component cannot collapse onto the point masses
that counts leave (one order, one category)."""
STABILITY_BAND = 0.05
"""Yesterday's k stays a candidate down to this much below ``min_stability``: a k measured at 0.91 one day and
0.88 the next has not stopped describing the customers."""
STABILITY_SAMPLE = 20_000
"""Customers the stability refits draw from: the choice of k needs the shape of the data, not all of a large shop."""


@dataclass(frozen=True)
class ClusterConfig:
    k_min: int = 2
    k_max: int = 8
    min_stability: float = 0.95
    stability_fits: int = 4
    keep_k_margin: float = 0.01
    seed: int = 42


@dataclass(frozen=True)
class Clustering:
    """Each customer's segment, the segments' components (weight, mean and covariance in raw feature units, by
    segment: what tomorrow starts from), the chosen k, and the
    stability and BIC of every k considered."""

    segment: pd.Series  # customer_id -> segment
    centroids: pd.DataFrame  # index segment, columns CLUSTER_FEATURES
    k: int
    stability: dict[int, float]
    bic: dict[int, float]
    warm_started: bool


def _mixture(k: int, seed: int) -> GaussianMixture:
    return GaussianMixture(k, covariance_type="full", reg_covar=REG_COVAR, n_init=3, random_state=seed)


COVARIANCE = [f"cov_{i}_{j}" for i in range(len(CLUSTER_FEATURES)) for j in range(len(CLUSTER_FEATURES))]
"""Columns of a component's covariance (raw feature units, row-major) in the centroids table."""


def _warm(previous: pd.DataFrame, scaler: StandardScaler, seed: int) -> GaussianMixture:
    """A mixture that starts from yesterday's components (weights, means and covariances re-expressed in today's
    standardised units): EM on nearly the same customers then stays at yesterday's solution instead of finding
    another as good."""
    scale = scaler.scale_
    covariances = previous[COVARIANCE].to_numpy().reshape(len(previous), len(scale), len(scale)) / np.outer(scale, scale)
    return GaussianMixture(
        len(previous),
        covariance_type="full",
        reg_covar=REG_COVAR,
        weights_init=previous["weight"].to_numpy() / previous["weight"].sum(),
        means_init=scaler.transform(previous[list(CLUSTER_FEATURES)].to_numpy()),
        precisions_init=np.linalg.inv(covariances),
        random_state=seed,
    )


def stability(z: np.ndarray, k: int, fits: int, seed: int) -> float:
    """Mean adjusted Rand index between mixtures fitted on two random halves, both labelling every customer: a k
    that describes real structure is found again from half the data (Lange et al., 2004)."""
    rng = np.random.default_rng([seed, k])
    sample = z if len(z) <= STABILITY_SAMPLE else z[rng.choice(len(z), STABILITY_SAMPLE, replace=False)]
    scores = []
    for fit in range(fits):
        order = rng.permutation(len(sample))
        halves = order[: len(order) // 2], order[len(order) // 2 :]
        labels = [_mixture(k, seed + 2 * fit + h).fit(sample[half]).predict(sample) for h, half in enumerate(halves)]
        scores.append(adjusted_rand_score(*labels))
    return float(np.mean(scores))


def choose_k(z: np.ndarray, config: ClusterConfig, previous_k: int | None) -> tuple[int, dict[int, float], dict[int, float]]:
    """The best-fitting k (lowest BIC) among those a refit on half the customers reproduces (stability at least
    ``min_stability``; the most stable k when none is). BIC alone keeps adding components to describe skewed
    features, and stability alone favours the coarsest split; together they keep the finest reproducible one.
    Yesterday's k stays while it is nearly reproducible (:data:`STABILITY_BAND`) and its BIC is within
    ``keep_k_margin`` (relative) of the best, so the number of segments does not flicker between close scores."""
    top = min(config.k_max, len(z) // 10)
    if top < config.k_min:
        raise EcomError(f"customer_segments: {len(z)} active customers are too few for {config.k_min} segments (10 customers per segment at least)")
    ks = range(config.k_min, top + 1)
    stable = {k: stability(z, k, config.stability_fits, config.seed) for k in ks}
    bic = {k: float(_mixture(k, config.seed).fit(z).bic(z)) for k in ks}
    candidates = [k for k in ks if stable[k] >= config.min_stability] or [max(ks, key=lambda k: (stable[k], -k))]
    best = min(candidates, key=lambda k: bic[k])
    if previous_k is not None and stable.get(previous_k, 0.0) >= config.min_stability - STABILITY_BAND:
        if bic[previous_k] - bic[best] <= config.keep_k_margin * abs(bic[best]):
            return previous_k, stable, bic
    return best, stable, bic


def match(today: np.ndarray, previous: pd.DataFrame | None) -> list[int]:
    """Segment numbers for today's components: the previous segment whose centroid is nearest under a one-to-one
    (Hungarian) assignment, and new numbers beyond the previous ones for components left over."""
    if previous is None or previous.empty:
        return list(range(len(today)))
    cost = ((today[:, None, :] - previous.to_numpy()[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    numbers = dict(zip(rows.tolist(), previous.index[cols].tolist(), strict=True))
    spare = iter(range(int(previous.index.max()) + 1, int(previous.index.max()) + 1 + len(today)))
    return [numbers[c] if c in numbers else next(spare) for c in range(len(today))]


def cluster(features: pd.DataFrame, config: ClusterConfig, previous: pd.DataFrame | None = None) -> Clustering:
    """Segment the customers of ``features`` (customer_id and :data:`CLUSTER_FEATURES`); ``previous``: yesterday's
    centroids by segment, to warm-start from and to keep the numbers of."""
    raw = features[list(CLUSTER_FEATURES)].to_numpy(dtype=float)
    if not np.isfinite(raw).all():
        bad = features.loc[~np.isfinite(raw).all(axis=1), ["customer_id", *CLUSTER_FEATURES]].head(3)
        raise EcomError(f"customer_segments: features that are not finite, e.g. {bad.to_dict('records')}")
    scaler = StandardScaler().fit(raw)
    z = scaler.transform(raw)
    if previous is not None and previous.empty:
        previous = None
    k, scores, bic = choose_k(z, config, None if previous is None else len(previous))
    warm = previous is not None and k == len(previous)
    mixture = (_warm(previous, scaler, config.seed) if previous is not None and warm else _mixture(k, config.seed)).fit(z)
    component = mixture.predict(z)
    means = scaler.inverse_transform(mixture.means_)
    old = None if previous is None else pd.DataFrame(scaler.transform(previous[list(CLUSTER_FEATURES)].to_numpy()), index=previous.index)
    numbers = np.asarray(match(mixture.means_, old))
    segment = pd.Series(numbers[component], index=features["customer_id"].to_numpy(), name="segment")
    present = np.unique(component)  # a component that labels nobody leaves no segment
    covariances = mixture.covariances_ * np.outer(scaler.scale_, scaler.scale_)
    centroids = pd.DataFrame(means[present], index=pd.Index(numbers[present], name="segment"), columns=list(CLUSTER_FEATURES))
    centroids["weight"] = mixture.weights_[present]
    centroids[COVARIANCE] = covariances[present].reshape(len(present), -1)
    centroids = centroids.sort_index()
    log.info(
        "segments: k=%d (stability %s, BIC %s)%s",
        k,
        {j: round(s, 3) for j, s in scores.items()},
        {j: round(b) for j, b in bic.items()},
        ", warm-started from yesterday's centroids" if warm else "",
    )
    return Clustering(segment, centroids, k, scores, bic, warm)


def names(stats: pd.DataFrame) -> dict[int, str]:
    """A plain name per segment from its profile against the shop (``stats`` by segment: customers, spend,
    order_rate, churn_risk and the :data:`CLUSTER_FEATURES` means): how active, how valuable, and the style that
    stands out. A name two segments would share gets the segment number."""
    weight = stats["customers"] / stats["customers"].sum()
    shop = (stats.drop(columns="customers").mul(weight, axis=0)).sum()
    out = {}
    for segment, row in stats.iterrows():
        if row["churn_risk"] >= 0.9:
            activity = "lapsing"
        elif row["order_rate"] >= 1.5 * shop["order_rate"]:
            activity = "frequent"
        elif row["order_rate"] <= 0.5 * shop["order_rate"]:
            activity = "occasional"
        else:
            activity = "regular"
        value = "high-value" if row["spend"] >= 1.5 * shop["spend"] else "low-value" if row["spend"] <= 0.5 * shop["spend"] else "mid-value"
        styles = (
            ("deal-seeking", row["promo_line_share"] >= 1.25 * shop["promo_line_share"]),
            ("browsing", row["log_views_per_session"] >= shop["log_views_per_session"] + 0.3),
            ("broad-taste", row["category_entropy"] >= shop["category_entropy"] + 0.3),
            ("single-category", row["category_entropy"] <= shop["category_entropy"] - 0.3),
        )
        style = next((word for word, holds in styles if holds), "")
        out[int(segment)] = f"{activity} {value} {style}".strip()
    counts = pd.Series(out).value_counts()
    return {s: (f"{n} #{s}" if counts[n] > 1 else n) for s, n in out.items()}
