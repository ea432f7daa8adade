package cluster

import "github.com/redis/go-redis/v9"

// Every script takes no KEYS (the keys it touches depend on what it reads,
// so this needs a single Redis, not Redis Cluster) and ARGV[1] = the key
// prefix. They share the helpers in luaLib.

// luaLib holds the match, the one place that decides who goes next:
//   - a job that arrives (or goes back to its place) takes the live,
//     unreserved GPU of its profile that has been free longest; with none it
//     waits in the profile's line, scored by its arrival number;
//   - a GPU that becomes free takes the waiting job with the lowest arrival
//     number; with none it joins the free set, scored by a new number.
//
// A match reserves the GPU for the job (reserved:<gpu> = job id, with a
// lease), writes state=assigned, gpu and url into the job's hash and
// publishes the job id on the matched channel.
const luaLib = `
local P = ARGV[1]
local function reg_url(gpu)
  local v = redis.call('GET', P..'reg:'..gpu)
  if not v then return false end
  local nl = string.find(v, '\n', 1, true)
  return string.sub(v, nl + 1)
end
local function reg_token(gpu)
  local v = redis.call('GET', P..'reg:'..gpu)
  if not v then return false end
  local nl = string.find(v, '\n', 1, true)
  return string.sub(v, 1, nl - 1)
end
local function assign(id, gpu, url, reserve_ms)
  redis.call('SET', P..'reserved:'..gpu, id, 'PX', reserve_ms)
  redis.call('HSET', P..'job:'..id, 'state', 'assigned', 'gpu', gpu, 'url', url)
  redis.call('PUBLISH', P..'matched', id)
end
local function take_free(profile)
  while true do
    local r = redis.call('ZPOPMIN', P..'free:'..profile)
    if #r == 0 then return false, false end
    local gpu = r[1]
    local url = reg_url(gpu)
    if url and redis.call('EXISTS', P..'reserved:'..gpu) == 0 then return gpu, url end
  end
end
local function place(profile, id, seq, reserve_ms, max_queue)
  local gpu, url = take_free(profile)
  if gpu then
    assign(id, gpu, url, reserve_ms)
    return {'assigned', gpu, url}
  end
  if max_queue > 0 and redis.call('ZCARD', P..'line:'..profile) >= max_queue then
    return {'full'}
  end
  redis.call('ZADD', P..'line:'..profile, seq, id)
  redis.call('HSET', P..'job:'..id, 'state', 'waiting')
  return {'waiting'}
end
`

// scriptEnqueue puts a new job in line or matches it with a free GPU.
// ARGV: prefix, profile, job id, reserve ms, job ttl ms, max queue (0: no
// bound). Returns {'none'} when no live GPU serves the profile, {'exists'}
// when the id is taken, {'full'}, {'waiting'} or {'assigned', gpu, url}.
var scriptEnqueue = redis.NewScript(luaLib + `
local profile, id = ARGV[2], ARGV[3]
local reserve_ms, ttl_ms, max_queue = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local live = 0
for _, g in ipairs(redis.call('SMEMBERS', P..'gpus:'..profile)) do
  if redis.call('EXISTS', P..'reg:'..g) == 1 then live = live + 1 else redis.call('SREM', P..'gpus:'..profile, g) end
end
if live == 0 then return {'none'} end
local jk = P..'job:'..id
if redis.call('EXISTS', jk) == 1 then return {'exists'} end
local seq = redis.call('INCR', P..'seq')
redis.call('HSET', jk, 'profile', profile, 'seq', seq)
redis.call('PEXPIRE', jk, ttl_ms)
local r = place(profile, id, seq, reserve_ms, max_queue)
if r[1] == 'full' then redis.call('DEL', jk) end
return r
`)

// scriptOffer offers a free GPU: it takes the oldest waiting job of its
// profile, or joins the free set. ARGV: prefix, gpu, profile, token,
// reserve ms. Returns {'unregistered'} when the GPU's registration is gone
// or another's, {'reserved'} while it is promised to a job, {'assigned',
// job id} or {'free'}.
var scriptOffer = redis.NewScript(luaLib + `
local gpu, profile, token, reserve_ms = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if reg_token(gpu) ~= token then return {'unregistered'} end
if redis.call('EXISTS', P..'reserved:'..gpu) == 1 then return {'reserved'} end
local url = reg_url(gpu)
while true do
  local r = redis.call('ZPOPMIN', P..'line:'..profile)
  if #r == 0 then break end
  local id = r[1]
  if redis.call('HGET', P..'job:'..id, 'state') == 'waiting' then
    redis.call('ZREM', P..'free:'..profile, gpu)
    assign(id, gpu, url, reserve_ms)
    return {'assigned', id}
  end
end
if not redis.call('ZSCORE', P..'free:'..profile, gpu) then
  redis.call('ZADD', P..'free:'..profile, redis.call('INCR', P..'seq'), gpu)
end
return {'free'}
`)

// scriptStarted marks a job running on the GPU it was matched with, when
// that GPU's shim has taken the lock for it. ARGV: prefix, job id, gpu.
// Returns 1, or 0 when the job is not (or no longer) assigned to that GPU:
// then the shim must not run it.
var scriptStarted = redis.NewScript(luaLib + `
local id, gpu = ARGV[2], ARGV[3]
local jk = P..'job:'..id
if redis.call('HGET', jk, 'state') ~= 'assigned' or redis.call('HGET', jk, 'gpu') ~= gpu then return 0 end
redis.call('HSET', jk, 'state', 'running')
if redis.call('GET', P..'reserved:'..gpu) == id then redis.call('DEL', P..'reserved:'..gpu) end
redis.call('ZREM', P..'free:'..redis.call('HGET', jk, 'profile'), gpu)
return 1
`)

// scriptRequeue puts a job that was matched but never started back in its
// place in line (its arrival number), or matches it again at once. The GPU
// it was matched with stays out of matches for hold ms (0: free to offer
// again at once). ARGV: prefix, job id, gpu, reserve ms, hold ms. Returns
// {'gone'} when the job is no longer assigned to that GPU, else what the
// match gives: {'waiting'} or {'assigned', gpu, url}.
var scriptRequeue = redis.NewScript(luaLib + `
local id, gpu, reserve_ms, hold_ms = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local jk = P..'job:'..id
if redis.call('HGET', jk, 'state') ~= 'assigned' or redis.call('HGET', jk, 'gpu') ~= gpu then return {'gone'} end
if redis.call('GET', P..'reserved:'..gpu) == id then
  if hold_ms > 0 then
    redis.call('SET', P..'reserved:'..gpu, '-', 'PX', hold_ms)
  else
    redis.call('DEL', P..'reserved:'..gpu)
  end
end
redis.call('HDEL', jk, 'gpu', 'url')
local profile, seq = redis.call('HGET', jk, 'profile'), tonumber(redis.call('HGET', jk, 'seq'))
return place(profile, id, seq, reserve_ms, 0)
`)

// scriptCancel takes a job that has not started out of the cluster (its
// client left or waited too long) and frees a GPU reserved for it. ARGV:
// prefix, job id. Returns 1, or 0 when the job is running or unknown.
var scriptCancel = redis.NewScript(luaLib + `
local id = ARGV[2]
local jk = P..'job:'..id
local state = redis.call('HGET', jk, 'state')
if not state or state == 'running' then return 0 end
if state == 'waiting' then redis.call('ZREM', P..'line:'..redis.call('HGET', jk, 'profile'), id) end
if state == 'assigned' then
  local gpu = redis.call('HGET', jk, 'gpu')
  if redis.call('GET', P..'reserved:'..gpu) == id then redis.call('DEL', P..'reserved:'..gpu) end
end
redis.call('DEL', jk)
return 1
`)

// scriptRegister registers (or renews) a GPU with a lease. ARGV: prefix,
// gpu, profile, token, url, lease ms. Returns 1, or 0 when another live
// registration (another token) holds the GPU.
var scriptRegister = redis.NewScript(luaLib + `
local gpu, profile, token, url, lease_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local t = reg_token(gpu)
if t and t ~= token then return 0 end
redis.call('SET', P..'reg:'..gpu, token..'\n'..url, 'PX', lease_ms)
redis.call('SADD', P..'gpus:'..profile, gpu)
return 1
`)

// scriptUnregister removes a GPU's registration if it is still its own.
// ARGV: prefix, gpu, profile, token. Returns 1 or 0.
var scriptUnregister = redis.NewScript(luaLib + `
local gpu, profile, token = ARGV[2], ARGV[3], ARGV[4]
if reg_token(gpu) ~= token then return 0 end
redis.call('DEL', P..'reg:'..gpu)
redis.call('ZREM', P..'free:'..profile, gpu)
redis.call('SREM', P..'gpus:'..profile, gpu)
return 1
`)
