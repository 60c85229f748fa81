"""The Lua scripts of `RedisJobStore`: every change of a job is one script.

Key layout, every key under the store's prefix ``P`` = ``{prefix}:`` (the
braces make the prefix a Redis Cluster hash tag, so a store lives in one slot):

* ``P seq``: the last ``seq`` handed out (a counter);
* ``P job:<id>``: a hash per job, one field per `JobRecord` field that is not
  None; times are integer microseconds since the epoch (exact in a double, so
  also as sorted-set scores); ``cancel_requested`` is present only when true;
* ``P all`` and ``P state:<state>``: sorted sets of ids by ``seq`` (listing,
  counting);
* ``P q:<priority>:<handler>``: the PENDING jobs of one handler and priority,
  by ``run_at`` (delayed jobs wait here too, in due-time order); members are
  ``seqkey`` = ``seq`` zero-padded to 16 digits followed by the id, so that
  ties of ``run_at`` go by ``seq``;
* ``P handlers`` and ``P prios:<handler>``: which queues exist;
* ``P running``: RUNNING ids by ``lease_until``;
* ``P finished``: finished jobs' seqkeys by ``finished_at`` (``-inf`` when
  unknown);
* ``P sched`` and ``P sched_next``: schedules (JSON, without ``next_run_at``)
  and their ``next_run_at`` (microseconds, compared as text by the CAS);
* ``P wake``: the channel that wakes idle workers (`RedisJobStore.watch`);
* ``P changes``: the channel of job changes (`RedisJobStore.watch_changes`):
  each script that inserts jobs or changes their state (or cancel request)
  publishes one message, ``<writer> <JSON array of the ids>``, where the
  writer is the calling store object's token.

Every script takes ``KEYS[1]`` = ``P seq`` (it routes the call to the store's
slot on a cluster) and ``ARGV[1]`` = ``P`` and the writer's token (hex),
separated by a newline; the other keys it touches are in the same slot.
Scripts never read the clock: the caller passes ``now``.
"""

from __future__ import annotations

from typing import Final

#: How every script reads ``ARGV[1]``: the prefix ``P`` and the writer ``W``.
_ARGS: Final = "local P, W = string.match(ARGV[1], '^(.*)\\n(%x*)$')\n"

# Helpers shared by the scripts that change jobs. ``leave`` takes a job out of
# its state's indexes and ``enter`` puts it into them, reading the job's hash.
_COMMON: Final = (
    _ARGS
    + """
local woken = 0
local changed = {}
local function seqkey(seq, id)
  local s = tostring(seq)
  return string.rep('0', 16 - #s) .. s .. id
end
local function jkey(id) return P .. 'job:' .. id end
local function leave(id, key, state, seq)
  redis.call('ZREM', P .. 'state:' .. tostring(state), id)
  if state == 'pending' then
    local f = redis.call('HMGET', key, 'priority', 'handler')
    local prio, h = tostring(f[1]), tostring(f[2])
    local q = P .. 'q:' .. prio .. ':' .. h
    redis.call('ZREM', q, seqkey(seq, id))
    if redis.call('EXISTS', q) == 0 then
      redis.call('SREM', P .. 'prios:' .. h, prio)
      if redis.call('EXISTS', P .. 'prios:' .. h) == 0 then
        redis.call('SREM', P .. 'handlers', h)
      end
    end
  elseif state == 'running' then
    redis.call('ZREM', P .. 'running', id)
  else
    redis.call('ZREM', P .. 'finished', seqkey(seq, id))
  end
end
local function enter(id, key, state, seq)
  changed[#changed + 1] = id
  redis.call('ZADD', P .. 'state:' .. state, seq, id)
  if state == 'pending' then
    local f = redis.call('HMGET', key, 'priority', 'handler', 'run_at')
    local prio, h = tostring(f[1]), tostring(f[2])
    redis.call('ZADD', P .. 'q:' .. prio .. ':' .. h, f[3] or '0', seqkey(seq, id))
    redis.call('SADD', P .. 'prios:' .. h, prio)
    redis.call('SADD', P .. 'handlers', h)
    woken = woken + 1
  elseif state == 'running' then
    local lease = redis.call('HGET', key, 'lease_until') or 'inf'
    redis.call('ZADD', P .. 'running', lease, id)
  else
    local finished = redis.call('HGET', key, 'finished_at') or '-inf'
    redis.call('ZADD', P .. 'finished', finished, seqkey(seq, id))
  end
end
-- Move a job from its state to ``state``: ``sets`` (field, value pairs) and
-- ``dels`` (fields) change its hash in between.
local function move(id, key, old, seq, state, sets, dels)
  leave(id, key, old, seq)
  sets[#sets + 1] = 'state'
  sets[#sets + 1] = state
  redis.call('HSET', key, unpack(sets))
  if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
  enter(id, key, state, seq)
end
-- Wake the watchers (`RedisJobStore.watch`) and tell the change watchers
-- (`RedisJobStore.watch_changes`): one message each per script at most.
local function wake()
  if woken > 0 then redis.call('PUBLISH', P .. 'wake', '1') end
  if #changed > 0 then
    redis.call('PUBLISH', P .. 'changes', W .. ' ' .. cjson.encode(changed))
    changed = {}
  end
end
-- The job ``id`` if ``worker`` holds it: its key and state fields, or nil.
local function held(id, worker)
  local key = jkey(id)
  local f = redis.call('HMGET', key, 'state', 'worker', 'seq', 'cancel_requested',
    'attempts', 'max_attempts')
  if f[1] ~= 'running' or f[2] ~= worker then return nil end
  return key, f
end
-- The three ways a held attempt ends; each returns 1 if the worker held it.
local function finish(id, worker, state, at, result, err)
  local key, f = held(id, worker)
  if not key then return 0 end
  local sets, dels = {'finished_at', at}, {'lease_until'}
  for j, v in ipairs({result, err}) do
    local name = j == 1 and 'result' or 'error'
    if v == '' then dels[#dels + 1] = name
    else sets[#sets + 1] = name; sets[#sets + 1] = string.sub(v, 2) end
  end
  move(id, key, 'running', f[3], state, sets, dels)
  return 1
end
local function requeue(id, worker, run_at, err, now)
  local key, f = held(id, worker)
  if not key then return 0 end
  local sets, dels = {}, {'lease_until'}
  if err == '' then dels[#dels + 1] = 'error'
  else sets = {'error', string.sub(err, 2)} end
  if f[4] then
    sets[#sets + 1] = 'finished_at'; sets[#sets + 1] = now
    move(id, key, 'running', f[3], 'cancelled', sets, dels)
  else
    sets[#sets + 1] = 'run_at'; sets[#sets + 1] = run_at
    move(id, key, 'running', f[3], 'pending', sets, dels)
  end
  return 1
end
local function release(id, worker, now)
  local key, f = held(id, worker)
  if not key then return 0 end
  if f[4] then
    move(id, key, 'running', f[3], 'cancelled', {'finished_at', now}, {'lease_until'})
  else
    local attempts = math.max((tonumber(f[5]) or 1) - 1, 0)
    move(id, key, 'running', f[3], 'pending', {'attempts', attempts}, {'lease_until'})
  end
  return 1
end
-- Take up to ``limit`` due jobs of ``handlers`` (nil: all) for ``worker``.
local function claim(worker, now, lease, limit, handlers)
  local out = {}
  if limit <= 0 then return out end
  if handlers == nil then handlers = redis.call('SMEMBERS', P .. 'handlers') end
  local cands = {}
  for _, h in ipairs(handlers) do
    for _, prio in ipairs(redis.call('SMEMBERS', P .. 'prios:' .. h)) do
      local q = P .. 'q:' .. prio .. ':' .. h
      local items = redis.call('ZRANGEBYSCORE', q, '-inf', now, 'WITHSCORES',
        'LIMIT', 0, limit)
      local p = tonumber(prio) or 0
      for j = 1, #items, 2 do
        cands[#cands + 1] = {-p, tonumber(items[j + 1]), items[j], q}
      end
    end
  end
  table.sort(cands, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for k = 1, math.min(limit, #cands) do
    local c = cands[k]
    local member = c[3]
    local id = string.sub(member, 17)
    local key = jkey(id)
    local seq = tonumber(string.sub(member, 1, 16))
    redis.call('ZREM', c[4], member)
    if redis.call('HGET', key, 'state') == 'pending' then
      leave(id, key, 'pending', seq)
      local attempts = (tonumber(redis.call('HGET', key, 'attempts')) or 0) + 1
      redis.call('HSET', key, 'state', 'running', 'worker', worker,
        'lease_until', lease, 'started_at', now, 'attempts', attempts)
      redis.call('HDEL', key, 'cancel_requested')
      enter(id, key, 'running', seq)
      out[#out + 1] = redis.call('HGETALL', key)
    end
  end
  return out
end
"""
)

#: ARGV: P and W, then per job: id, state, npairs, field/value pairs. Returns per job
#: the new seq (inserted) or the stored job's HGETALL (there already).
INSERT: Final = (
    _COMMON
    + """
local out = {}
local i = 2
while i <= #ARGV do
  local id, state, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = jkey(id)
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = redis.call('HGETALL', key)
  else
    local seq = redis.call('INCR', P .. 'seq')
    local sets = {'seq', seq, 'state', state}
    for j = i + 3, i + 2 + 2 * n do sets[#sets + 1] = ARGV[j] end
    redis.call('HSET', key, unpack(sets))
    redis.call('ZADD', P .. 'all', seq, id)
    enter(id, key, state, seq)
    out[#out + 1] = seq
  end
  i = i + 3 + 2 * n
end
wake()
return out
"""
)

#: ARGV: P and W, worker, now, lease_until, limit, then the handlers (none: all).
#: Returns the claimed jobs' HGETALLs, in claim order.
CLAIM: Final = (
    _COMMON
    + """
local handlers = nil
if #ARGV > 5 then
  handlers = {}
  for i = 6, #ARGV do handlers[#handlers + 1] = ARGV[i] end
end
local out = claim(ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), handlers)
wake()
return out
"""
)

#: ARGV: P and W, worker, now, lease_until, limit, the number of ends, then per end
#: (7 values): id, kind ('f' finished, 'r' retry, 'l' release), state, at,
#: run_at, result and error (each '' = none, else 'v' .. text); then the
#: handlers (none: all). Returns {1/0 per end, the claimed jobs' HGETALLs}.
COMPLETE_AND_CLAIM: Final = (
    _COMMON
    + """
local worker, now, lease, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local ended = {}
for e = 0, n - 1 do
  local i = 7 + 7 * e
  local id, kind, at = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  if kind == 'f' then
    ended[#ended + 1] = finish(id, worker, ARGV[i + 2], at, ARGV[i + 5], ARGV[i + 6])
  elseif kind == 'r' then
    ended[#ended + 1] = requeue(id, worker, ARGV[i + 4], ARGV[i + 6], at)
  else
    ended[#ended + 1] = release(id, worker, at)
  end
end
local handlers = nil
local first = 7 + 7 * n
if #ARGV >= first then
  handlers = {}
  for i = first, #ARGV do handlers[#handlers + 1] = ARGV[i] end
end
local claimed = claim(worker, now, lease, limit, handlers)
wake()
return {ended, claimed}
"""
)

#: ARGV: P and W, then the handlers (none: all). Returns the earliest due time of
#: their PENDING jobs (microseconds, as text), or false.
NEXT_DUE: Final = (
    _ARGS
    + """
local handlers = {}
if #ARGV > 1 then
  for i = 2, #ARGV do handlers[#handlers + 1] = ARGV[i] end
else
  handlers = redis.call('SMEMBERS', P .. 'handlers')
end
local best, best_text = nil, false
for _, h in ipairs(handlers) do
  for _, prio in ipairs(redis.call('SMEMBERS', P .. 'prios:' .. h)) do
    local head = redis.call('ZRANGE', P .. 'q:' .. prio .. ':' .. h, 0, 0, 'WITHSCORES')
    if #head == 2 then
      local t = tonumber(head[2])
      if t and (best == nil or t < best) then best, best_text = t, head[2] end
    end
  end
end
return best_text
"""
)

#: ARGV: P and W, worker, lease_until, then the ids. Returns {held ids, ids of
#: those with a cancel request}.
RENEW: Final = (
    _COMMON
    + """
local worker, lease = ARGV[2], ARGV[3]
local kept, cancel = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key, f = held(id, worker)
  if key then
    redis.call('HSET', key, 'lease_until', lease)
    redis.call('ZADD', P .. 'running', lease, id)
    kept[#kept + 1] = id
    if f[4] then cancel[#cancel + 1] = id end
  end
end
return {kept, cancel}
"""
)

#: ARGV: P and W, id, worker, state, finished_at, result ('' = none, else 'v' ..
#: text), error (likewise). Returns 1 if the worker held the job.
COMPLETE: Final = (
    _COMMON
    + """
local done = finish(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
wake()
return done
"""
)

#: ARGV: P and W, id, worker, run_at, error ('' = none, else 'v' .. text), now.
#: Returns 1 if the worker held the job.
REQUEUE: Final = (
    _COMMON
    + """
local done = requeue(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
wake()
return done
"""
)

#: ARGV: P and W, id, worker, now. Returns 1 if the worker held the job.
RELEASE: Final = (
    _COMMON
    + """
local done = release(ARGV[2], ARGV[3], ARGV[4])
wake()
return done
"""
)

#: ARGV: P and W, now. Returns the HGETALLs of the jobs taken back, by seq.
EXPIRE: Final = (
    _COMMON
    + """
local now = ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', P .. 'running', '-inf', '(' .. now)
local jobs = {}
for _, id in ipairs(ids) do
  local key = jkey(id)
  local f = redis.call('HMGET', key, 'seq', 'cancel_requested', 'attempts',
    'max_attempts')
  jobs[#jobs + 1] = {tonumber(f[1]) or 0, id, key, f}
end
table.sort(jobs, function(a, b) return a[1] < b[1] end)
local out = {}
for _, j in ipairs(jobs) do
  local id, key, f = j[2], j[3], j[4]
  local dels = {'lease_until'}
  if f[2] then
    move(id, key, 'running', f[1], 'cancelled', {'finished_at', now}, dels)
  elseif (tonumber(f[3]) or 0) >= (tonumber(f[4]) or 0) then
    move(id, key, 'running', f[1], 'failed',
      {'finished_at', now, 'error', 'lease expired'}, dels)
  else
    move(id, key, 'running', f[1], 'pending', {'run_at', now}, dels)
  end
  out[#out + 1] = redis.call('HGETALL', key)
end
wake()
return out
"""
)

#: ARGV: P and W, id, now. Returns the job's HGETALL afterwards (empty: no job).
REQUEST_CANCEL: Final = (
    _COMMON
    + """
local id, now = ARGV[2], ARGV[3]
local key = jkey(id)
local f = redis.call('HMGET', key, 'state', 'seq')
if f[1] == 'pending' then
  move(id, key, 'pending', f[2], 'cancelled', {'finished_at', now}, {})
elseif f[1] == 'running' then
  if redis.call('HSETNX', key, 'cancel_requested', '1') == 1 then
    changed[#changed + 1] = id
  end
end
wake()
return redis.call('HGETALL', key)
"""
)

#: ARGV: P and W, id, now. Returns the job's HGETALL afterwards (empty: no job).
RESET: Final = (
    _COMMON
    + """
local id, now = ARGV[2], ARGV[3]
local key = jkey(id)
local f = redis.call('HMGET', key, 'state', 'seq')
if f[1] == 'failed' or f[1] == 'cancelled' then
  move(id, key, f[1], f[2], 'pending', {'attempts', 0, 'run_at', now},
    {'result', 'error', 'started_at', 'finished_at', 'worker', 'lease_until',
     'cancel_requested'})
  wake()
end
return redis.call('HGETALL', key)
"""
)

#: ARGV: P and W, finished_before ('' = none), keep_latest ('' = none), then the
#: states to purge. Returns how many jobs were deleted.
PURGE: Final = (
    _COMMON
    + """
local before, keep = ARGV[2], ARGV[3]
local wanted, all_states = {}, 0
for i = 4, #ARGV do wanted[ARGV[i]] = true; all_states = all_states + 1 end
local fkey = P .. 'finished'
-- Candidates, oldest first: seqkey members of the finished set.
local members
if all_states == 3 and keep == '' and before ~= '' then
  members = redis.call('ZRANGEBYSCORE', fkey, '(-inf', '(' .. before)
  keep = nil
else
  members = redis.call('ZRANGE', fkey, 0, -1, 'WITHSCORES')
end
local doomed = {}
if keep == nil then
  doomed = members
else
  local cands = {}
  for j = 1, #members, 2 do
    local id = string.sub(members[j], 17)
    if all_states == 3 or wanted[redis.call('HGET', jkey(id), 'state')] then
      cands[#cands + 1] = {members[j], members[j + 1]}
    end
  end
  local kept_from = 1
  if keep ~= '' then kept_from = math.max(#cands - tonumber(keep) + 1, 1) end
  for k, c in ipairs(cands) do
    if keep == '' and before == '' then
      doomed[#doomed + 1] = c[1]
    elseif k < kept_from then
      doomed[#doomed + 1] = c[1]
    elseif before ~= '' and c[2] ~= '-inf' and tonumber(c[2]) < tonumber(before) then
      doomed[#doomed + 1] = c[1]
    end
  end
end
for _, member in ipairs(doomed) do
  local id = string.sub(member, 17)
  local key = jkey(id)
  local state = redis.call('HGET', key, 'state')
  redis.call('ZREM', fkey, member)
  redis.call('ZREM', P .. 'state:' .. tostring(state), id)
  redis.call('ZREM', P .. 'all', id)
  redis.call('DEL', key)
end
return #doomed
"""
)

#: ARGV: P and W, id, force ('1': whatever its state, for a corrupted job). Deletes
#: a finished job. Returns 1 if a job was deleted.
DELETE: Final = (
    _COMMON
    + """
local id, force = ARGV[2], ARGV[3]
local key = jkey(id)
local f = redis.call('HMGET', key, 'state', 'seq')
if redis.call('EXISTS', key) == 0 then return 0 end
local state = f[1]
local finished = state == 'succeeded' or state == 'failed' or state == 'cancelled'
if not finished and force ~= '1' then return 0 end
if finished or state == 'running' then
  leave(id, key, state, f[2] or '0')
elseif state == 'pending' then
  pcall(leave, id, key, state, f[2] or '0')
end
for _, s in ipairs({'pending', 'running', 'succeeded', 'failed', 'cancelled'}) do
  redis.call('ZREM', P .. 'state:' .. s, id)
end
redis.call('ZREM', P .. 'all', id)
redis.call('ZREM', P .. 'running', id)
redis.call('DEL', key)
return 1
"""
)

#: ARGV: P and W, state ('' = any), handler ('' = any), offset, limit. Returns
#: the HGETALLs of the matching jobs, newest first.
LIST: Final = (
    _ARGS
    + """
local state, handler = ARGV[2], ARGV[3]
local offset, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local src = P .. 'all'
if state ~= '' then src = P .. 'state:' .. state end
local out = {}
if limit == 0 then return out end
if handler == '' then
  for _, id in ipairs(redis.call('ZREVRANGE', src, offset, offset + limit - 1)) do
    out[#out + 1] = redis.call('HGETALL', P .. 'job:' .. id)
  end
  return out
end
local start, skip = 0, offset
while true do
  local ids = redis.call('ZREVRANGE', src, start, start + 499)
  if #ids == 0 then return out end
  for _, id in ipairs(ids) do
    local key = P .. 'job:' .. id
    if redis.call('HGET', key, 'handler') == handler then
      if skip > 0 then skip = skip - 1
      else
        out[#out + 1] = redis.call('HGETALL', key)
        if #out == limit then return out end
      end
    end
  end
  start = start + 500
end
"""
)

#: ARGV: P and W. Returns the sizes of the state sets, in the order of STATES, then
#: the number of jobs (those of an unknown state are in no state set).
COUNTS: Final = (
    _ARGS
    + """
local out = {}
for i, state in ipairs({'pending', 'running', 'succeeded', 'failed', 'cancelled'}) do
  out[i] = redis.call('ZCARD', P .. 'state:' .. state)
end
out[#out + 1] = redis.call('ZCARD', P .. 'all')
return out
"""
)

#: ARGV: P and W, name, JSON, next_run_at.
PUT_SCHEDULE: Final = (
    _ARGS
    + """
redis.call('HSET', P .. 'sched', ARGV[2], ARGV[3])
redis.call('HSET', P .. 'sched_next', ARGV[2], ARGV[4])
return 1
"""
)

#: ARGV: P and W, name. Returns 1 if it existed.
DELETE_SCHEDULE: Final = (
    _ARGS
    + """
redis.call('HDEL', P .. 'sched_next', ARGV[2])
return redis.call('HDEL', P .. 'sched', ARGV[2])
"""
)

#: ARGV: P and W, name, expected, next_run_at. Returns 1 if it was advanced.
ADVANCE_SCHEDULE: Final = (
    _ARGS
    + """
if redis.call('HEXISTS', P .. 'sched', ARGV[2]) == 0 then return 0 end
if redis.call('HGET', P .. 'sched_next', ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HSET', P .. 'sched_next', ARGV[2], ARGV[4])
return 1
"""
)

#: ARGV: P and W. Returns {names and JSON texts, names and next_run_at}.
LIST_SCHEDULES: Final = (
    _ARGS
    + """
return {redis.call('HGETALL', P .. 'sched'), redis.call('HGETALL', P .. 'sched_next')}
"""
)

#: The states in the order COUNTS returns them.
STATES: Final = ("pending", "running", "succeeded", "failed", "cancelled")


#: ARGV: P and W, then ids. Returns the HGETALL of each (empty: no such job).
GET_MANY: Final = (
    _ARGS
    + """
local out = {}
for i = 2, #ARGV do out[#out + 1] = redis.call('HGETALL', P .. 'job:' .. ARGV[i]) end
return out
"""
)
