--[[
  compactJobs: finished jobs keep only what `show`, `jobs`, the web page and a retry need
  (lib/retention/retention.ts calls it as jobs end, and on every pass for any it missed).
  For each job that is final (succeeded, failed, cancelled, rejected) and not yet compacted:
  - the fields only running needed go: spec (the normalised definition; the definition as
    written, raw, stays: a retry routes the job again from it, and `logs` reads a step's Log
    file name and a RemoteWorkingDir from it), pollMs, timeoutMs, retryAt, deadline, pid,
    runlog, cancelRequested, timedOut, killAt, slot, grantedAt; empty fields, attempt 1 and
    retries 0, and baseDir when it is the job file's directory (what they read back as anyway);
  - steps are written in full and short, as [label, state, startedAt, took (ms), exitCode] per
    step: labels taken from the spec, steps that never ran as skipped (what `show` printed
    from the spec before), so `show` needs no spec;
  - a job:<id>:runs holding exactly the record's own run (one entry, no field the record
    does not hold: no fenced run) is folded into the record (field soleRun = 1; Store.runsOf
    reads it back, and retry-N.lua puts the entry back before the job runs again), and its host
    goes when it is its location (parseJobRecord reads it from there). Jobs of SSH
    hosts keep their runs list: fenceRun-1.lua may still mark a run there when its host answers.
  - the hash is written anew, so that Redis stores it as a listpack (small values only) rather
    than the hash table a long spec made of it: the most of the saving.
  A job that is not final, or is already compacted (no pollMs nor spec), or unknown, is left.

  KEYS[1 .. 2n] job:<id>, job:<id>:runs of each job, in order
  ARGV[1 .. n]  their ids
  Returns: how many were compacted
]]
local FINAL = { succeeded = true, failed = true, cancelled = true, rejected = true }
local DROP = { spec = true, pollMs = true, timeoutMs = true, retryAt = true, deadline = true, pid = true,
  runlog = true, cancelRequested = true, timedOut = true, killAt = true, slot = true, grantedAt = true }
local RUN_FIELDS = { run = true, attempt = true, outcome = true, exitCode = true, reason = true,
  startedAt = true, endedAt = true, location = true }

local function orNil(v) if v == cjson.null then return nil end return v end

-- The run entry says what the record says: folding it loses nothing.
local function sameRun(e, h)
  if type(e) ~= 'table' then return false end
  for field in pairs(e) do if not RUN_FIELDS[field] then return false end end
  return tostring(orNil(e.run)) == h.run and tostring(orNil(e.attempt)) == (h.attempt or '1')
    and e.outcome == h.state and tostring(orNil(e.exitCode) or '') == (h.exitCode or '')
    and (orNil(e.reason) or '') == (h.reason or '') and tonumber(orNil(e.startedAt)) == tonumber(h.startedAt)
    and tonumber(orNil(e.endedAt)) == tonumber(h.endedAt) and orNil(e.location) == h.location
end

local function shortSteps(h)
  local okSteps, steps = pcall(cjson.decode, h.steps or '[]')
  if not okSteps or type(steps) ~= 'table' then steps = {} end
  local labels = {}
  local okSpec, spec = pcall(cjson.decode, h.spec or 'null')
  if okSpec and type(spec) == 'table' and type(spec.order) == 'table' then
    for i, step in ipairs(spec.order) do labels[i] = type(step) == 'table' and type(step.label) == 'string' and step.label or '' end
  end
  local out = {}
  for i = 1, math.max(#steps, #labels) do
    local s = steps[i]
    if type(s) == 'table' and s.state ~= nil then
      local label = orNil(s.label)
      if label == nil or label == '' then label = labels[i] or '' end
      local startedAt, endedAt = tonumber(orNil(s.startedAt)), tonumber(orNil(s.endedAt))
      local took = (startedAt and endedAt) and (endedAt - startedAt) or cjson.null
      out[i] = { label, orNil(s.state) or 'pending', startedAt or cjson.null, took, orNil(s.exitCode) or cjson.null }
    elseif type(s) == 'table' then
      out[i] = s -- already short
    else
      out[i] = { labels[i] or '', 'skipped', cjson.null, cjson.null, cjson.null }
    end
  end
  if #out == 0 then return nil end
  return cjson.encode(out)
end

local compacted = 0
for i = 1, #ARGV do
  local key, runsKey = KEYS[2 * i - 1], KEYS[2 * i]
  local flat = redis.call('HGETALL', key)
  local h = {}
  for j = 1, #flat, 2 do h[flat[j]] = flat[j + 1] end
  if FINAL[h.state] and (h.pollMs ~= nil or h.spec ~= nil) then
    h.steps = shortSteps(h)
    if h.baseDir and h.file and string.match(h.file, '^(.*)/[^/]*$') == h.baseDir then h.baseDir = nil end
    if not (h.host and string.sub(h.host, 1, 5) == 'host:') and redis.call('LLEN', runsKey) == 1 then
      local ok, entry = pcall(cjson.decode, redis.call('LINDEX', runsKey, 0))
      if ok and sameRun(entry, h) then
        redis.call('DEL', runsKey)
        h.soleRun = '1'
        -- Where it ran is where it was placed (local): parseJobRecord reads host from location.
        if h.host == h.location then h.host = nil end
      end
    end
    -- What parseJobRecord reads when a field is missing need not be stored.
    if h.attempt == '1' then h.attempt = nil end
    if h.retries == '0' then h.retries = nil end
    local kept = {}
    for field, value in pairs(h) do
      if not DROP[field] and value ~= '' then
        kept[#kept + 1] = field
        kept[#kept + 1] = value
      end
    end
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(kept))
    compacted = compacted + 1
  end
end
return compacted
