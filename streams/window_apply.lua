-- Apply one micro-batch share to one or more SKUs, exactly once (see redis_window_store.py).
--
-- KEYS, three per SKU i (all hash-tagged by the SKU, so one SKU is one cluster slot):
--   KEYS[3i-2] meta hash   KEYS[3i-1] day ring   KEYS[3i] hour ring
-- ARGV[1] JSON: one list per SKU of events, in Kafka order
--   [partition, offset, event_ts, day, hour, units, revenue_milli, price, '#' .. dedup_key,
--    category|""]
-- ARGV[2..9]: grace_s, dedup_horizon_s, day_slots, hour_slots, idle_ttl_s, ttl_refresh_s,
--             base_margin_days, base_margin_hours
-- Reply: a JSON list with one list per SKU: [applied, fenced, duplicates, then one pair per late
--   event: its 0-based index in that SKU's list, the watermark_ts it was judged against (string)].
--
-- The meta hash holds (see redis_window_store.py):
--   'm'           the SKU's meta, packed: META_FMT (watermark ts, first seen ts, dedup trim mark,
--                 last price, last TTL refresh; watermark day and hour, ring base day and hour)
--                 followed by the category's bytes
--   'p' .. p      the last offset applied from partition p
--   '#' .. key    a dedup key's event ts, packed as a big-endian double
--
-- Cost matters (this runs for every order line). Per SKU and call it is one HMGET (the meta,
-- the partitions' last offsets and the events' dedup keys), one BITFIELD per grain (its touched
-- buckets, and the zeroing of the one or two slots that expire as the watermark moves on) and
-- one HSET (the meta, the offsets and the new dedup keys). A command called from Lua costs about
-- as much again as its own work (arguments, lookup, reply), so the number of commands, keys,
-- fields and numbers turned into text is most of the time:
-- - the meta is one packed field, not ten: one listpack lookup instead of ten, no text numbers
--   to parse or format (Redis 7.0 formats every Lua number passed to a command with
--   snprintf('%.17g'); the dedup keys' event times are packed too);
-- - the dedup keys live in the meta hash, not in a set of their own (that was a command per
--   event and another key per SKU); they are trimmed with one HGETALL once the watermark is a
--   quarter horizon past the last trim;
-- - ring slots are zeroed only once a ring has wrapped, and TTLs are refreshed every
--   ttl_refresh_s of server time, not on every call;
-- - a known SKU with a single event, the usual case, has its own path without the general
--   path's tables (apply_one).
-- A hash written before the meta was packed (fields 'wm', 'wd', ...; text dedup times) is read
-- once and rewritten packed by the general path (read_legacy).

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

local function int(x) -- exact text of an integer-valued double (partitions, offsets)
  return format('%d', x)
end
-- The ring's bit offsets and sums are passed as numbers: Redis turns them into text itself.

local pack, unpack_packed = struct.pack, struct.unpack
local META_FMT = '>dddddi4i4i4i4' -- wm fs sm pr ex, wd wh bd bh; then the category's bytes
local META_LEN = 56
local NAN = 0 / 0 -- a last price not known yet

local function meta_blob(wm, fs, sm, pr, ex, wd, wh, bd, bh, cat)
  return pack(META_FMT, wm, fs, sm, pr, ex, wd, wh, bd, bh) .. cat
end

-- wm fs sm pr ex wd wh bd bh cat of a packed meta
local function read_blob(blob)
  local wm, fs, sm, pr, ex, wd, wh, bd, bh = unpack_packed(META_FMT, blob)
  return wm, fs, sm, pr, ex, wd, wh, bd, bh, string.sub(blob, META_LEN + 1)
end

-- The same from a hash written before the meta was packed; nil when there is none (a new SKU).
local LEGACY = {'wm', 'fs', 'sm', 'pr', 'ex', 'wd', 'wh', 'bd', 'bh', 'cat'}
local function read_legacy(mk)
  local m = call('HMGET', mk, unpack(LEGACY))
  if not m[1] then return nil end
  local fs = tonumber(m[2])
  return tonumber(m[1]), fs, tonumber(m[3]) or fs, tonumber(m[4]) or NAN, tonumber(m[5]) or 0,
    tonumber(m[6]), tonumber(m[7]), tonumber(m[8]), tonumber(m[9]), m[10] or ''
end

-- A dedup key's event ts: packed (8 bytes), or text when written before (always longer: a
-- timestamp's text has 10+ characters).
local function seen_at(v)
  if not v then return nil end
  if #v == 8 then return (unpack_packed('>d', v)) end
  return tonumber(v)
end

local partition_fields = {}
local function pfield_of(p) -- the meta field of a partition's last offset: 'p' .. p
  local f = partition_fields[p]
  if f == nil then
    f = 'p' .. int(p)
    partition_fields[p] = f
  end
  return f
end

-- Zero slots s0..s1 of a ring: as BITFIELD SETs in ops when one or two (the watermark's usual
-- step), else one SETRANGE.
local function zero_slots(key, s0, s1, ops)
  if s1 - s0 < 2 then
    for s = s0, s1 do
      local bit = s * SLOT * 8
      local k = #ops
      ops[k + 1], ops[k + 2], ops[k + 3], ops[k + 4] = 'SET', 'i64', bit, '0'
      ops[k + 5], ops[k + 6], ops[k + 7], ops[k + 8] = 'SET', 'i32', bit + 64, '0'
    end
  else
    call('SETRANGE', key, s0 * SLOT, string.rep(ZERO_SLOT, s1 - s0 + 1))
  end
end

-- The watermark bucket moved from old_top to top: the slots of buckets old_top+1..top held
-- expired buckets, unless the ring never wrapped (bucket - base < n: a slot past any written
-- one, since every written bucket is >= base). keep_top: the caller SETs top's slot itself.
local function clear(key, old_top, top, base, n, ops, keep_top)
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
    zero_slots(key, 0, n - 1, ops)
    return
  end
  if keep_top then
    top = top - 1
    if top < lo then return end
  end
  local s0, s1 = (lo - base) % n, (top - base) % n
  if s0 <= s1 then
    zero_slots(key, s0, s1, ops)
  else
    zero_slots(key, s0, n - 1, ops)
    zero_slots(key, 0, s1, ops)
  end
end

local UNPACK_MAX = 7000 -- arguments per redis.call (Lua's C stack holds about 8000)

local function call_chunked(cmd, key, args, step)
  -- cmd key args... in as many calls as the C stack needs (step: the arguments of one item)
  local per = UNPACK_MAX - UNPACK_MAX % step
  local replies = {}
  for i = 1, #args, per do
    local r = call(cmd, key, unpack(args, i, math.min(i + per - 1, #args)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do replies[#replies + 1] = v end
    end
  end
  return replies
end

-- Forget dedup keys whose event time is before cut.
local function trim_seen(mk, cut)
  local all, old = call('HGETALL', mk), {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.byte(f, 1) == 35 and seen_at(all[i + 1]) < cut then old[#old + 1] = f end
  end
  if #old > 0 then call_chunked('HDEL', mk, old, 1) end
end

local function accumulate(acc, bucket, units, rev)
  local s = acc[bucket]
  if s == nil then
    acc[bucket] = {units, 1, rev}
  else
    s[1] = s[1] + units; s[2] = s[2] + 1; s[3] = s[3] + rev
  end
end

local function bitfield(key, ops)
  local per = UNPACK_MAX - UNPACK_MAX % 4 -- four arguments an operation
  for i = 1, #ops, per do
    call('BITFIELD', key, 'OVERFLOW', 'SAT', unpack(ops, i, math.min(i + per - 1, #ops)))
  end
end

-- Append the INCRBYs of one bucket's sums to ops, unless the bucket expired within this call
-- (it would share a ring slot with the newest bucket).
-- (op: 'INCRBY', or 'SET' for a slot known to be zero)
local function add_sums(ops, bucket, units, orders, rev, base, n, top, op)
  if bucket <= top - n then return end
  local bit = ((bucket - base) % n) * SLOT * 8
  local k = #ops
  op = op or 'INCRBY'
  ops[k + 1], ops[k + 2], ops[k + 3], ops[k + 4] = op, 'i32', bit, units
  ops[k + 5], ops[k + 6], ops[k + 7], ops[k + 8] = op, 'u24', bit + 32, orders
  ops[k + 9], ops[k + 10], ops[k + 11], ops[k + 12] = op, 'i40', bit + 56, rev
end

-- Zero one ring's expiring slots and add its bucket sums (acc: bucket -> {units, orders,
-- revenue}), in one BITFIELD.
local function flush(key, acc, base, n, old_top, top)
  local ops = {}
  -- a fresh SKU's ring is empty: as if its watermark sat just below the base
  clear(key, old_top or base - 1, top, base, n, ops)
  for bucket, sums in pairs(acc) do add_sums(ops, bucket, sums[1], sums[2], sums[3], base, n, top) end
  bitfield(key, ops)
end

-- flush for one event of a known SKU
local function flush_one(key, bucket, units, rev, base, n, old_top)
  local ops = {}
  if bucket > old_top then
    -- a new newest bucket: its slot is zero (never written, or expired now), so SET it rather
    -- than zero it and add to it
    clear(key, old_top, bucket, base, n, ops, true)
    add_sums(ops, bucket, units, 1, rev, base, n, bucket, 'SET')
  else
    add_sums(ops, bucket, units, 1, rev, base, n, old_top)
  end
  bitfield(key, ops)
end

-- Write hset (field, value, ...: the partitions' offsets, and the packed meta when it changed)
-- and the new dedup keys (seen_add, the same form) in one HSET, and refresh the TTLs when asked.
local function write_meta(mk, dk, hk, hset, seen_add, refresh)
  if #seen_add + #hset <= UNPACK_MAX then
    for _, v in ipairs(seen_add) do hset[#hset + 1] = v end
  else
    call_chunked('HSET', mk, seen_add, 2)
  end
  call('HSET', mk, unpack(hset))
  if refresh then
    -- The meta expires first, so a SKU is never left with a ring and no meta (the next call
    -- would see it fresh and delete them anyway).
    call('EXPIRE', mk, ttl)
    call('EXPIRE', dk, ttl + 60)
    call('EXPIRE', hk, ttl + 60)
  end
end

local apply_sku

-- The two rules both paths share. A duplicate: an event with this key was applied at seen_ts
-- (nil: none) within the horizon of max(watermark, this event's time); an older entry is a
-- lingering one (not trimmed yet), not a duplicate. Late: behind the watermark by more than the
-- grace period (day < bd or hour < bh cannot happen while the base margins cover the grace).
local function is_dup(seen_ts, wm, ts)
  return seen_ts ~= nil and seen_ts >= math.max(wm, ts) - horizon
end

local function is_late(wm, bd, bh, ts, day, hour)
  return ts < wm - grace or day < bd or hour < bh
end

-- A known SKU with one event in this call, the usual case (at 5k orders/s over thousands of
-- SKUs, nearly every SKU of a batch): apply_sku's rules without its tables. The contract tests
-- replay the same stream one event per call and in batches.
local function apply_one(mk, dk, hk, ev)
  local pf, key = pfield_of(ev[1]), ev[9]
  local m = call('HMGET', mk, 'm', pf, key)
  if not m[1] then return apply_sku(mk, dk, hk, {ev}, m) end
  local off, ts = ev[2], ev[3]
  if m[2] and off <= tonumber(m[2]) then return {0, 1, 0} end
  local wm, fs, sm, pr, ex, wd, wh, bd, bh, cat = read_blob(m[1])
  local day, hour = ev[4], ev[5]
  local out, applied = nil, false
  if is_dup(seen_at(m[3]), wm, ts) then
    out = {0, 0, 1}
  elseif is_late(wm, bd, bh, ts, day, hour) then
    out = {0, 0, 0, 0, fmt(wm)}
  else
    out, applied = {1, 0, 0}, true
    if ts >= wm then
      wm, pr = ts, ev[8]
      if ev[10] ~= '' then cat = ev[10] end
    end
    flush_one(dk, day, ev[6], ev[7], bd, day_slots, wd)
    flush_one(hk, hour, ev[6], ev[7], bh, hour_slots, wh)
    if day > wd then wd = day end
    if hour > wh then wh = hour end
    if ts < fs then fs = ts end
    if ts < sm then sm = ts end
    if wm - horizon > sm + horizon / 4 then
      trim_seen(mk, wm - horizon)
      sm = wm - horizon
    end
  end
  local refresh = now - ex >= ttl_refresh
  if refresh then ex = now end
  local hset = {pf, int(off)}
  if applied or refresh then
    hset[3], hset[4] = 'm', meta_blob(wm, fs, sm, pr, ex, wd, wh, bd, bh, cat)
  end
  if applied then hset[#hset + 1], hset[#hset + 2] = key, pack('>d', ts) end
  write_meta(mk, dk, hk, hset, {}, refresh)
  return out
end

apply_sku = function(mk, dk, hk, events, m)
  -- One HMGET for the packed meta, the last offset of every partition in this share and the
  -- dedup key of every event in it; a single event comes from apply_one, with that reply (m:
  -- 'm', its partition, its key) read.
  local pfield, kfield
  local first = events[1]
  if m then
    pfield, kfield = {[first[1]] = 2}, {[first[9]] = 3}
  else
    local fields = {'m'}
    pfield, kfield = {}, {}
    for _, ev in ipairs(events) do
      local p = ev[1]
      if pfield[p] == nil then
        fields[#fields + 1] = pfield_of(p)
        pfield[p] = #fields
      end
    end
    for _, ev in ipairs(events) do
      local key = ev[9]
      if kfield[key] == nil then
        fields[#fields + 1] = key
        kfield[key] = #fields
      end
    end
    m = call_chunked('HMGET', mk, fields, 1)
  end
  local wm, fs, sm, pr, ex, wd, wh, bd, bh, cat
  local legacy = false
  if m[1] then
    wm, fs, sm, pr, ex, wd, wh, bd, bh, cat = read_blob(m[1])
  else
    wm, fs, sm, pr, ex, wd, wh, bd, bh, cat = read_legacy(mk)
    legacy = wm ~= nil
  end
  local fresh = wm == nil
  if fresh then
    -- A new SKU, or one whose meta expired first: never reuse a stale ring.
    call('DEL', dk, hk)
  end
  local old_wd, old_wh = wd, wh
  local last, moved = {}, {}
  for p, k in pairs(pfield) do last[p] = m[k] and tonumber(m[k]) or -1 end
  local applied, fenced, dups = 0, 0, 0
  local late = {}
  local seen_new = {}
  local day_acc, hour_acc = {}, {}
  local seen_add = {} -- HSET arguments: the applied events' dedup keys and event times

  for j, ev in ipairs(events) do
    local p, off, ts = ev[1], ev[2], ev[3]
    if off <= last[p] then
      fenced = fenced + 1
    else
      last[p] = off
      moved[p] = true
      local key = ev[9]
      local day, hour = ev[4], ev[5]
      local late_here = wm ~= nil and is_late(wm, bd, bh, ts, day, hour)
      -- applied earlier in this call, else as stored (a fresh SKU has nothing stored)
      local seen_ts = seen_new[key]
      if seen_ts == nil and not fresh then seen_ts = seen_at(m[kfield[key]]) end
      if is_dup(seen_ts, wm, ts) then
        dups = dups + 1
      elseif late_here then
        late[#late + 1] = j - 1
        late[#late + 1] = fmt(wm)
      else
        applied = applied + 1
        seen_new[key] = ts
        seen_add[#seen_add + 1] = key; seen_add[#seen_add + 1] = pack('>d', ts)
        if wm == nil then
          wm, wd, wh, fs, sm = ts, day, hour, ts, ts
          bd, bh = day - margin_d, hour - margin_h
          pr, ex, cat = NAN, 0, ''
        end
        if ts >= wm then
          -- the latest event by event time (ties: the later offset) sets price and category
          wm, pr = ts, ev[8]
          if ev[10] ~= '' then cat = ev[10] end
        end
        if day > wd then wd = day end
        if hour > wh then wh = hour end
        if ts < fs then fs = ts end
        if ts < sm then sm = ts end
        accumulate(day_acc, day, ev[6], ev[7])
        accumulate(hour_acc, hour, ev[6], ev[7])
      end
    end
  end

  if applied > 0 then
    flush(dk, day_acc, bd, day_slots, old_wd, wd)
    flush(hk, hour_acc, bh, hour_slots, old_wh, wh)
    -- sm is a lower bound of the dedup keys' event times: trim once it lags the horizon by a
    -- quarter (before this call's keys are written: none of them is older than the horizon)
    if wm - horizon > sm + horizon / 4 then
      trim_seen(mk, wm - horizon)
      sm = wm - horizon
    end
  end
  local offsets = {}
  for p, _ in pairs(moved) do
    offsets[#offsets + 1] = pfield_of(p)
    offsets[#offsets + 1] = int(last[p])
  end
  if #offsets > 0 or legacy then
    local refresh = fresh or now - ex >= ttl_refresh
    if refresh then ex = now end
    local hset = {}
    if applied > 0 or legacy or refresh then
      hset[1], hset[2] = 'm', meta_blob(wm, fs, sm, pr, ex, wd, wh, bd, bh, cat)
    end
    for _, v in ipairs(offsets) do hset[#hset + 1] = v end
    write_meta(mk, dk, hk, hset, seen_add, refresh)
    if legacy then call('HDEL', mk, unpack(LEGACY)) end
  end

  local out = {applied, fenced, dups}
  for _, v in ipairs(late) do out[#out + 1] = v end
  return out
end

local reply = {}
for i, events in ipairs(batch) do
  if #events == 1 then
    reply[i] = apply_one(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], events[1])
  else
    reply[i] = apply_sku(KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], events)
  end
end
-- One bulk string: far cheaper for the client to parse than a long multi-bulk reply.
return cjson.encode(reply)
