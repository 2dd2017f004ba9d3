"""The speed anchor of benchmarks/forecast_scale.py: Nixtla statsforecast AutoETS on the same panel.

Run by forecast_scale.py with another interpreter (statsforecast 2.1 needs pandas < 3; this project pins pandas 3):

    ANCHOR_PYTHON -m pip install statsforecast==2.1.1
    ANCHOR_PYTHON benchmarks/statsforecast_anchor.py panel.npy START_DATE HORIZON OUT.npz

Reads history[series, day] (float64), fits AutoETS(season_length=7) per series on all cores and writes the P10,
P50, P90 forecasts (level 80) and the fit+forecast seconds.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS


def main() -> None:
    path, start, horizon, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    history = np.load(path)
    n_series, n_days = history.shape
    frame = pd.DataFrame(
        {"unique_id": np.repeat(np.arange(n_series), n_days), "ds": np.tile(pd.date_range(start, periods=n_days, freq="D"), n_series), "y": history.ravel()}
    )
    t0 = time.perf_counter()
    model = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=os.cpu_count() or 1)
    fc = model.forecast(df=frame, h=horizon, level=[80])
    seconds = time.perf_counter() - t0
    fc = fc.sort_values(["unique_id", "ds"])
    shape = (n_series, horizon)
    values = np.stack([fc[c].to_numpy().reshape(shape) for c in ("AutoETS-lo-80", "AutoETS", "AutoETS-hi-80")])
    np.savez(out, values=np.clip(values, 0, None), seconds=seconds)


if __name__ == "__main__":
    main()
