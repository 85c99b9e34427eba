-- log_range.lua — a registry script (server/registry_log.c), run with EVALSHA after
-- prelude.lua (scripts/embed-lua joins them).
--
-- ARGV: P, room, 'a' (ascending) | 'd' (descending), low, high, count,
-- max bytes. Read-only. Returns {the log's oldest entry (id, q and e only;
-- or an empty array), the entries of [low, high] in the asked order, cut}:
-- at most count entries, and no more than max bytes of field values (the
-- first entry whatever its size); cut is 1 when an entry was left out for
-- bytes. Bounds use XRANGE syntax ("(" for exclusive, "-" and "+"). The
-- range is read in growing chunks, so the script itself never holds more
-- than the answer and one chunk.
--
-- Tombstones. An entry marked in room:{R}:red (redact.lua: id -> {"by",
-- "at"}) is answered as its tombstone: the same id and fields q e t o s n,
-- no c, h = the header lines x-redacted-by and x-redacted-at (escaped by
-- STOMP 1.2 rules, as redact.c writes them for MySQL), an empty b. Every
-- reader of the log (history, resume, the relay's gap fills and catch-ups)
-- reads it through this script, so none ever hands out a redacted body.
local key = rkey(ARGV[2], 'log')
local red = rkey(ARGV[2], 'red')
local has_red = redis.call('EXISTS', red) == 1
local esc = {['\\'] = '\\\\', [':'] = '\\c', ['\n'] = '\\n', ['\r'] = '\\r'}
local function tombstones(r)
  if not has_red or #r == 0 then return r end
  local ids = {}
  for i, e in ipairs(r) do ids[i] = e[1] end
  local marks = redis.call('HMGET', red, unpack(ids))
  for i, e in ipairs(r) do
    if marks[i] then
      local m = cjson.decode(marks[i])
      local f, keep = e[2], {}
      for j = 1, #f, 2 do
        local k = f[j]
        if k == 'q' or k == 'e' or k == 't' or k == 'o' or k == 's' or k == 'n' then
          keep[#keep + 1] = k
          keep[#keep + 1] = f[j + 1]
        end
      end
      keep[#keep + 1] = 'h'
      keep[#keep + 1] = 'x-redacted-by:' .. (string.gsub(tostring(m.by), '[\\:\n\r]', esc)) ..
                        '\nx-redacted-at:' .. string.format('%.0f', tonumber(m.at) or 0) .. '\n'
      keep[#keep + 1] = 'b'
      keep[#keep + 1] = ''
      e[2] = keep
    end
  end
  return r
end
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
if first[1] then
  local f, keep = first[1][2], {}
  for i = 1, #f, 2 do
    if f[i] == 'q' or f[i] == 'e' then keep[#keep + 1] = f[i]; keep[#keep + 1] = f[i + 1] end
  end
  first = {{first[1][1], keep}}
end
local asc, low, high = ARGV[3] == 'a', ARGV[4], ARGV[5]
local count, maxb = tonumber(ARGV[6]), tonumber(ARGV[7])
local out, bytes, cut, chunk = {}, 0, 0, 16
while #out < count and cut == 0 do
  local want = math.min(chunk, count - #out)
  local r
  if asc then r = redis.call('XRANGE', key, low, high, 'COUNT', want)
  else r = redis.call('XREVRANGE', key, high, low, 'COUNT', want) end
  tombstones(r)
  for _, e in ipairs(r) do
    local size = 0
    for j = 2, #e[2], 2 do size = size + #e[2][j] end
    if #out > 0 and bytes + size > maxb then cut = 1; break end
    out[#out + 1] = e
    bytes = bytes + size
    if asc then low = '(' .. e[1] else high = '(' .. e[1] end
  end
  if #r < want then break end
  chunk = math.min(chunk * 2, 1024)
end
return {first, out, cut}
