"""Simulated processors and rate service served as their own HTTP process (``shopfloor simulate serve``)."""
