"""Logical dates (``ds``): parsing kept apart from the lake so light modules can use it."""

from __future__ import annotations

import datetime as dt

from ml.errors import EcomError


def as_date(ds: str | dt.date) -> dt.date:
    """Parse a logical date ``YYYY-MM-DD`` (or pass a date through)."""
    if isinstance(ds, dt.datetime):
        return ds.date()
    if isinstance(ds, dt.date):
        return ds
    try:
        return dt.date.fromisoformat(str(ds)[:10])
    except ValueError:
        raise EcomError(f"logical date {ds!r} is not of the form YYYY-MM-DD") from None
