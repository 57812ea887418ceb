--[[
  enforceLimits: Timeout and cancel, for running jobs the fetcher has just polled and found still
  running. For each (id, run), in one step, one of:
    - nothing yet: it is looked at again after its poll period, or at its deadline or killAt if
      that comes first;
    - SIGTERM now: a cancel was requested, or it is past its deadline (then `timedOut` is
      recorded, so that its end reads "timed out"); `killAt` is set one kill grace from now;
    - SIGKILL now: it is still running at `killAt`; `killAt` moves one grace on (KILL again then).
  and its Running_Queue score becomes the next look (ZADD XX: a job that left meanwhile is not
  put back). A job that is not running at that run (ended, or running again as a newer run) is
  ignored: nothing changes. The fetcher sends the signals after this step; if it dies in between,
  the next look finds `killAt` set and sends KILL.

  KEYS[1] Running_Queue
  KEYS[2 ..] job:<id> of each job, in order
  ARGV[1] now (ms)   ARGV[2] kill grace (ms)
  ARGV[3 ..] pairs: id, run
  Returns: per job, a pair: what to do, and the next look (ms; 0 when ignored):
    'wait' | 'cancelled' (SIGTERM) | 'timed out' (SIGTERM) | 'kill' (SIGKILL) | 'ignored'
  Events: none (the run's end is recorded by finishRun)
]]
local now, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for j = 1, #KEYS - 1 do
  local key, id, run = KEYS[j + 1], ARGV[1 + 2 * j], ARGV[2 + 2 * j]
  local state, current, pollMs, deadline, cancelRequested, killAt =
    unpack(redis.call('HMGET', key, 'state', 'run', 'pollMs', 'deadline', 'cancelRequested', 'killAt'))
  local action, nextLook = 'ignored', 0
  if state == 'running' and current == run then
    deadline, killAt = tonumber(deadline), tonumber(killAt)
    local poll = now + (tonumber(pollMs) or 30000)
    if killAt then
      if now < killAt then
        action, nextLook = 'wait', math.min(poll, killAt)
      else
        action, nextLook = 'kill', now + grace
        redis.call('HSET', key, 'killAt', nextLook)
      end
    elseif cancelRequested or (deadline and now >= deadline) then
      nextLook = now + grace
      if cancelRequested then
        action = 'cancelled'
      else
        action = 'timed out'
        redis.call('HSET', key, 'timedOut', 1)
      end
      redis.call('HSET', key, 'killAt', nextLook)
    else
      action, nextLook = 'wait', poll
      if deadline and deadline < nextLook then nextLook = deadline end
    end
    redis.call('ZADD', KEYS[1], 'XX', nextLook, id)
  end
  out[#out + 1] = action
  out[#out + 1] = nextLook
end
return out
