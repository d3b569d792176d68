#!/usr/bin/env bash
# What it measures: Sluice's cache-hit cost with 1 000 000 stored objects against 1 000, the two
# measured alternately on two live instances (A holds FEW objects, B holds MANY), so that the
# machine's drift over minutes falls on both alike. run.sh's objs-N scenarios measure the same
# pair once each, a minute or two apart; this script is for the ratio alone.
#
# Run: benches/peers/objects.sh                 (ROUNDS=5 SECONDS_PER_RUN=5, about 3 minutes)
#      FEW=1000 MANY=1000000 ROUNDS=8 benches/peers/objects.sh
# Prints one line per run and the medians: req/s, the proxy's CPU seconds per 100 000 requests
# (user and total), requests that reached the origin, and the ratios many/few: of the medians,
# and the median of the per-round ratios (the two runs of a round are back to back).
# Traffic goes to 127.0.0.1 only. Needs nginx (the origin), wrk, curl and a release build.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FEW=${FEW:-1000}
MANY=${MANY:-1000000}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
SKIP_BUILD=${SKIP_BUILD:-0}
LOG_NAME=objects

# shellcheck source=objects-lib.sh
source "$HERE/objects-lib.sh"
require_tools
if [[ $SKIP_BUILD != 1 ]]; then
    (cd "$ROOT" && cargo build --release --locked --quiet) || die "cargo build --release failed"
fi

begin
start_origin

origin_requests() {
    curl -s --max-time 2 "http://127.0.0.1:$ORIGIN_PORT/_origin_status" | awk 'NR == 3 {print $3}'
}

measure() { # measure PORT PID N: one run; prints "N req/s cpu_s_per_100k user_s_per_100k to_origin"
    local o0 o1 t0 t1 stats out="$TMP/load-$1.txt"
    o0=$(origin_requests) t0=$(ticks "$2")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" -s "$HERE/lua/random.lua" \
        "http://127.0.0.1:$1" -- "$3" >"$out" 2>&1
    t1=$(ticks "$2") o1=$(origin_requests)
    stats=$(run_stats "$out" "$t0" "$t1") || die "the run against port $1 failed (see $out)"
    # the two status reads count themselves (one request each)
    echo "$3 $stats $((o1 - o0 > 1 ? o1 - o0 - 1 : 0))"
}

PORT_A=$(free_port); start_sluice "$PORT_A" "$SLUICE_BIN"; PID_A=$SLUICE_PID
PORT_B=$(free_port); start_sluice "$PORT_B" "$SLUICE_BIN"; PID_B=$SLUICE_PID
log "walking $FEW objects on A and $MANY on B"
walk "$PORT_A" "$FEW"
walk "$PORT_B" "$MANY"
log "RSS after the walks: A $(rss_kib "$PID_A") KiB, B $(rss_kib "$PID_B") KiB"
measure "$PORT_A" "$PID_A" "$FEW" >/dev/null      # warm-up, discarded
measure "$PORT_B" "$PID_B" "$MANY" >/dev/null
echo "objects req/s cpu_s_per_100k user_s_per_100k to_origin"
# A B, B A, A B, ...: an advantage of running first in a pair, or a drift over a round, falls
# on both alike (measured A-then-B only, two instances of one build gave the first 1-2 % more
# req/s over 10 pairs, and of two builds the first won 2-3 % whichever build it was)
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then
        measure "$PORT_A" "$PID_A" "$FEW"
        measure "$PORT_B" "$PID_B" "$MANY"
    else
        measure "$PORT_B" "$PID_B" "$MANY"
        measure "$PORT_A" "$PID_A" "$FEW"
    fi
done | tee "$TMP/rows.txt"
python3 - "$TMP/rows.txt" "$FEW" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
few = [r for r in rows if r[0] == sys.argv[2]]
many = [r for r in rows if r[0] != sys.argv[2]]
med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
for name, rs in (("few", few), ("many", many)):
    print(f"median {name} ({rs[0][0]} objects): {med(rs, 1):,.0f} req/s, "
          f"{med(rs, 2):.3f} CPU s/100k (user {med(rs, 3):.3f}), to origin {sum(int(r[4]) for r in rs)}")
print(f"many/few, ratio of the medians: req/s {med(many, 1) / med(few, 1):.2f}, "
      f"CPU per request {med(many, 2) / med(few, 2):.2f}")
# Each round's two runs are back to back, so their ratio shares the machine's state of the moment;
# the median of those per-round ratios is the estimate to read when the machine's speed drifts
# between rounds (the medians above then mix fast and slow moments).
pairs = list(zip(few, many))
rps = sorted(float(m[1]) / float(f[1]) for f, m in pairs)
cpu = sorted(float(m[2]) / float(f[2]) for f, m in pairs)
print(f"many/few, median of {len(pairs)} per-round ratios: req/s {statistics.median(rps):.2f} "
      f"(range {rps[0]:.2f}-{rps[-1]:.2f}), CPU per request {statistics.median(cpu):.2f} "
      f"(target: req/s ratio >= 0.90)")
EOF
