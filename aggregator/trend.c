/*
 * trend.c - the figures derived from the window hashes rather than counted from events:
 * rolling 24 h / 7 d / 30 d sums, the EWMA baseline of daily events with its z-score and
 * anomaly flag, and the sector risk score (docs/aggregator.md, "Rolling figures, trend
 * and risk"; keys in docs/redis-keys.md).
 *
 * They are computed in Redis, by agg_trend_script, once per flush for every sector the
 * flush touched and once nationally, queued after the flush's window increments inside
 * its MULTI/EXEC: the script reads the hour and day hashes as they stand with this
 * flush applied. That is what makes them exact and deterministic:
 *   - the anchor ("now" of the rolling figures and "today" of the trend) is event time:
 *     the greatest event time (capped at receive time + max_future) of any event that
 *     reached the sector's hour windows, kept in the roll hash and only ever raised, so
 *     it is a function of the set of counted events, not of wall clock or flush borders;
 *   - a sector's windows change only in flushes that touch the sector, and each of those
 *     recomputes its figures from Redis, so once the input is consumed the figures equal
 *     a function of the final windows. Nationally, every flush with events recomputes;
 *     members of one group run the script inside their own transactions, which Redis
 *     serialises, so the last one sees every member's increments.
 * Crashes change nothing: the script runs in the flush's transaction, applied with the
 * increments and offsets or not at all. Computing the figures in C instead would read the
 * national windows outside the transaction, and miss the increments of a member whose
 * transaction lands in between (docs/aggregator.md). tests/unit/test_trend.c runs the
 * script in a real redis-server against figures it computes itself.
 */
#include <string.h>

#include "aggregator.h"
#include "tm/tm_tables.h"

/*
 * Dates are computed in Lua from day numbers (days since 1970-01-01; Redis's Lua has no
 * os.date): civil_from_days by Howard Hinnant. Numbers are doubles: ms and counts stay
 * far below 2^53, so sums are exact; the trend's floating-point steps run in a fixed order.
 */
const char agg_trend_script[] =
    "local prefix, anchor, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local alpha, nb, k = tonumber(ARGV[4]) / 100, tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local weight, member = tonumber(ARGV[7]), ARGV[8]\n"
    "local old = tonumber(redis.call('HGET', KEYS[1], 'anchor_ms') or '')\n"
    "if old and old > anchor then anchor = old end\n"
    "local function fl(a, b) return math.floor(a / b) end\n"
    "local function day_label(days)\n"
    "  local z = days + 719468\n"
    "  local era = fl(z, 146097)\n"
    "  local doe = z - era * 146097\n"
    "  local yoe = fl(doe - fl(doe, 1460) + fl(doe, 36524) - fl(doe, 146096), 365)\n"
    "  local doy = doe - (365 * yoe + fl(yoe, 4) - fl(yoe, 100))\n"
    "  local mp = fl(5 * doy + 2, 153)\n"
    "  local d = doy - fl(153 * mp + 2, 5) + 1\n"
    "  local m = mp < 10 and mp + 3 or mp - 9\n"
    "  local y = yoe + era * 400\n"
    "  if m <= 2 then y = y + 1 end\n"
    "  return string.format('%04d%02d%02d', y, m, d)\n"
    "end\n"
    "local function get(key)\n"
    "  local v = redis.call('HMGET', key, 'events', 'count', 'sev:low', 'sev:medium',\n"
    "                       'sev:high', 'sev:critical')\n"
    "  for i = 1, 6 do v[i] = tonumber(v[i]) or 0 end\n"
    "  return v\n"
    "end\n"
    "local function add(sum, v) for i = 1, 6 do sum[i] = sum[i] + v[i] end end\n"
    "local hour, day = fl(anchor, 3600000), fl(anchor, 86400000)\n"
    "local h24, d7, d30, daily = {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {}\n"
    "for h = hour - 23, hour do\n"
    "  local d = fl(h, 24)\n"
    "  add(h24, get(prefix .. ':1h:' .. day_label(d) .. string.format('%02d', h - d * 24)))\n"
    "end\n"
    "local first = math.min(day - 29, day - nb)\n"
    "for d = first, day do\n"
    "  local v = get(prefix .. ':1d:' .. day_label(d))\n"
    "  if d > day - 30 then add(d30, v) end\n"
    "  if d > day - 7 then add(d7, v) end\n"
    "  daily[d] = v[1]\n"
    "end\n"
    "local mu, var, hist = 0, 0, 0\n"
    "for d = day - nb, day - 1 do\n"
    "  local x = daily[d]\n"
    "  if hist > 0 then\n"
    "    local diff = x - mu\n"
    "    local incr = alpha * diff\n"
    "    mu = mu + incr\n"
    "    var = (1 - alpha) * (var + diff * incr)\n"
    "    hist = hist + 1\n"
    "  elseif x > 0 then\n"
    "    mu, var, hist = x, 0, 1\n"
    "  end\n"
    "end\n"
    "local today = daily[day]\n"
    "local sd = math.sqrt(var)\n"
    "local z = 0\n"
    "if hist > 0 then z = (today - mu) / math.max(sd, 1) end\n"
    "local anomaly = 0\n"
    "if hist > 0 and (z >= 3 or (mu > 0 and today >= k * mu)) then anomaly = 1 end\n"
    "local function ser(s) return s[5] + s[6] end\n"
    "local function i(x) return string.format('%d', x) end\n"
    "redis.call('HSET', KEYS[1], 'anchor_ms', i(anchor), 'anchor',\n"
    "  day_label(day) .. string.format('%02d', hour - day * 24),\n"
    "  'events_24h', i(h24[1]), 'count_24h', i(h24[2]), 'serious_24h', i(ser(h24)),\n"
    "  'events_7d', i(d7[1]), 'count_7d', i(d7[2]), 'serious_7d', i(ser(d7)),\n"
    "  'events_30d', i(d30[1]), 'count_30d', i(d30[2]), 'serious_30d', i(ser(d30)))\n"
    "redis.call('EXPIRE', KEYS[1], ttl)\n"
    "local tr = {'day', day_label(day), 'today', i(today), 'baseline', string.format('%.4f', mu),\n"
    "  'sd', string.format('%.4f', sd), 'z', string.format('%.4f', z), 'anomaly', i(anomaly),\n"
    "  'history_days', i(hist)}\n"
    "if member ~= '' then\n"
    "  local v = h24[3] + 2 * h24[4] + 5 * h24[5] + 10 * h24[6]\n"
    "  local tf = 1 + math.min(math.max(z, 0), 6) / 6\n"
    "  local risk = string.format('%.2f', 10 * weight * tf * math.log(1 + v))\n"
    "  tr[#tr + 1] = 'risk'\n"
    "  tr[#tr + 1] = risk\n"
    "  tr[#tr + 1] = 'weighted_24h'\n"
    "  tr[#tr + 1] = i(v)\n"
    "  redis.call('ZADD', KEYS[3], risk, member)\n"
    "end\n"
    "redis.call('HSET', KEYS[2], unpack(tr))\n"
    "redis.call('EXPIRE', KEYS[2], ttl)\n"
    "return 0\n";

int64_t agg_risk_weight(const struct agg_config *cfg, const char *sector)
{
    const struct tm_sector *s;

    for (int i = 0; i < cfg->risk_weight_count; i++)
        if (strcmp(cfg->risk_weights[i].sector, sector) == 0)
            return cfg->risk_weights[i].weight;
    s = tm_sector_find(sector);
    return s != NULL ? s->criticality : 1;
}
