"""Rate-limit token buckets in Redis, shared by every server process.

One Lua script refills and takes every bucket of a request at once (all or nothing), on Redis's own clock
(``TIME``), so processes on different machines agree on time and two processes can never spend the same token.
Each bucket is a hash (``t`` tokens, ``ts`` when) that expires once it would have refilled anyway.
"""

from __future__ import annotations

from typing import Sequence

_TAKE = r"""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
local worst, worst_i = -1, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if not tokens then tokens = burst; at = now end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < 1 then
    local wait = (1 - tokens) / rate
    if wait > worst then worst = wait; worst_i = i end
  end
end
if worst_i > 0 then return {worst_i, tostring(worst)} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(levels[i] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {0, '0'}
"""


class RedisBuckets:
    """``client``: a ``redis.asyncio.Redis``; ``prefix`` keeps several deployments (or test runs) apart."""

    def __init__(self, client, prefix: str = "shopfloor:") -> None:
        self.client = client
        self.prefix = prefix
        self._take = client.register_script(_TAKE)

    async def take(self, buckets: Sequence[tuple[str, float, int]]) -> tuple[int, float] | None:
        keys = [self.prefix + key for key, _rate, _burst in buckets]
        args: list = []
        for _key, rate, burst in buckets:
            args += [repr(float(rate)), int(burst)]
        index, wait = await self._take(keys=keys, args=args)
        if int(index) == 0:
            return None
        return int(index) - 1, float(wait.decode() if isinstance(wait, bytes) else wait)

    async def aclose(self) -> None:
        await self.client.aclose()
