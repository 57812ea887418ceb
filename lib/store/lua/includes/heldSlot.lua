--[[
  heldSlot (included): the location whose slot a job holds, from its record: `slot` is that
  location (local, host:<name>: grantFrom writes it), and the slot set's name is made from it
  with slotSetKey (includes/keys.lua). A record written before the location was stored there
  holds the set's key name instead; that is never used as a key: its `host` names the same
  location.
  Returns the location, or nil when the job holds no slot.
]]
local function heldSlot(prefix, slot, host)
  if not slot then return nil end
  if string.sub(slot, 1, #prefix) == prefix then return host or 'local' end
  return slot
end
