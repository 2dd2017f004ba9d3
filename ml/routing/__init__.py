"""Delivery routing: road graph (graph) -> travel-time matrix (matrix) -> CVRPTW solve (model) -> checks and
costs (evaluate) -> the day's routes and maps (plan, maps)."""
