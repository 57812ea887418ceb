--[[
  pools (included): the slot pools a script grants from, read from KEYS and ARGV as
  Scripts.poolArgs (lib/store/scripts.ts) lays them out:
    KEYS[k ..]   the P pools' slot sets, then the Q queues they take jobs from (Job_Queue:<location>)
    ARGV[a]      P   ARGV[a+1] Q
    ARGV[a+2 ..] P tuples of 3: the pool's location, its slot limit, its queues (space-separated
                 location names, tried in order), then the Q queues' location names
  readPools(k, a) returns the pools (a list of {location, slotKey, limit, queues = {keys}}), the
  same pools by location, and the first KEYS and ARGV index after them.
]]
local function readPools(k, a)
  local p, q = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local names = a + 2 + 3 * p
  local queueKeys = {}
  for j = 1, q do queueKeys[ARGV[names + j - 1]] = KEYS[k + p + j - 1] end
  local pools, byLocation = {}, {}
  for j = 1, p do
    local t = a + 2 + 3 * (j - 1)
    local queues = {}
    for name in string.gmatch(ARGV[t + 2], '%S+') do queues[#queues + 1] = queueKeys[name] end
    local pool = { location = ARGV[t], slotKey = KEYS[k + j - 1], limit = tonumber(ARGV[t + 1]), queues = queues }
    pools[j] = pool
    byLocation[pool.location] = pool
  end
  return pools, byLocation, k + p + q, names + q
end
