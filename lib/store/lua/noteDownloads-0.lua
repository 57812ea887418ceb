--[[
  noteDownloads: what became of a run's Downloads, on its job record (the field `downloads`), so
  that `show` and the web page say which failed and why, not only the log. The fetcher notes it
  after fetching, just before finishRun records the run's end; only for the job's current run
  while it is granted or running, so a late note about an older run changes nothing. Every
  fetch replaces the note: a run whose downloads all arrived removes it.

  ARGV[1] key prefix   ARGV[2] job id   ARGV[3] run
  ARGV[4] JSON {run, failed: [{file, reason}]}, or '' when every download arrived
  Returns: 1 if noted, 0 if ignored
]]
local jobKey = ARGV[1] .. 'job:' .. ARGV[2]
local state, run = unpack(redis.call('HMGET', jobKey, 'state', 'run'))
if (state ~= 'granted' and state ~= 'running') or run ~= ARGV[3] then return 0 end
if ARGV[4] == '' then
  redis.call('HDEL', jobKey, 'downloads')
else
  redis.call('HSET', jobKey, 'downloads', ARGV[4])
end
return 1
