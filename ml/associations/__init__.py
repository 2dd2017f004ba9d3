"""Frequently bought together: association rules mined from the order baskets."""
