#!/usr/bin/env bash
# bench_redis_memory.sh BUILD_DIR - how much Redis memory tm-aggregator's keys take, for
# sizing (docs/operations.md, "Sizing"). Fills a private redis-server through the real
# tm-aggregator from tm-devkafka with BENCH_DAYS (default 3) days of BENCH_SECTORS
# (default all 24) busy sectors: one event per sector per minute (so every minute window
# exists), from BENCH_SOURCES (3,000) source addresses per sector (so the top-sources
# sets reach their cap of 1,000), 4 operators and 8 agents per sector, severities 1-10 (the
# 7-10 ones also go to tm:feed). Event times end at the start of today (UTC); every
# event is counted (the run fails otherwise).
#
# Then it reads MEMORY USAGE (SAMPLES 0) of every key, sums it per kind of key, and prints:
# bytes per sector-day of each window kind (minute, hour, day hashes; per-day sets), per
# event id in the dedup sets, the fixed-size keys (feed, risk, agents, offsets), INFO
# memory's used_memory against the sum, and the steady state a busy sector reaches under
# the default retention (minute 48 h, hour 35 d, day 400 d, sets 35 d). A quiet sector
# costs less: its minute and hour hashes exist only for the minutes and hours that had
# events. tm-devkafka keeps about 5 MB of batches per partition and drops older ones
# silently: the default 103,680 events of ~400 bytes over 6 partitions stay under it
# after lz4, and the run checks that Redis counted them all.
set -eu
build=$(cd "${1:-build}" && pwd)
days=${BENCH_DAYS:-3}
nsectors=${BENCH_SECTORS:-24}
nsources=${BENCH_SOURCES:-3000}
parts=6
. "$(dirname "$0")/lib.sh"
bench_setup bench-mem

rcli() { redis-cli -h 127.0.0.1 -p "$rport" "$@"; }

"$build/tm-devkafka" --partitions "$parts" >"$tmp/kafka.out" 2>"$tmp/kafka.log" &
pids+=($!)
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/kafka.out" ] && rcli PING >/dev/null 2>&1 && break; sleep 0.1; done
bootstrap=$(head -n 1 "$tmp/kafka.out")
base_mem=$(rcli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')

# The events, in event-time order across sectors (each partition then sees its own in
# order, so none is late): key|json lines for kcat.
python3 - "$days" "$nsectors" "$nsources" >"$tmp/events" <<'EOF'
import datetime, random, sys
days, nsectors, nsources = (int(a) for a in sys.argv[1:4])
sectors = ["energy", "transport", "banking", "financial-market", "health", "drinking-water",
           "waste-water", "digital-infrastructure", "ict-services", "public-administration",
           "state-registries", "local-government", "space", "postal", "waste-management",
           "chemicals", "food", "manufacturing", "digital-providers", "research",
           "defence-industry", "education", "media", "other"][:nsectors]
cats = [("phishing", "T1566", "initial-access"), ("malware", "", ""),
        ("bruteforce", "T1110", "credential-access"), ("scan", "T1595", "reconnaissance"),
        ("ddos", "T1498", "impact")]
regions = ["UA-30", "UA-32", "UA-46", "UA-51", "UA-63", "UA-12"]
rnd = random.Random(7)
today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
t0 = today - datetime.timedelta(days=days)
seq = {}
n = 0
for m in range(days * 1440):
    t = t0 + datetime.timedelta(minutes=m, seconds=rnd.randrange(60))
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for si, s in enumerate(sectors):
        cat, tech, tac = cats[rnd.randrange(len(cats))]
        op = rnd.randrange(4)
        agent = "a%d" % rnd.randrange(2)
        k = (s, op, agent)
        seq[k] = seq.get(k, 0) + 1
        src = "10.%d.%d.%d" % (si, *divmod(rnd.randrange(nsources), 250))
        attack = ',"attack":{"technique":"%s","tactic":"%s"}' % (tech, tac) if tech else ""
        # ids as long as the ULIDs agents and collectors make (26 characters)
        print('%s|{"schema":1,"id":"01JMEMBENCH%015d","ts":"%s","received":"%s","operator":"op-%s-%d",'
              '"sector":"%s","region":"%s","agent":"%s","seq":%d,"source":{"kind":"suricata"},'
              '"category":"%s","severity":%d%s,"src":{"ip":"%s","port":%d},'
              '"dst":{"ip":"192.0.2.%d","port":443},"count":%d,"summary":"memory bench event %d"}'
              % (s, n, ts, ts, s, op, s, regions[si % len(regions)], agent, seq[k], cat,
                 1 + rnd.randrange(10), attack, src, 1024 + rnd.randrange(60000),
                 rnd.randrange(250), 1 + rnd.randrange(5), n))
        n += 1
EOF
n=$(wc -l <"$tmp/events")
echo "events: $n ($days days x $nsectors sectors x 1,440 minutes); tm-devkafka $bootstrap; redis-server 127.0.0.1:$rport"
kcat -P -b "$bootstrap" -t tm.events.v1 -K'|' -z lz4 -X linger.ms=20 -X batch.size=1000000 -l "$tmp/events"
kcat -P -b "$bootstrap" -t tm.heartbeats -z lz4 </dev/null

declare -A end
for ((p = 0; p < parts; p++)); do
  end[$p]=$(kcat -Q -b "$bootstrap" -t "tm.events.v1:$p:-1" 2>/dev/null | sed -n 's/.*offset \([0-9]*\).*/\1/p')
done
want=$(for ((p = 0; p < parts; p++)); do printf '%s ' "${end[$p]}"; done)
stored() { rcli EVAL "local r = {} for p = 0, $((parts - 1)) do
  r[#r + 1] = redis.call('HGET', KEYS[1] .. p, 'next') or '0' end
  return table.concat(r, ' ') .. ' '" 1 tm:offset:tm-aggregator:tm.events.v1:; }
printf '[aggregator]\nflush_events = 5000\n' >"$tmp/agg.ini"
"$build/tm-aggregator" -c "$tmp/agg.ini" --kafka "$bootstrap" --redis "127.0.0.1:$rport" \
  --admin 127.0.0.1:0 --log-level warn >"$tmp/agg.out" 2>"$tmp/agg.log" &
pids+=($!)
done_all=0
for _ in $(seq 3000); do
  [ "$(stored)" = "$want" ] && { done_all=1; break; }
  sleep 0.1
done
applied=0
for k in $(rcli --scan --pattern 'tm:n:1d:*'); do applied=$((applied + $(rcli HGET "$k" events))); done
[ "$done_all" = 1 ] && [ "$applied" = "$n" ] ||
  { echo "bench_redis_memory: Redis counted $applied of $n events"; exit 1; }

# MEMORY USAGE of every key, pipelined, summed per kind.
rcli --scan >"$tmp/keys"
awk '{ printf "MEMORY USAGE %s SAMPLES 0\n", $0 }' "$tmp/keys" | rcli >"$tmp/sizes"
used=$(rcli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')
paste -d' ' "$tmp/keys" "$tmp/sizes" | awk -v n="$n" -v days="$days" -v ns="$nsectors" \
  -v used=$((used - base_mem)) '
  function kind(k) {
    if (k ~ /^tm:s:[^:]*:1m:/) return "sector minute hashes (1m)"
    if (k ~ /^tm:s:[^:]*:1h:/) return "sector hour hashes (1h)"
    if (k ~ /^tm:s:[^:]*:1d:/) return "sector day hashes (1d)"
    if (k ~ /^tm:s:[^:]*:src:1d:/) return "sector distinct sources (HLL)"
    if (k ~ /^tm:s:[^:]*:top:1d:/) return "sector top sources (zset)"
    if (k ~ /^tm:s:[^:]*:ops:1d:/) return "sector operators (set)"
    if (k ~ /^tm:s:[^:]*:(roll|trend)$/) return "sector roll + trend"
    if (k ~ /^tm:n:1m:/) return "national minute hashes"
    if (k ~ /^tm:n:1h:/) return "national hour hashes"
    if (k ~ /^tm:n:1d:/) return "national day hashes"
    if (k ~ /^tm:n:(src|top):1d:/) return "national sources (HLL + zset)"
    if (k ~ /^tm:r:/) return "region day hashes"
    if (k ~ /^tm:o:/) return "operator day hashes"
    if (k ~ /^tm:dedup:/) return "dedup ids"
    if (k ~ /^tm:agent/) return "agents"
    if (k == "tm:feed") return "feed (capped stream)"
    return "other (offsets, risk, roll)"
  }
  { b[kind($1)] += $2; c[kind($1)]++; total += $2 }
  END {
    printf "\n%-32s %8s %12s %14s\n", "kind of key", "keys", "bytes", "per unit"
    for (k in b) {
      unit = ""
      if (k ~ /^sector (minute|hour|day|distinct|top|operators)/) unit = sprintf("%10.0f /sector-day", b[k] / (ns * days))
      else if (k ~ /^(national|region|operator)/) unit = sprintf("%10.0f /day", b[k] / days)
      else if (k == "dedup ids") unit = sprintf("%10.1f /event", b[k] / n)
      printf "%-32s %8d %12d %s\n", k, c[k], b[k], unit
    }
    printf "%-32s %8s %12d %10.1f /event\n", "sum of MEMORY USAGE", "", total, total / n
    printf "%-32s %8s %12d %10.1f /event\n", "INFO used_memory growth", "", used, used / n
    m = b["sector minute hashes (1m)"] / (ns * days); h = b["sector hour hashes (1h)"] / (ns * days)
    d = b["sector day hashes (1d)"] / (ns * days)
    s = (b["sector distinct sources (HLL)"] + b["sector top sources (zset)"] + b["sector operators (set)"]) / (ns * days)
    printf "\nsteady state of one busy sector (1 event/min, default retention):\n"
    printf "  minute hashes  2 d x %8.0f = %6.1f MB\n", m, 2 * m / 1e6
    printf "  hour hashes   35 d x %8.0f = %6.1f MB\n", h, 35 * h / 1e6
    printf "  day hashes   400 d x %8.0f = %6.1f MB\n", d, 400 * d / 1e6
    printf "  per-day sets  35 d x %8.0f = %6.1f MB\n", s, 35 * s / 1e6
    printf "  total                        %6.1f MB\n", (2 * m + 35 * h + 400 * d + 35 * s) / 1e6
    printf "dedup: %.0f bytes per event counted in the last 25 h (1,440 events/day per busy sector: %.1f MB)\n", \
      b["dedup ids"] / n, 1440 * 25 / 24 * b["dedup ids"] / n / 1e6
    nat = (2 * b["national minute hashes"] + 35 * b["national hour hashes"] + 400 * b["national day hashes"] \
      + 35 * b["national sources (HLL + zset)"]) / days
    rest = 400 * (b["region day hashes"] + b["operator day hashes"]) / days
    all = ns * (2 * m + 35 * h + 400 * d + 35 * s) + nat + rest + b["feed (capped stream)"] + 1440 * ns * 25 / 24 * b["dedup ids"] / n
    printf "steady state of this whole load (%d busy sectors, national, regions, operators, feed, dedup):\n", ns
    printf "  sum of MEMORY USAGE %.1f MB; with INFO used_memory / MEMORY USAGE = %.2f: %.1f MB\n", \
      all / 1e6, used / total, all * used / total / 1e6
  }' | tee "$tmp/report"
