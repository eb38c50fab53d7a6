"""Rollout workers (plain Python) and the one Ray-aware pool."""
