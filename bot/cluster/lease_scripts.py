"""The Lua scripts of `bot.cluster.leases`, per conversation:

- A turn takes a ticket: a number from INCR, queued in a sorted set, so turns are served
  in the order they reached Redis, whichever replica received them.
- A turn runs when its ticket is first in the queue and the lease is free: one script sets
  the lease (``SET token NX PX ttl``) and removes the ticket. The uncontended case costs
  one round trip to enter and one to release (compare-and-delete).
- Every ticket has a deadline (Redis clock) in a second sorted set; a crashed replica's
  lease and its place in the queue are given up after ttl, and the scripts drop dead
  tickets at the queue's head.

Keys, all under the chat's hash tag (a Cluster keeps them in one slot, as scripts need)::

    <base>{c<chat>}:t<thread>:lease         token of the holder
    <base>{c<chat>}:t<thread>:lease:queue   ticket token -> ticket number
    <base>{c<chat>}:t<thread>:lease:alive   ticket token -> deadline (ms)
    <base>{c<chat>}:t<thread>:lease:seq     ticket counter
"""

__all__ = ["ACQUIRE", "ENTER", "LEAVE", "RELEASE", "RENEW"]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Drops expired tickets at the head of the queue (their replica stopped renewing), then
# takes the lease if our ticket is first and the lease is free.
_TAKE = """
local function take(token, ttl, now)
  while true do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not head or head == token then break end
    local deadline = redis.call('ZSCORE', KEYS[3], head)
    if deadline and tonumber(deadline) > now then return 0 end
    redis.call('ZREM', KEYS[2], head)
    redis.call('ZREM', KEYS[3], head)
  end
  if redis.call('SET', KEYS[1], token, 'NX', 'PX', ttl) then
    redis.call('ZREM', KEYS[2], token)
    redis.call('ZREM', KEYS[3], token)
    return 1
  end
  return 0
end
local function tidy(ttl)
  -- queues of an idle conversation disappear on their own
  redis.call('PEXPIRE', KEYS[2], 2 * ttl)
  redis.call('PEXPIRE', KEYS[3], 2 * ttl)
end
"""

# KEYS: lease, queue, alive, seq. ARGV: token, ttl ms, may take (1/0).
# Returns {ticket number, 1 if the lease was taken}.
ENTER = (
    _NOW
    + _TAKE
    + """
local ttl = tonumber(ARGV[2])
local seq = redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], 86400000)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
tidy(ttl)
if ARGV[3] == '1' then return {seq, take(ARGV[1], ttl, now)} end
return {seq, 0}
"""
)

# KEYS: lease, queue, alive. ARGV: token, ttl ms.
# Returns 1 (taken), 0 (wait), -1 (the ticket is gone: it expired; take a new one).
ACQUIRE = (
    _NOW
    + _TAKE
    + """
local ttl = tonumber(ARGV[2])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return -1 end
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
tidy(ttl)
return take(ARGV[1], ttl, now)
"""
)

# KEYS: lease, queue, alive. ARGV: ttl ms, holder token or '', waiting tickets...
# Returns 0 when a holder token was given and the lease is no longer it, else 1.
RENEW = (
    _NOW
    + _TAKE
    + """
local ttl = tonumber(ARGV[1])
local held = 1
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[1]) == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ttl)
  else
    held = 0
  end
end
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[3], 'XX', now + ttl, ARGV[i])
end
if #ARGV > 2 then tidy(ttl) end
return held
"""
)

# KEYS: lease. ARGV: token. Deletes the lease only if it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, queue, alive. ARGV: token. A turn gives up: its ticket, and the lease if
# the script that queued it took the lease before the turn was cancelled.
LEAVE = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
