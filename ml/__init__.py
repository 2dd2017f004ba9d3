"""E-commerce ML platform: all domain logic, importable and testable without Airflow."""

__version__ = "0.1.0"
