-- Read the last L buckets of one or both grains (day and hour rings) for one or more SKUs, in
-- one call.
--
-- ARGV[1] grains: 'd', 'h' or 'dh'; ARGV[2], ARGV[3] ring slots of the day and hour rings;
-- ARGV[4], ARGV[5] lengths L of the day and hour windows;
-- ARGV[5+i] end bucket for SKU i ('' for its watermark bucket; one grain only, else all '').
-- KEYS per SKU i: its meta hash, then the ring of each grain read (day before hour).
-- Reply: {header, bytes of each grain}. header is JSON, one list per SKU: [wm, fs, cat, pr, wd,
--   wh] (strings, false for an unknown SKU), then per grain: end bucket, lo, hi (the window's
--   retained buckets are lo..hi; lo > hi: none). The bytes of a grain concatenate, SKU after
--   SKU, 12 bytes per bucket lo..hi.

local SLOT = 12 -- bytes per bucket (see window_apply.lua)
local ZERO_SLOT = string.rep('\0', SLOT) -- padding a slot at a time (Lua 5.1's string.rep is per unit)
local function zeros(nbytes)
  return string.rep(ZERO_SLOT, math.floor(nbytes / SLOT)) .. string.rep('\0', nbytes % SLOT)
end
local grains = ARGV[1]
local read_day, read_hour = grains:find('d') ~= nil, grains:find('h') ~= nil
local per_sku = 1 + (read_day and 1 or 0) + (read_hour and 1 or 0)
local day_slots, hour_slots = tonumber(ARGV[2]), tonumber(ARGV[3])
local day_length, hour_length = tonumber(ARGV[4]), tonumber(ARGV[5])

local function int(x)
  return string.format('%d', x)
end

local function slice(key, s0, s1)
  local want = (s1 - s0 + 1) * SLOT
  local got = redis.call('GETRANGE', key, int(s0 * SLOT), int((s1 + 1) * SLOT - 1))
  if #got < want then got = got .. zeros(want - #got) end
  return got
end

-- Append one grain's (end, lo, hi) to row and its retained buckets to chunks.
local function window(row, chunks, key, top, base, n, length, arg_end)
  local e
  if arg_end ~= '' then e = tonumber(arg_end) else e = top end
  local at = #row
  row[at + 1], row[at + 2], row[at + 3] = e or false, 1, 0
  if top == nil then return end
  local lo = math.max(e - length + 1, top - n + 1)
  local hi = math.min(e, top)
  if lo > hi then return end
  row[at + 2], row[at + 3] = lo, hi
  local s0, s1 = (lo - base) % n, (hi - base) % n
  if s0 <= s1 then
    chunks[#chunks + 1] = slice(key, s0, s1)
  else
    chunks[#chunks + 1] = slice(key, s0, n - 1)
    chunks[#chunks + 1] = slice(key, 0, s1)
  end
end

local header, day_chunks, hour_chunks = {}, {}, {}
for i = 1, #KEYS / per_sku do
  local k = (i - 1) * per_sku + 1
  local m = redis.call('HMGET', KEYS[k], 'wm', 'fs', 'cat', 'pr', 'wd', 'wh', 'bd', 'bh')
  local known = m[1] ~= false
  local row = {m[1], m[2], m[3], m[4], m[5], m[6]}
  local arg_end = ARGV[5 + i]
  if read_day then
    k = k + 1
    window(row, day_chunks, KEYS[k], known and tonumber(m[5]) or nil, tonumber(m[7]), day_slots, day_length, arg_end)
  end
  if read_hour then
    k = k + 1
    window(row, hour_chunks, KEYS[k], known and tonumber(m[6]) or nil, tonumber(m[8]), hour_slots, hour_length, arg_end)
  end
  header[i] = row
end
return {cjson.encode(header), table.concat(day_chunks), table.concat(hour_chunks)}
