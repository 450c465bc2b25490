"""Thin hydra apps behind the `hilr` verbs."""
