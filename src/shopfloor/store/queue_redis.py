"""The waiting room's queue in Redis, shared by every server process (and region) that talks to it.

Each operation is one Lua script, so Redis runs it atomically: two processes can never admit past the room, give
one place to two purchases, or number two arrivals alike. The admission arithmetic mirrors
:func:`shopfloor.waitroom.admit_upto`; the same contract tests run against this store and the in-process one.

Keys per sale (``<prefix>wr:{<sale>}:...``, one hash slot per sale): ``meta`` (hash: pre_seq, post_seq, opened,
pre_count, seed, upto), ``live`` (sorted set: admitted ranks still checking out, scored by when the place lapses),
``claims`` (hash: rank -> the Idempotency-Key that used the place).
"""

from __future__ import annotations

from ..waitroom import ADMITTED, AFTER_OPEN, CLAIMED, EXPIRED, PRE_OPEN, UNUSED, WAITING, Entry, Opening, Place

_COMMON = r"""
local meta, live, claims = KEYS[1], KEYS[2], KEYS[3]
local function open_if_due(now, opens_at, seed)
  if redis.call('HEXISTS', meta, 'opened') == 1 then return true end
  if now < opens_at then return false end
  local pre = tonumber(redis.call('HGET', meta, 'pre_seq') or '0')
  redis.call('HSET', meta, 'opened', '1', 'pre_count', pre, 'seed', seed)
  return true
end
local function advance(now, room, ttl)
  redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
  local upto = tonumber(redis.call('HGET', meta, 'upto') or '0')
  local arrivals = tonumber(redis.call('HGET', meta, 'pre_count') or '0')
                   + tonumber(redis.call('HGET', meta, 'post_seq') or '0')
  local free = room - redis.call('ZCARD', live)
  if free <= 0 or upto >= arrivals then return upto end
  local new = math.min(arrivals, upto + free)
  local batch = {}
  for r = upto, new - 1 do
    batch[#batch + 1] = now + ttl
    batch[#batch + 1] = r
    if #batch >= 2000 then redis.call('ZADD', live, unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', live, unpack(batch)) end
  redis.call('HSET', meta, 'upto', new)
  return new
end
"""

_ENTER = _COMMON + r"""
local now, opens_at, room, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not open_if_due(now, opens_at, ARGV[5]) then
  return {'p', redis.call('HINCRBY', meta, 'pre_seq', 1) - 1, -1, '0', 0, 0}
end
local number = redis.call('HINCRBY', meta, 'post_seq', 1) - 1
local pre = tonumber(redis.call('HGET', meta, 'pre_count'))
local upto = advance(now, room, ttl)
local admitted = 0
if pre + number < upto then
  redis.call('HSET', claims, pre + number, ARGV[6])
  admitted = 1
end
return {'q', number, pre, redis.call('HGET', meta, 'seed'), upto, admitted}
"""

_OPENING = _COMMON + r"""
if open_if_due(tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]) then
  return {1, tonumber(redis.call('HGET', meta, 'pre_count')), redis.call('HGET', meta, 'seed')}
end
return {0, tonumber(redis.call('HGET', meta, 'pre_seq') or '0'), '0'}
"""

_POLL = _COMMON + r"""
local rank, now, room, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local claim = ARGV[5]
if redis.call('HEXISTS', meta, 'opened') == 0 then return {'waiting', 0} end
local upto = advance(now, room, ttl)
if rank >= upto then return {'waiting', upto} end
local holder = redis.call('HGET', claims, rank)
if redis.call('ZSCORE', live, rank) then
  if claim == '' or holder == claim then return {'admitted', upto} end
  if not holder then
    if ARGV[6] == '0' then return {'unused', upto} end
    redis.call('HSET', claims, rank, claim)
    return {'admitted', upto}
  end
  return {'claimed', upto}
end
if holder then
  if claim == '' or holder == claim then return {'admitted', upto} end
  return {'claimed', upto}
end
return {'expired', upto}
"""

_FINISH = r"""
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '0' then redis.call('HDEL', KEYS[3], ARGV[1]) end
return 1
"""

_STATS = r"""
local meta, live = KEYS[1], KEYS[2]
local pre
if redis.call('HEXISTS', meta, 'opened') == 1 then pre = tonumber(redis.call('HGET', meta, 'pre_count'))
else pre = tonumber(redis.call('HGET', meta, 'pre_seq') or '0') end
return {pre + tonumber(redis.call('HGET', meta, 'post_seq') or '0'),
        tonumber(redis.call('HGET', meta, 'upto') or '0'),
        redis.call('ZCOUNT', live, '(' .. ARGV[1], '+inf')}
"""

_STATES = {"admitted": ADMITTED, "waiting": WAITING, "claimed": CLAIMED, "expired": EXPIRED, "unused": UNUSED}


def _s(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisQueueStore:
    """``client``: a ``redis.asyncio.Redis``. ``prefix`` keeps several stores (or test runs) apart on one Redis."""

    def __init__(self, client, prefix: str = "shopfloor:") -> None:
        self.client = client
        self.prefix = prefix
        self._enter = client.register_script(_ENTER)
        self._opening = client.register_script(_OPENING)
        self._poll = client.register_script(_POLL)
        self._finish = client.register_script(_FINISH)
        self._stats = client.register_script(_STATS)

    def _keys(self, sale: str) -> list[str]:
        base = f"{self.prefix}wr:{{{sale}}}:"
        return [base + "meta", base + "live", base + "claims"]

    async def enter(self, sale: str, now_ms: int, opens_at_ms: int, room: int, admit_ttl_ms: int, seed: int,
                    claim: str) -> Entry:
        phase, number, pre, seed_out, upto, admitted = await self._enter(
            keys=self._keys(sale), args=[now_ms, opens_at_ms, room, admit_ttl_ms, seed, claim])
        if _s(phase) == "p":
            return Entry(PRE_OPEN, int(number), None, 0, False)
        return Entry(AFTER_OPEN, int(number), Opening(int(pre), int(_s(seed_out))), int(upto), bool(admitted))

    async def opening(self, sale: str, now_ms: int, opens_at_ms: int, seed: int) -> tuple[Opening | None, int]:
        opened, count, seed_out = await self._opening(keys=self._keys(sale), args=[now_ms, opens_at_ms, seed])
        if int(opened):
            return Opening(int(count), int(_s(seed_out))), int(count)
        return None, int(count)

    async def poll(self, sale: str, rank: int, now_ms: int, room: int, admit_ttl_ms: int,
                   claim: str | None, take: bool = True) -> Place:
        state, upto = await self._poll(keys=self._keys(sale),
                                       args=[rank, now_ms, room, admit_ttl_ms, claim or "", "1" if take else "0"])
        return Place(_STATES[_s(state)], int(upto))

    async def finish(self, sale: str, rank: int, succeeded: bool) -> None:
        await self._finish(keys=self._keys(sale), args=[rank, "1" if succeeded else "0"])

    async def stats(self, sale: str, now_ms: int) -> dict[str, int]:
        arrivals, admitted, live = await self._stats(keys=self._keys(sale)[:2], args=[now_ms])
        return {"arrivals": int(arrivals), "admitted": int(admitted), "in_flight": int(live)}

    async def reset(self, sale: str) -> None:
        await self.client.delete(*self._keys(sale))

    async def aclose(self) -> None:
        await self.client.aclose()
