"""Planning: restock plans (and, alongside, capacity plans) plus the simulators that backtest them.

Submodules are imported explicitly (``from shopfloor.planning.restock import build_restock_plan``) so that
importing this package stays cheap; each area adds its own modules next to these.
"""
