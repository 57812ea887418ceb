--[[
  grantFrom (included; pools as includes/pools.lua reads them): grant jobs waiting in the pool's queues (tried in
  order) while its slot set has fewer than its limit members, at most `max` of them. Each granted
  job takes a slot (recorded in `slot` as the pool's location, from which includes/heldSlot.lua
  finds the set again), gets a new run number, records where it runs (`host`: the pool's
  location, e.g. local:ws1 or host:lab1) and the node that granted it (`node`: its starter
  launches it, its fetcher watches it, its recovery alone settles it), and is pushed to that
  node's Granted_Queue (`grantedQueue`) as a payload the starter can launch without reading
  anything else:
    id \n run \n attempt \n where \n spec JSON \n job definition JSON (or null)
  and, for a job of a sweep, whose spec and definition are its sweep's: \n row:<row JSON> \n name:<job name>
  (tagged, so that any other field after the definition is no row: lib/store/scripts.ts ignores it)
  (JSON never holds a raw newline, so the fields cannot run into each other.)
  The job definition is only included when the spec uses the `self.yaml` input, i.e. holds an
  input whose value is the string self.yaml: `"value":"self.yaml"` in the spec's JSON (quotes
  inside a JSON string are escaped, so a command, name or Env value that merely mentions
  self.yaml does not match).
  A host marked down (its HostState entry, JSON with state "down", set by the fetcher) is granted
  nothing, whatever the caller's view of it: the actors re-read host states only every 2 s, and a
  job granted to a host in that time was refused by the starter ("host is down") and failed,
  even one that could run on any host (chaos run, seed 22).
  Returns the number granted.
  Events: granted, with the job's `class` (the web page's tally reads no record for it)
]]
-- @include keys

local function grantFrom(prefix, now, pool, max, grantedQueue, events, hostStates, node)
  local where = pool.location
  if string.sub(where, 1, 5) == 'host:' then
    local hostState = redis.call('HGET', hostStates, string.sub(where, 6))
    if hostState and cjson.decode(hostState).state == 'down' then return 0 end
  end
  local granted = 0
  local room = pool.limit - redis.call('SCARD', pool.slotKey)
  for _, queue in ipairs(pool.queues) do
    while room > 0 and granted < max do
      local id = redis.call('RPOP', queue)
      if not id then break end
      local key = jobKey(prefix, id)
      local state, attempt, spec, sweep, params, name, classType = unpack(redis.call('HMGET', key, 'state', 'attempt', 'spec', 'sweep', 'params', 'name', 'classType'))
      -- A sweep's job holds only its row; the definition it shares is its sweep's (sweep:<first>).
      local home, row = key, ''
      if not spec and sweep then
        home = sweepKey(prefix, sweep)
        spec = redis.call('HGET', home, 'spec')
        row = '\nrow:' .. (params or '{}') .. '\nname:' .. (name or '')
      end
      if state == 'queued' and spec then
        local run = redis.call('HINCRBY', key, 'run', 1)
        redis.call('SADD', pool.slotKey, id)
        redis.call('HSET', key, 'state', 'granted', 'grantedAt', now, 'slot', where, 'host', where, 'node', node)
        local raw = 'null'
        if string.find(spec, '"value":"self.yaml"', 1, true) then raw = redis.call('HGET', home, 'raw') or 'null' end
        redis.call('LPUSH', grantedQueue, id .. '\n' .. run .. '\n' .. attempt .. '\n' .. where .. '\n' .. spec .. '\n' .. raw .. row)
        redis.call('XADD', events, 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'granted', 'run', run, 'host', where, 'class', classType or '')
        room = room - 1
        granted = granted + 1
      end
    end
  end
  return granted
end
