"""Recommendations: data (interactions, splits) -> models (popularity, EASE, SASRec) -> evaluate -> score."""
