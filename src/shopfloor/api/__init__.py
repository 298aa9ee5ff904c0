"""HTTP API (FastAPI). Public entry point: ``create_app``."""
