"""Per-minute rollups past their retention are deleted a day of the oldest at a time, and the plan's history is
never cut short by a retention below what it reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from shopfloor.config import Settings
from shopfloor.store.capacity import purge_request_rollups, record_request_batch
from shopfloor.store.capacity_tables import request_minutes
from shopfloor.store.engine import make_engine

NOW = datetime(2026, 6, 1, 10, 30, tzinfo=timezone.utc)


def test_request_rollups_older_than_the_retention_go_a_day_at_a_time(db_url):
    engine = make_engine(db_url)
    try:
        record_request_batch(engine, [{"minute": NOW - timedelta(days=d, minutes=m), "route": r, "count": 3}
                                      for d in (100, 99, 5) for m in (0, 1) for r in ("/v1/checkouts", "/v1/promise")])
        cutoff = NOW - timedelta(days=90)
        assert purge_request_rollups(engine, cutoff) == 4  # day 100's two minutes on two routes
        assert purge_request_rollups(engine, cutoff) == 4  # then day 99's
        assert purge_request_rollups(engine, cutoff) == 0
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(request_minutes)).scalar() == 4
            assert conn.execute(select(func.min(request_minutes.c.minute))).scalar() == \
                NOW - timedelta(days=5, minutes=1)
    finally:
        engine.dispose()


def test_a_retention_shorter_than_the_plans_history_is_refused_naming_both_settings():
    with pytest.raises(ValidationError, match="capacity_history_days"):
        Settings(capacity_history_days=14, capacity_rollup_retention_days=7)
    assert Settings(capacity_history_days=14, capacity_rollup_retention_days=0).capacity_rollup_retention_days == 0
    assert Settings(capacity_history_days=14, capacity_rollup_retention_days=14).capacity_rollup_retention_days == 14
