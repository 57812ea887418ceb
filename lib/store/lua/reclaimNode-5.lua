--[[
  reclaimNode: a node gone longer than NodeDownAfter (its lease renewed last that long ago) has
  the jobs granted to it and not started yet -- the launch payloads in its Granted_Queue -- given
  back to their queues, for the other nodes (includes/giveBack.lua). Its running jobs stay its
  own. Nothing happens when the node renewed its lease since (checked here, in the same step).

  KEYS[1] Nodes   KEYS[2] Granted_Queue:<node>   KEYS[3] Events   KEYS[4] Signal:manager
  KEYS[5] key prefix (includes/keys.lua: the records, slot sets and queues of its jobs)
  ARGV[1] now (ms)   ARGV[2] node   ARGV[3] NodeDownAfter (ms)
  Returns: the number of jobs given back (-1: the node is not down that long)
  Events: queued
]]
-- @include keys
-- @include heldSlot
-- @include giveBack

local now, node, downAfter = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local raw = redis.call('HGET', KEYS[1], node)
if raw and now - tonumber(cjson.decode(raw).renewedAt) < downAfter then return -1 end
local given = giveBackGranted(KEYS[5], now, KEYS[2], 'node ' .. node .. ' is down: given to another node', KEYS[3])
if given > 0 and redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end
return given
