"""The platform's exception hierarchy: every message says what was wrong, where, and what to do."""

from __future__ import annotations


class EcomError(Exception):
    """Base class of every error raised on purpose by the platform."""


class ConfigError(EcomError):
    """A setting or parameter is missing or has a value the platform cannot use."""


class ContractError(EcomError):
    """A frame does not match the data contract (unknown table, missing columns, uncastable values)."""


class DataValidationError(EcomError):
    """A raw batch failed the validation gate; it has been quarantined and nothing was published."""

    def __init__(self, message: str, report_path: str | None = None, failures: list | None = None):
        super().__init__(message)
        self.report_path = report_path
        self.failures = failures or []


class SourceError(EcomError):
    """A data source (generator, adapter, file drop) could not produce the requested batch."""


class RegistryError(EcomError):
    """A model registry operation could not be carried out (missing model, alias, or metric)."""


class PlanError(EcomError):
    """An optimisation could not produce a usable plan (infeasible, or no solution within the time limit);
    the message carries the diagnosis: which constraint family binds, and for which items."""

    def __init__(self, message: str, status: str, diagnosis: dict | None = None):
        super().__init__(message)
        self.status = status
        self.diagnosis = diagnosis or {}
