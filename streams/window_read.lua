-- Read the last L buckets of one or both grains (day and hour rings) for one or more SKUs, in
-- one call.
--
-- ARGV[1] grains: 'd', 'h' or 'dh'; ARGV[2], ARGV[3] ring slots of the day and hour rings;
-- ARGV[4], ARGV[5] lengths L of the day and hour windows;
-- ARGV[5+i] end bucket for SKU i ('' for its watermark bucket; one grain only, else all '').
-- KEYS per SKU i: its meta hash, then the ring of each grain read (day before hour).
-- Reply: {header, bytes of each grain, metas}. header is JSON, one list per SKU: [category
--   (false for an unknown SKU)], then per grain: end bucket, lo, hi (the window's retained
--   buckets are lo..hi; lo > hi: none). The bytes of a grain concatenate, SKU after SKU, 12 bytes
--   per bucket lo..hi. metas concatenates the packed meta (window_apply.lua's META_FMT, without
--   the category) of every known SKU.

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

local META_FMT, META_LEN = '>dddddi4i4i4i4', 56 -- as window_apply.lua writes it
local LEGACY = {'wm', 'fs', 'sm', 'pr', 'ex', 'wd', 'wh', 'bd', 'bh', 'cat'}

-- The packed meta (without its category) and the category of a SKU; nil for an unknown one. A
-- hash written before the meta was packed is packed here (window_apply.lua rewrites it).
local function meta_of(key)
  local blob = redis.call('HGET', key, 'm')
  if blob then return string.sub(blob, 1, META_LEN), string.sub(blob, META_LEN + 1) end
  local m = redis.call('HMGET', key, unpack(LEGACY))
  if not m[1] then return nil end
  local fs = tonumber(m[2])
  return struct.pack(META_FMT, tonumber(m[1]), fs, tonumber(m[3]) or fs, tonumber(m[4]) or 0 / 0,
    tonumber(m[5]) or 0, tonumber(m[6]), tonumber(m[7]), tonumber(m[8]), tonumber(m[9])), m[10] or ''
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

local header, day_chunks, hour_chunks, metas = {}, {}, {}, {}
for i = 1, #KEYS / per_sku do
  local k = (i - 1) * per_sku + 1
  local fixed, cat = meta_of(KEYS[k])
  local known = fixed ~= nil
  local wd, wh, bd, bh
  if known then
    metas[#metas + 1] = fixed
    wd, wh, bd, bh = select(6, struct.unpack(META_FMT, fixed))
  end
  local row = {known and cat or false}
  local arg_end = ARGV[5 + i]
  if read_day then
    k = k + 1
    window(row, day_chunks, KEYS[k], wd, bd, day_slots, day_length, arg_end)
  end
  if read_hour then
    k = k + 1
    window(row, hour_chunks, KEYS[k], wh, bh, hour_slots, hour_length, arg_end)
  end
  header[i] = row
end
return {cjson.encode(header), table.concat(day_chunks), table.concat(hour_chunks), table.concat(metas)}
