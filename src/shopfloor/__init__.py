"""shopfloor: a smart-factory buy path, promise engine, forecasting brain and control tower for online stores."""

__version__ = "0.1.0"
