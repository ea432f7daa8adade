package cluster

import "github.com/redis/go-redis/v9"

// Every script takes no KEYS (the keys it touches depend on what it reads,
// so this needs a single Redis, not Redis Cluster) and ARGV[1] = the key
// prefix. They share the helpers in luaLib.

// luaLib holds the match, the one place that decides who goes next. A GPU
// is a physical one (node/gpu); its members are the shims of each profile
// on it (node/gpu/profile), siblings of each other. All jobs of all
// profiles wait in one line, gpulock:line, scored by the key of their
// place (see Turn: arrival, moved by level and by the client's rounds);
// each job is also in its profile's line, gpulock:pline:<profile>, with the
// same key, so that a freed GPU finds the first job it can serve at the
// heads of its profiles' lines, not by a scan past the other profile's.
//   - A job that arrives (or goes back to its place) takes the member of
//     its profile that has been free longest, on a GPU not reserved; with
//     none it waits in the line.
//   - A GPU that becomes free takes the job with the smallest key that one
//     of its members can serve; with none the member joins its profile's free
//     set, scored by a new number.
//   - A job pinned to one member (its hash's pin field: an A1111 options
//     change applied machine by machine) is served by that member only.
//   - A member still joining (joining:<member>: it applies the cluster's
//     A1111 options first) takes no job through a sibling.
//
// A match reserves the physical GPU for the job (reserved:<node/gpu> = job
// id, with a lease), takes its members out of the free sets, writes
// state=assigned, gpu (the member) and url into the job's hash, counts the
// job's matches (n) and publishes "id\ngpu\nurl\nn" on the matched channel,
// so that the waiting gateway dispatches without reading the job back.
const luaLib = `
local P = ARGV[1]
local function phys(member) return string.match(member, '^(.*)/[^/]*$') end
local function reg_part(member, which)
  local v = redis.call('GET', P..'reg:'..member)
  if not v then return false end
  local nl = string.find(v, '\n', 1, true)
  if which == 1 then return string.sub(v, 1, nl - 1) end
  return string.sub(v, nl + 1)
end
local function reserved(member) return redis.call('EXISTS', P..'reserved:'..phys(member)) == 1 end
-- assign: reserve the physical GPU, take all its members out of the free
-- sets, record the match in the job, wake its gateway with the match.
-- Returns the job's match count.
local function assign(id, member, url, reserve_ms)
  local g = phys(member)
  redis.call('SET', P..'reserved:'..g, id, 'PX', reserve_ms)
  for _, sib in ipairs(redis.call('SMEMBERS', P..'siblings:'..g)) do
    local prof = string.match(sib, '/([^/]*)$')
    redis.call('ZREM', P..'free:'..prof, sib)
  end
  redis.call('ZREM', P..'line', id)
  redis.call('ZREM', P..'pline:'..string.match(member, '/([^/]*)$'), id)
  local n = redis.call('HINCRBY', P..'job:'..id, 'n', 1)
  redis.call('HSET', P..'job:'..id, 'state', 'assigned', 'gpu', member, 'url', url)
  redis.call('PUBLISH', P..'matched', id..'\n'..member..'\n'..url..'\n'..n)
  return n
end
-- start: mark job id running on gpu (a member), record its model as the
-- GPU's last (models.go), the start (Redis's clock, in microseconds) in
-- the job and the job in running:<node/gpu>, for View; the GPU's
-- reservation for the job ends.
local function start(id, gpu)
  local jk = P..'job:'..id
  local t = redis.call('TIME')
  redis.call('HSET', jk, 'state', 'running', 'started', t[1]..string.format('%06d', tonumber(t[2])))
  redis.call('SET', P..'running:'..phys(gpu), id, 'PX', 86400000)
  local model = redis.call('HGET', jk, 'model')
  if model then redis.call('HSET', P..'models', gpu, model) end
  if redis.call('GET', P..'reserved:'..phys(gpu)) == id then redis.call('DEL', P..'reserved:'..phys(gpu)) end
  redis.call('ZREM', P..'free:'..redis.call('HGET', jk, 'profile'), gpu)
end
local function take_free(profile, model)
  if model and model ~= '' then
    -- model-aware: a free GPU whose last job loaded the job's model first
    -- (among the 1000 free longest)
    local free = redis.call('ZRANGE', P..'free:'..profile, 0, 999)
    local models = {}
    if #free > 0 then models = redis.call('HMGET', P..'models', unpack(free)) end
    for i, member in ipairs(free) do
      if models[i] == model then
        local url = reg_part(member, 2)
        if url and not reserved(member) then
          redis.call('ZREM', P..'free:'..profile, member)
          return member, url
        end
      end
    end
  end
  while true do
    local r = redis.call('ZPOPMIN', P..'free:'..profile)
    if #r == 0 then return false, false end
    local member = r[1]
    local url = reg_part(member, 2)
    if url and not reserved(member) then return member, url end
  end
end
-- pinned_free: the job's pinned member (node/gpu/profile) when it is
-- free; a pinned job waits for that member only (see Store.EnqueuePinned).
local function pinned_free(pin)
  if not redis.call('ZSCORE', P..'free:'..string.match(pin, '/([^/]*)$'), pin) then return false, false end
  local url = reg_part(pin, 2)
  if url and not reserved(pin) then return pin, url end
  return false, false
end
local function place(profile, id, seq, reserve_ms, max_queue)
  local pin = redis.call('HGET', P..'job:'..id, 'pin')
  local member, url
  if pin then member, url = pinned_free(pin) else member, url = take_free(profile, redis.call('HGET', P..'job:'..id, 'model')) end
  if member then
    local n = assign(id, member, url, reserve_ms)
    return {'assigned', member, url, tostring(n)}
  end
  if max_queue > 0 and redis.call('ZCARD', P..'line') >= max_queue then
    return {'full'}
  end
  redis.call('ZADD', P..'line', seq, id)
  redis.call('ZADD', P..'pline:'..profile, seq, id)
  redis.call('HSET', P..'job:'..id, 'state', 'waiting')
  return {'waiting'}
end
`

// scriptEnqueue puts a new job in line or matches it with a free GPU.
// ARGV: prefix, profile, job id, reserve ms, job ttl ms, max queue (0: no
// bound), then the turn (Turn.args): client, level, fair (1/0), aging us,
// front (1/0), model, pin (the only member that may run the job, or "").
// The job's key in line follows Turn's rules; Redis's clock, made strictly
// increasing through gpulock:now, is the arrival time. Returns {'none'}
// when no live GPU serves the profile, {'exists'} when the id is taken,
// {'full'}, {'waiting'} or {'assigned', gpu, url, n}.
var scriptEnqueue = redis.NewScript(luaLib + `
local profile, id = ARGV[2], ARGV[3]
local reserve_ms, ttl_ms, max_queue = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local client, level, fair, aging = ARGV[7], tonumber(ARGV[8]), ARGV[9] == '1', tonumber(ARGV[10])
-- Is one GPU of the profile live? Scan its set in small steps until one
-- is, dropping the dead ones met on the way: O(1) a job while most are
-- live, not a look at every GPU.
local live, cursor = false, '0'
repeat
  local r = redis.call('SSCAN', P..'gpus:'..profile, cursor, 'COUNT', 16)
  cursor = r[1]
  for _, g in ipairs(r[2]) do
    if redis.call('EXISTS', P..'reg:'..g) == 1 then live = true break end
    redis.call('SREM', P..'gpus:'..profile, g)
  end
until live or cursor == '0'
if not live then return {'none'} end
local jk = P..'job:'..id
if redis.call('EXISTS', jk) == 1 then return {'exists'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local before = tonumber(redis.call('GET', P..'now') or '0')
if now <= before then now = before + 1 end
redis.call('SET', P..'now', string.format('%.0f', now))
local key = now - level * aging
local tk = P..'tail:'..client
local last = false
local tail = redis.call('GET', tk)
if tail then
  local sp = string.find(tail, ' ', 1, true)
  if redis.call('EXISTS', P..'job:'..string.sub(tail, sp + 1)) == 1 then last = tonumber(string.sub(tail, 1, sp - 1)) end
end
if fair and aging > 0 and last and key < last + aging then key = last + aging end
if ARGV[11] == '1' then
  local first = redis.call('ZRANGE', P..'line', 0, 0, 'WITHSCORES')
  if #first == 2 and tonumber(first[2]) <= key then key = tonumber(first[2]) - 1 end
end
redis.call('HSET', jk, 'profile', profile, 'seq', string.format('%.0f', key), 'client', client, 'level', level)
if ARGV[12] and ARGV[12] ~= '' then redis.call('HSET', jk, 'model', ARGV[12]) end
local pin = ARGV[13]
if pin and pin ~= '' then
  if redis.call('EXISTS', P..'reg:'..pin) == 0 then redis.call('DEL', jk) return {'none'} end
  redis.call('HSET', jk, 'pin', pin)
end
redis.call('PEXPIRE', jk, ttl_ms)
local r = place(profile, id, key, reserve_ms, max_queue)
if r[1] == 'full' then
  redis.call('DEL', jk)
elseif not last or key >= last then
  redis.call('SET', tk, string.format('%.0f', key)..' '..id, 'PX', ttl_ms)
end
return r
`)

// scriptOffer offers a free GPU (one member: node/gpu/profile): the
// longest-waiting job that the physical GPU can serve, through this member
// or a sibling (the other profile's shim of the same GPU), goes to it;
// with none the member joins its profile's free set, unless join is 0 (a
// member that holds the lock for the cluster's turn while local users
// wait), and, if held is 1 (the member holds the GPU lock for the job it
// matches), matching a sibling's job is left to an offer without the lock:
// {'sibling'}. ARGV: prefix, member, profile, token, reserve ms, join (1/0),
// held (1/0). Returns {'unregistered'} when the member's
// registration is gone or another's, {'reserved'} while the GPU is promised
// to a job, {'assigned', job id}, {'assigned', job id, 'started'} (held:
// the job is marked running, pre = token, see scriptStarted) or {'free'}.
var scriptOffer = redis.NewScript(luaLib + `
local member, profile, token, reserve_ms, join, held = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6] ~= '0', ARGV[7] == '1'
if reg_part(member, 1) ~= token then return {'unregistered'} end
if reserved(member) then return {'reserved'} end
-- Already free and no job of this GPU's profiles waits at all: a re-offer
-- of an idle GPU costs a few commands, not a look at the lines.
if join and redis.call('ZSCORE', P..'free:'..profile, member) then
  local idle = true
  for _, sib in ipairs(redis.call('SMEMBERS', P..'siblings:'..phys(member))) do
    if redis.call('ZCARD', P..'pline:'..string.match(sib, '/([^/]*)$')) > 0 then idle = false break end
  end
  if idle then return {'free'} end
end
local g = phys(member)
-- The first waiting job at the head of the line of each profile that this
-- GPU serves (a live member of it here, not joining), past jobs pinned to
-- another member; the smallest key goes. Entries of jobs no longer
-- waiting (gone with their gateway, expired) are dropped as met.
local best, best_key, best_member, best_url = false, false, false, false
for _, sib in ipairs(redis.call('SMEMBERS', P..'siblings:'..g)) do
  local url = reg_part(sib, 2)
  if url and redis.call('EXISTS', P..'joining:'..sib) == 0 then
    local lk = P..'pline:'..string.match(sib, '/([^/]*)$')
    local from = 0
    while true do
      local head = redis.call('ZRANGE', lk, from, from, 'WITHSCORES')
      if #head == 0 then break end
      local jk = P..'job:'..head[1]
      if redis.call('HGET', jk, 'state') == 'waiting' then
        local pin = redis.call('HGET', jk, 'pin')
        if not pin or pin == sib then
          local key = tonumber(head[2])
          if not best_key or key < best_key then best, best_key, best_member, best_url = head[1], key, sib, url end
          break
        end
        from = from + 1
      else
        redis.call('ZREM', lk, head[1])
        redis.call('ZREM', P..'line', head[1])
      end
    end
  end
end
if best and held and best_member ~= member then return {'sibling'} end
if best then
  assign(best, best_member, best_url, reserve_ms)
  if held then
    -- The member holds the lock for the job: the match is its start too
    -- (no Started round trip when the dispatch comes), marked pre = the
    -- member's token until the member has handed it to its shim.
    start(best, member)
    redis.call('HSET', P..'job:'..best, 'pre', token)
    return {'assigned', best, 'started'}
  end
  return {'assigned', best}
end
if join and not redis.call('ZSCORE', P..'free:'..profile, member) then
  redis.call('ZADD', P..'free:'..profile, redis.call('INCR', P..'seq'), member)
end
return {'free'}
`)

// scriptStarted marks a job running on the GPU it was matched with, when
// that GPU's shim has taken the lock for it (see start), and records the
// dispatch that started it. ARGV: prefix, job id, gpu, token (or ""),
// dispatch (the dispatch's token, or ""). Returns 1, or 0 when the job is
// not (or no longer) assigned to that GPU: then the shim must not run it.
// A job the held offer of the member with token started (pre = token)
// counts as assigned to it once: the member asks only for a job it has not
// handed to its shim itself (Member.Started), and the pre mark goes. A job
// this very dispatch started already answers 1 again: the first answer was
// lost (a retry, Redis stopped as it answered).
var scriptStarted = redis.NewScript(luaLib + `
local id, gpu, token, dispatch = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jk = P..'job:'..id
if redis.call('HGET', jk, 'gpu') ~= gpu then return 0 end
local state = redis.call('HGET', jk, 'state')
if state == 'assigned' then
  start(id, gpu)
  if dispatch ~= '' then redis.call('HSET', jk, 'dispatch', dispatch) end
  return 1
end
if state ~= 'running' then return 0 end
if dispatch ~= '' and redis.call('HGET', jk, 'dispatch') == dispatch then return 1 end
if token ~= '' and redis.call('HGET', jk, 'pre') == token then
  redis.call('HDEL', jk, 'pre')
  if dispatch ~= '' then redis.call('HSET', jk, 'dispatch', dispatch) end
  return 1
end
return 0
`)

// scriptRequeue puts a job that was matched but never started back in its
// place in line (its arrival number), or matches it again at once. The GPU
// it was matched with stays out of matches for hold ms (0: free to offer
// again at once). A job that the refused dispatch itself started counts as
// never started: its shim's start ran in Redis but the answer was lost, so
// the shim refused it and ran nothing (its running mark goes). ARGV:
// prefix, job id, gpu, reserve ms, hold ms, dispatch (the refused
// dispatch's token, or ""). Returns {'gone'} when the job is no longer
// assigned to that GPU, else what the match gives: {'waiting'} or
// {'assigned', gpu, url, n}.
var scriptRequeue = redis.NewScript(luaLib + `
local id, gpu, reserve_ms, hold_ms, dispatch = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local jk = P..'job:'..id
if redis.call('HGET', jk, 'gpu') ~= gpu then return {'gone'} end
local state = redis.call('HGET', jk, 'state')
if state == 'running' and dispatch ~= '' and redis.call('HGET', jk, 'dispatch') == dispatch and not redis.call('HGET', jk, 'pre') then
  local run = P..'running:'..phys(gpu)
  if redis.call('GET', run) == id then redis.call('DEL', run) end
  redis.call('HDEL', jk, 'started', 'dispatch')
elseif state ~= 'assigned' then
  return {'gone'}
end
local rk = P..'reserved:'..phys(gpu)
if redis.call('GET', rk) == id then
  if hold_ms > 0 then
    redis.call('SET', rk, '-', 'PX', hold_ms)
  else
    redis.call('DEL', rk)
  end
end
redis.call('HDEL', jk, 'gpu', 'url')
local profile, seq = redis.call('HGET', jk, 'profile'), tonumber(redis.call('HGET', jk, 'seq'))
return place(profile, id, seq, reserve_ms, 0)
`)

// scriptCancel takes a job that has not started out of the cluster (its
// client left or waited too long) and frees a GPU reserved for it. With
// unclaimed = '1' it also takes a job that a held offer started with its
// match (pre set) and no dispatch has claimed: for a job nobody will
// dispatch (its gateway gave its client up), that start would otherwise go
// back to assigned when the member's lock goes back unclaimed, reserved
// for nobody and left so for good. ARGV: prefix, job id, unclaimed
// ('1'/'0'). Returns 1, or 0 when the job is running (claimed) or unknown.
var scriptCancel = redis.NewScript(luaLib + `
local id, unclaimed = ARGV[2], ARGV[3] == '1'
local jk = P..'job:'..id
local state = redis.call('HGET', jk, 'state')
if not state then return 0 end
if state == 'running' then
  if not unclaimed or not redis.call('HGET', jk, 'pre') then return 0 end
  local run = P..'running:'..phys(redis.call('HGET', jk, 'gpu'))
  if redis.call('GET', run) == id then redis.call('DEL', run) end
end
if state == 'waiting' then
  redis.call('ZREM', P..'line', id)
  redis.call('ZREM', P..'pline:'..redis.call('HGET', jk, 'profile'), id)
end
if state == 'assigned' then
  local rk = P..'reserved:'..phys(redis.call('HGET', jk, 'gpu'))
  if redis.call('GET', rk) == id then redis.call('DEL', rk) end
end
redis.call('DEL', jk)
return 1
`)

// scriptRegister registers (or renews) a GPU with a lease. ARGV: prefix,
// gpu, profile, token, url, lease ms. Returns 1, or 0 when another live
// registration (another token) holds the GPU.
var scriptRegister = redis.NewScript(luaLib + `
local gpu, profile, token, url, lease_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local t = reg_part(gpu, 1)
if t and t ~= token then return 0 end
redis.call('SET', P..'reg:'..gpu, token..'\n'..url, 'PX', lease_ms)
redis.call('SADD', P..'gpus:'..profile, gpu)
redis.call('SADD', P..'siblings:'..phys(gpu), gpu)
return 1
`)

// scriptUnregister removes a GPU's registration if it is still its own.
// ARGV: prefix, gpu, profile, token. Returns 1 or 0.
var scriptUnregister = redis.NewScript(luaLib + `
local gpu, profile, token = ARGV[2], ARGV[3], ARGV[4]
if reg_part(gpu, 1) ~= token then return 0 end
redis.call('DEL', P..'reg:'..gpu)
redis.call('SREM', P..'siblings:'..phys(gpu), gpu)
redis.call('ZREM', P..'free:'..profile, gpu)
redis.call('SREM', P..'gpus:'..profile, gpu)
return 1
`)

// scriptUnpre takes the pre mark (see scriptOffer) off a job once its
// member has handed it to its shim: from then on no Started of it
// succeeds. ARGV: prefix, job id, token. Returns 1, or 0 when the mark is
// not token's (gone already, or the job is).
var scriptUnpre = redis.NewScript(luaLib + `
local jk = P..'job:'..ARGV[2]
if redis.call('HGET', jk, 'pre') ~= ARGV[3] then return 0 end
redis.call('HDEL', jk, 'pre')
return 1
`)

// scriptUnstart puts a job that a member's held offer started (pre =
// token), and whose lock went back unclaimed, back to assigned to that
// member, reserved for it as a match is. ARGV: prefix, job id, gpu, token,
// reserve ms. Returns 1, or 0 when the job is not so.
var scriptUnstart = redis.NewScript(luaLib + `
local id, gpu, token, reserve_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local jk = P..'job:'..id
if redis.call('HGET', jk, 'state') ~= 'running' or redis.call('HGET', jk, 'gpu') ~= gpu or redis.call('HGET', jk, 'pre') ~= token then return 0 end
redis.call('HSET', jk, 'state', 'assigned')
redis.call('HDEL', jk, 'pre', 'started')
if redis.call('GET', P..'running:'..phys(gpu)) == id then redis.call('DEL', P..'running:'..phys(gpu)) end
redis.call('SET', P..'reserved:'..phys(gpu), id, 'PX', reserve_ms)
return 1
`)
