--[[
  claimNode: a supervisor claims its node name, or renews its claim (its heartbeat), or records
  that it stopped. The name is held by whoever holds it (another machine or state directory)
  while its lease is fresh: renewed less than the lease ago and not stopped. A supervisor of the
  same machine and state directory is the same node started again (the state directory's lock
  proves the one before is gone), so it takes the name over at once.

  KEYS[1] Nodes (hash: node -> JSON {host, pid, stateDir, since, renewedAt, localMaxJobs, status})
  ARGV[1] now (ms)   ARGV[2] node   ARGV[3] host   ARGV[4] pid   ARGV[5] state directory
  ARGV[6] the lease (ms)   ARGV[7] LocalMaxJobs   ARGV[8] status: running | stopped
  Returns: false when the node is this supervisor's now; else the holder's record (JSON)
]]
local now, node, host, pid, stateDir, leaseMs = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local since = now
local raw = redis.call('HGET', KEYS[1], node)
if raw then
  local held = cjson.decode(raw)
  local same = held.host == host and held.stateDir == stateDir
  if not same and held.status ~= 'stopped' and now - tonumber(held.renewedAt) < leaseMs then return raw end
  if same and held.pid == pid then since = held.since end
end
redis.call('HSET', KEYS[1], node, cjson.encode({
  host = host, pid = pid, stateDir = stateDir, since = since, renewedAt = now,
  localMaxJobs = tonumber(ARGV[7]), status = ARGV[8] }))
return false
