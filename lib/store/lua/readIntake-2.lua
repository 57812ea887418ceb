--[[
  readIntake: the oldest entries of Job_Queue, each with the fields of its job record that the
  manager checks, in one round trip (it reads nothing it changes: the manager's decisions go back
  with route-N.lua, which drops an entry cancelled meanwhile).

  KEYS[1] Job_Queue   KEYS[2] key prefix (includes/keys.lua: the record of each entry)
  ARGV[1] most entries to read   ARGV[2 ..] the record fields to read
  Returns: a flat list: per entry, oldest first, the entry then its fields (false: not set)
  Events: none
]]
-- @include keys

local prefix, max = KEYS[2], tonumber(ARGV[1])
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local entries = redis.call('LRANGE', KEYS[1], -max, -1)
local reply = {}
for i = #entries, 1, -1 do
  reply[#reply + 1] = entries[i]
  local values = redis.call('HMGET', jobKey(prefix, entries[i]), unpack(fields))
  for j = 1, #fields do reply[#reply + 1] = values[j] end
end
return reply
