"""The checkout's stage log (benchmarks only): rows from the loop and the writer reach the file as JSON lines."""

from __future__ import annotations

import asyncio
import json

from shopfloor.orders import StageLog


def test_rows_from_the_loop_and_the_writer_and_the_loop_lag_are_written_as_json_lines(tmp_path):
    path = tmp_path / "stages.jsonl"
    log = StageLog(str(path))

    async def scenario():
        log.checkout([1.0, 0.1, 0.0, 5.0, 20.0, 6.0, 31.1])
        log.batch([1.0, 4, 2, 1.5, 3.0, 8.0, 2.0])
        for _ in range(400):  # the lag probe, started by the first checkout row, takes its first sample (a loaded
            await asyncio.sleep(0.005)  # machine may need longer than a fixed sleep)
            if log.lags:
                break
        log.flush()

    asyncio.run(scenario())
    kinds = [next(iter(json.loads(line))) for line in path.read_text().splitlines()]
    assert kinds.count("c") == 1 and kinds.count("b") == 1 and kinds.count("l") >= 1
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"c": [1.0, 0.1, 0.0, 5.0, 20.0, 6.0, 31.1]}
    before = path.read_text().splitlines()
    log.flush()  # nothing written twice (the lag probe may have taken one more sample while the loop shut down)
    after = path.read_text().splitlines()
    assert after[:len(before)] == before and len(after) <= len(before) + 1
    assert all(next(iter(json.loads(line))) == "l" for line in after[len(before):])
