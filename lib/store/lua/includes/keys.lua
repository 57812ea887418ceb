--[[
  keys (included): the names of the keys a script finds only inside Redis -- the record of a job
  id popped from a queue or read from a sorted set, a queue or slot set named by a job's
  location -- built from the key prefix, which the script is given as a KEY (so that on Redis
  Cluster the call is routed to the hash slot of the deployment's {tag}, which all these share).
  A mirror of lib/store/keys.ts; spec/store.spec.ts checks that both build the same names.
  Every key a script can name before it runs is passed in KEYS instead.
]]
local function jobKey(prefix, id) return prefix .. 'job:' .. id end
local function sweepKey(prefix, first) return prefix .. 'sweep:' .. first end
local function namedKey(prefix, name) return prefix .. 'Named:' .. name end
local function jobRunsKey(prefix, id) return prefix .. 'job:' .. id .. ':runs' end
local function locationQueueKey(prefix, location) return prefix .. 'Job_Queue:' .. location end
local function slotSetKey(prefix, location)
  if location == 'local' then return prefix .. 'LocalJobs' end
  if string.sub(location, 1, 6) == 'local:' then return prefix .. 'LocalJobs:' .. string.sub(location, 7) end
  if string.sub(location, 1, 5) == 'host:' then return prefix .. 'RemoteJobs:' .. string.sub(location, 6) end
  return prefix .. 'Slots:' .. location
end
-- A node's own queues (a job record's `node`); a record from before nodes (no `node`) is in the
-- queues one supervisor used then.
local function grantedQueueKey(prefix, node)
  if not node then return prefix .. 'Granted_Queue' end
  return prefix .. 'Granted_Queue:' .. node
end
local function runningQueueKey(prefix, node)
  if not node then return prefix .. 'Running_Queue' end
  return prefix .. 'Running_Queue:' .. node
end
local function nodeSignalKey(prefix, actor, node)
  return prefix .. 'Signal:' .. actor .. ':' .. node
end
