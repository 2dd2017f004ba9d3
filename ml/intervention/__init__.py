"""Proactive interventions: customer features (data) -> propensity and uplift learners (model) -> Qini and
calibration (evaluate) -> the budget MILP (optimize) -> training and the gate (train) -> the day's actions (plan)."""
