-- Apply one micro-batch share to one or more SKUs, exactly once (see redis_window_store.py).
--
-- KEYS, four per SKU i (all hash-tagged by the SKU, so one SKU is one cluster slot):
--   KEYS[4i-3] meta hash   KEYS[4i-2] day ring   KEYS[4i-1] hour ring   KEYS[4i] seen zset
-- ARGV[1] JSON: one list per SKU of events, in Kafka order
--   [partition, offset, event_ts, event_ts text, day, hour, units, revenue_milli, price,
--    dedup_key, category|""]
-- ARGV[2..9]: grace_s, dedup_horizon_s, day_slots, hour_slots, idle_ttl_s, ttl_refresh_s,
--             base_margin_days, base_margin_hours
-- Reply: a JSON list with one list per SKU: [applied, fenced, duplicates, then one pair per late
--   event: its 0-based index in that SKU's list, the watermark_ts it was judged against (string)].
--
-- Cost matters (this runs for every order line): per SKU and call it is one HMGET, one
-- ZADD NX per event (the dedup check and the insert in one), one BITFIELD per touched day and
-- hour, and one HSET of the changed fields. The seen set is trimmed once the watermark is a
-- quarter horizon past the last trim, ring slots are zeroed only once a ring has wrapped, and
-- TTLs are refreshed every ttl_refresh_s of server time, not on every call. The event time also
-- arrives as text, for the per-event ZADD and the watermark: Redis 7.0 turns a Lua number into
-- an argument with snprintf('%.17g'), which was a tenth of the server's time. (Text for every
-- value cost the worker's Python more than it saved here.)

local call, format = redis.call, string.format
local SLOT = 12 -- bytes per bucket: units i32, orders u24, revenue_milli i40 (big-endian, saturating)
-- Zeros are built a slot at a time: Lua 5.1's string.rep appends its unit once per repeat.
local ZERO_SLOT = string.rep('\0', SLOT)
local function zeros(nbytes)
  return string.rep(ZERO_SLOT, math.floor(nbytes / SLOT)) .. string.rep('\0', nbytes % SLOT)
end
local batch = cjson.decode(ARGV[1])
local grace = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local day_slots = tonumber(ARGV[4])
local hour_slots = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local ttl_refresh = tonumber(ARGV[7])
local margin_d = tonumber(ARGV[8])
local margin_h = tonumber(ARGV[9])
local now = tonumber(call('TIME')[1])

local function fmt(x) -- exact text of a double (event times, prices)
  return format('%.17g', x)
end

local function int(x) -- exact text of an integer-valued double (partition numbers)
  return format('%d', x)
end
-- Other numbers passed to redis.call (per SKU: bit offsets, sums, offsets, day/hour indices)
-- are turned into text by Redis itself, in C, as '%.17g': exact for these integers, and cheaper
-- than formatting them here.

local function zero_slots(key, s0, s1)
  call('SETRANGE', key, s0 * SLOT, string.rep(ZERO_SLOT, s1 - s0 + 1))
end

-- The watermark bucket moved from old_top to top: the slots of buckets old_top+1..top held
-- expired buckets, unless the ring never wrapped (bucket - base < n: a slot past any written
-- one, since every written bucket is >= base).
local function clear(key, old_top, top, base, n)
  local lo = math.max(old_top + 1, base + n)
  if top < lo then return end
  if old_top < base + n then
    -- First wrap: the string grew slot by slot and Redis over-allocates growing strings (up to
    -- 2x); rewrite it once at its final size (SET allocates exactly, KEEPTTL keeps the TTL).
    local ring = call('GET', key) or ''
    if #ring < n * SLOT then ring = ring .. zeros(n * SLOT - #ring) end
    call('SET', key, ring, 'KEEPTTL')
  end
  if top - lo + 1 >= n then
    zero_slots(key, 0, n - 1) -- SETRANGE, not DEL: the key keeps its TTL
    return
  end
  local s0, s1 = (lo - base) % n, (top - base) % n
  if s0 <= s1 then
    zero_slots(key, s0, s1)
  else
    zero_slots(key, s0, n - 1)
    zero_slots(key, 0, s1)
  end
end

local function is_seen(sk, key, since)
  local score = call('ZSCORE', sk, key)
  return score ~= false and tonumber(score) >= since
end

local function accumulate(acc, bucket, units, rev)
  local s = acc[bucket]
  if s == nil then
    acc[bucket] = {units, 1, rev}
  else
    s[1] = s[1] + units; s[2] = s[2] + 1; s[3] = s[3] + rev
  end
end

local function flush(key, acc, base, n, old_top, top)
  -- a fresh SKU's ring is empty: as if its watermark sat just below the base
  clear(key, old_top or base - 1, top, base, n)
  for bucket, sums in pairs(acc) do
    if bucket > top - n then -- else it expired within this call
      local bit = ((bucket - base) % n) * SLOT * 8
      call('BITFIELD', key, 'OVERFLOW', 'SAT',
        'INCRBY', 'i32', bit, sums[1], 'INCRBY', 'u24', bit + 32, sums[2], 'INCRBY', 'i40', bit + 56, sums[3])
    end
  end
end

local META = {'wm', 'wd', 'wh', 'bd', 'bh', 'fs', 'ex', 'pr', 'cat', 'sm'}

local function apply_sku(mk, dk, hk, sk, events)
  -- One HMGET for the meta and the last offset of every partition in this share.
  local pfield, fields = {}, nil
  local p1 = events[1][1]
  pfield[p1] = 11
  for j = 2, #events do
    local p = events[j][1]
    if pfield[p] == nil then
      fields = fields or {unpack(META)}
      fields[11] = 'p' .. int(p1)
      pfield[p] = #fields + 1
      fields[#fields + 1] = 'p' .. int(p)
    end
  end
  local m
  if fields == nil then -- one partition: the common case, no argument table to build
    m = call('HMGET', mk, 'wm', 'wd', 'wh', 'bd', 'bh', 'fs', 'ex', 'pr', 'cat', 'sm', 'p' .. int(p1))
  else
    m = call('HMGET', mk, unpack(fields))
  end
  local wm, wd, wh, bd, bh, fs, sm
  local fresh = not m[1]
  if fresh then
    -- A new SKU, or one whose meta expired first: never reuse a stale ring or seen set.
    call('DEL', dk, hk, sk)
  else
    wm, wd, wh = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
    bd, bh, fs = tonumber(m[4]), tonumber(m[5]), tonumber(m[6])
    sm = tonumber(m[10]) or fs
  end
  local old_wd, old_wh = wd, wh
  local last, moved = {}, {}
  for p, k in pairs(pfield) do last[p] = m[k] and tonumber(m[k]) or -1 end
  local applied, fenced, dups = 0, 0, 0
  local late = {}
  local seen_new = {}
  local day_acc, hour_acc = {}, {}
  local price, cat, wm_text
  -- which meta fields changed (wm, wd, wh, sm; the fresh-SKU fields all at once)
  local c_wm, c_wd, c_wh, c_sm, c_fs, c_new = false, false, false, false, false, false
  local fresh_seen = {} -- ZADD arguments for a fresh SKU (no per-event check needed)

  for j, ev in ipairs(events) do
    local p, off, ts = ev[1], ev[2], ev[3]
    if off <= last[p] then
      fenced = fenced + 1
    else
      last[p] = off
      moved[p] = true
      local key = ev[10]
      local day, hour = ev[5], ev[6]
      local is_late = wm ~= nil and (ts < wm - grace or day < bd or hour < bh)
      -- (day < bd or hour < bh cannot happen while the base margins cover the grace period)
      -- duplicate: an applied event with this key and an event time within the horizon of
      -- max(watermark, this event's time)
      local prior = seen_new[key]
      local dup, rescore = false, false
      local since = wm ~= nil and math.max(wm, ts) - horizon
      if prior ~= nil then
        dup = prior >= since
        rescore = not fresh
      elseif fresh then
        dup = false
      elseif is_late then
        dup = is_seen(sk, key, since)
      elseif call('ZADD', sk, 'NX', ev[4], key) == 0 then
        -- already there; an entry older than the horizon is a lingering one, not a duplicate
        dup = is_seen(sk, key, since)
        rescore = true
      end
      if dup then
        dups = dups + 1
      elseif is_late then
        late[#late + 1] = j - 1
        late[#late + 1] = fmt(wm)
      else
        applied = applied + 1
        seen_new[key] = ts
        if fresh then
          fresh_seen[#fresh_seen + 1] = ev[4]; fresh_seen[#fresh_seen + 1] = key
        elseif rescore then
          call('ZADD', sk, ev[4], key)
        end
        if wm == nil then
          wm, wd, wh, fs, sm = ts, day, hour, ts, ts
          bd, bh = day - margin_d, hour - margin_h
          wm_text, c_new = ev[4], true
        end
        if ts >= wm then
          -- the latest event by event time (ties: the later offset) sets price and category
          if ts > wm then wm = ts; wm_text = ev[4]; c_wm = true end
          price = ev[9]
          if ev[11] ~= '' then cat = ev[11] end
        end
        if day > wd then wd = day; c_wd = true end
        if hour > wh then wh = hour; c_wh = true end
        if ts < fs then fs = ts; c_fs = true end
        if ts < sm then sm = ts; c_sm = true end
        accumulate(day_acc, day, ev[7], ev[8])
        accumulate(hour_acc, hour, ev[7], ev[8])
      end
    end
  end

  local hset = {}
  if applied > 0 then
    flush(dk, day_acc, bd, day_slots, old_wd, wd)
    flush(hk, hour_acc, bh, hour_slots, old_wh, wh)
    for i = 1, #fresh_seen, 2000 do
      call('ZADD', sk, unpack(fresh_seen, i, math.min(i + 1999, #fresh_seen)))
    end
    -- sm is a lower bound of the seen scores: trim once it lags the horizon by a quarter
    if wm - horizon > sm + horizon / 4 then
      call('ZREMRANGEBYSCORE', sk, '-inf', '(' .. fmt(wm - horizon))
      sm = wm - horizon
      c_sm = true
    end
    -- only the fields that changed: a smaller HSET
    if c_new then
      hset = {'wm', wm_text, 'wd', wd, 'wh', wh, 'bd', bd, 'bh', bh, 'fs', fs, 'sm', sm}
    else
      if c_wm then hset[#hset + 1] = 'wm'; hset[#hset + 1] = wm_text end
      if c_wd then hset[#hset + 1] = 'wd'; hset[#hset + 1] = wd end
      if c_wh then hset[#hset + 1] = 'wh'; hset[#hset + 1] = wh end
      if c_fs then hset[#hset + 1] = 'fs'; hset[#hset + 1] = fs end
      if c_sm then hset[#hset + 1] = 'sm'; hset[#hset + 1] = sm end
    end
    if price ~= nil and price ~= tonumber(m[8]) then hset[#hset + 1] = 'pr'; hset[#hset + 1] = fmt(price) end
    if cat ~= nil and cat ~= m[9] then hset[#hset + 1] = 'cat'; hset[#hset + 1] = cat end
  end
  for p, _ in pairs(moved) do
    hset[#hset + 1] = fields and fields[pfield[p]] or 'p' .. int(p)
    hset[#hset + 1] = last[p]
  end
  if #hset > 0 then
    local refreshed = tonumber(m[7])
    local refresh = fresh or refreshed == nil or now - refreshed >= ttl_refresh
    if refresh then
      hset[#hset + 1] = 'ex'
      hset[#hset + 1] = now
    end
    call('HSET', mk, unpack(hset))
    if refresh then
      -- The meta expires first, so a SKU is never left with a ring or seen set and no meta
      -- (the next call would see it fresh and delete them anyway).
      call('EXPIRE', mk, ttl)
      for _, key in ipairs({dk, hk, sk}) do call('EXPIRE', key, ttl + 60) end
    end
  end

  local out = {applied, fenced, dups}
  for _, v in ipairs(late) do out[#out + 1] = v end
  return out
end

local reply = {}
for i, events in ipairs(batch) do
  reply[i] = apply_sku(KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i], events)
end
-- One bulk string: far cheaper for the client to parse than a long multi-bulk reply.
return cjson.encode(reply)
