-- Read the last L buckets of one grain (day or hour ring) for one or more SKUs, in one call.
--
-- KEYS, two per SKU i: KEYS[2i-1] meta hash, KEYS[2i] ring (day or hour) of that SKU
-- ARGV[1] grain: 'd' or 'h'; ARGV[2] ring slots n; ARGV[3] length L;
-- ARGV[3+i] end bucket for SKU i, or '' for its watermark bucket
-- Reply: {header, bytes}. header is JSON, one list per SKU: [wm, fs, cat, pr, wd, wh] (strings,
--   false for an unknown SKU), end bucket, lo, hi (the window's retained buckets are lo..hi;
--   lo > hi: none). bytes concatenates, SKU after SKU, 12 bytes per bucket lo..hi.

local SLOT = 12 -- bytes per bucket (see window_apply.lua)
local ZERO_SLOT = string.rep('\0', SLOT) -- padding a slot at a time (Lua 5.1's string.rep is per unit)
local function zeros(nbytes)
  return string.rep(ZERO_SLOT, math.floor(nbytes / SLOT)) .. string.rep('\0', nbytes % SLOT)
end
local grain = ARGV[1]
local n = tonumber(ARGV[2])
local length = tonumber(ARGV[3])

local function int(x)
  return string.format('%d', x)
end

local function slice(key, s0, s1)
  local want = (s1 - s0 + 1) * SLOT
  local got = redis.call('GETRANGE', key, int(s0 * SLOT), int((s1 + 1) * SLOT - 1))
  if #got < want then got = got .. zeros(want - #got) end
  return got
end

local header, chunks = {}, {}
local nskus = #KEYS / 2
for i = 1, nskus do
  local mk, rk = KEYS[2 * i - 1], KEYS[2 * i]
  local m = redis.call('HMGET', mk, 'wm', 'fs', 'cat', 'pr', 'wd', 'wh', 'bd', 'bh')
  local top, base
  if m[1] then
    if grain == 'd' then
      top, base = tonumber(m[5]), tonumber(m[7])
    else
      top, base = tonumber(m[6]), tonumber(m[8])
    end
  end
  local arg_end = ARGV[3 + i]
  local e
  if arg_end ~= '' then e = tonumber(arg_end) else e = top end
  local row = {m[1], m[2], m[3], m[4], m[5], m[6], e or false, 1, 0}
  if top ~= nil then
    local lo = math.max(e - length + 1, top - n + 1)
    local hi = math.min(e, top)
    if lo <= hi then
      row[8], row[9] = lo, hi
      local s0, s1 = (lo - base) % n, (hi - base) % n
      if s0 <= s1 then
        chunks[#chunks + 1] = slice(rk, s0, s1)
      else
        chunks[#chunks + 1] = slice(rk, s0, n - 1)
        chunks[#chunks + 1] = slice(rk, 0, s1)
      end
    end
  end
  header[i] = row
end
return {cjson.encode(header), table.concat(chunks)}
