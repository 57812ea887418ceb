--[[
  adoptLegacy: a deployment that ran one supervisor before nodes (issue 12) kept its local slots,
  queues and run logs under keys without a node (LocalJobs, Granted_Queue, Running_Queue,
  Runlogs, Supervisor). The node that starts on that supervisor's machine and state directory
  (the caller checks) adopts them: its jobs become the node's (`slot`/`host` local:<node>, `node`),
  launch payloads for `local` become payloads for local:<node>, and the old keys are deleted.
  Queued jobs need nothing: Job_Queue:local is the queue every node's local pool draws from.

  KEYS[1] LocalJobs   KEYS[2] Granted_Queue   KEYS[3] Running_Queue   KEYS[4] Runlogs   KEYS[5] Supervisor
  KEYS[6] LocalJobs:<node>   KEYS[7] Granted_Queue:<node>   KEYS[8] Running_Queue:<node>
  KEYS[9] Runlogs:<node>     KEYS[10] key prefix (includes/keys.lua: the records)
  ARGV[1] node   ARGV[2] local:<node>
  Returns: the number of jobs adopted (slot holders, payloads and running jobs)
]]
-- @include keys

local node, here = ARGV[1], ARGV[2]
local adopted = 0
local function own(id)
  local key = jobKey(KEYS[10], id)
  if redis.call('HGET', key, 'host') == 'local' or redis.call('HGET', key, 'slot') == 'local' then
    redis.call('HSET', key, 'host', here, 'slot', here)
  end
  redis.call('HSET', key, 'node', node)
  adopted = adopted + 1
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('SADD', KEYS[6], id)
  own(id)
end
-- Oldest payload first (they are taken from the right), each onto the left of the node's queue.
while true do
  local payload = redis.call('RPOP', KEYS[2])
  if not payload then break end
  local id, run, attempt, where, rest = string.match(payload, '^(%d+)\n(%d+)\n(%d+)\n([^\n]*)\n(.*)$')
  if id then
    if where == 'local' then payload = id .. '\n' .. run .. '\n' .. attempt .. '\n' .. here .. '\n' .. rest end
    redis.call('LPUSH', KEYS[7], payload)
    own(id)
  end
end
local running = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #running, 2 do
  redis.call('ZADD', KEYS[8], running[i + 1], running[i])
  own(running[i])
end
local logs = redis.call('HGETALL', KEYS[4])
if #logs > 0 then redis.call('HSET', KEYS[9], unpack(logs)) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return adopted
