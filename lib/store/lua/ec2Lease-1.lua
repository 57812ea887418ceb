--[[
  ec2Lease: the one node that provisions EC2 and ends idle instances holds this lease. A node
  takes it when it is free (never held, or lapsed: the key expires), keeps it by renewing it, and
  gives it up when it stops.

  KEYS[1] Ec2Lease (string: the holder's node name, with an expiry)
  ARGV[1] node   ARGV[2] the lease (ms)   ARGV[3] hold | release
  Returns: the holder's name after the call (false: nobody)
]]
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'release' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) return false end
  return holder
end
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return ARGV[1]
end
return holder
