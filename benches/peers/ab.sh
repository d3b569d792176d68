#!/usr/bin/env bash
# What it measures: whether build B's cache hits cost more or less than build A's, as ratios
# B/A of req/s and of the proxy's CPU seconds per 100 000 requests (total and user), for each
# object count in OBJECTS. Each count gets one instance of each build; in every round the two
# are loaded at the same time (two wrk, both on the load core; both proxies on the proxy core),
# so the machine's changes of speed, which on this VM move back-to-back runs by 10-20 %, fall
# on both alike. Which of the two wrk starts first alternates between rounds.
#
# Measured spread: two instances of one build (A/A), 8 rounds of 8 s at 1 000 and 1 000 000
# objects, gave median ratios of 0.994 to 1.006, and every round fell within 0.98-1.02 for
# req/s and CPU per request (user time alone spreads more, 0.87-1.11: its ticks are coarse).
# What it costs: each proxy gets half the core and the load core runs two wrk, so the
# absolute figures are lower than a lone run's (take those from run.sh or objects.sh); only
# the ratios mean something here. Two builds also differ in code layout: a change that could
# not matter with 1 000 objects (all in cache) measured 1.05 there, so read the 1 000 000
# ratio against the 1 000 one, not against 1.
#
# Run: BIN_A=/path/to/sluice-base BIN_B=/path/to/sluice-new benches/peers/ab.sh
#      OBJECTS="1000 1000000" ROUNDS=8 SECONDS_PER_RUN=8 are the defaults (about 6 minutes).
# Traffic goes to 127.0.0.1 only. Needs nginx (the origin), wrk, curl and the two builds.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_A=${BIN_A:?set BIN_A and BIN_B to the two sluice binaries}
BIN_B=${BIN_B:?set BIN_A and BIN_B to the two sluice binaries}
OBJECTS=${OBJECTS:-1000 1000000}
ROUNDS=${ROUNDS:-8}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
LOG_NAME=ab

# shellcheck source=objects-lib.sh
source "$HERE/objects-lib.sh"
require_tools
for bin in "$BIN_A" "$BIN_B"; do [[ -x $bin ]] || die "$bin is not an executable"; done
begin
start_origin

# pair N "A B" | "B A": loads build A's and build B's instance for N objects at once (the wrk
# for the first named starts first); prints "N a_req/s a_cpu a_user b_req/s b_cpu b_user"
# (CPU: the proxy's seconds per 100 000 requests).
pair() {
    local n=$1 order=$2 ta0 tb0 ta1 tb1 a b side pid started=()
    ta0=$(ticks "${PID[A$n]}") tb0=$(ticks "${PID[B$n]}")
    for side in $order; do
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" -s "$HERE/lua/random.lua" \
            "http://127.0.0.1:${PORT[$side$n]}" -- "$n" >"$TMP/load-$side.txt" 2>&1 &
        started+=($!)
    done
    for pid in "${started[@]}"; do wait "$pid" || die "wrk failed (see $TMP/load-*.txt)"; done
    ta1=$(ticks "${PID[A$n]}") tb1=$(ticks "${PID[B$n]}")
    a=$(run_stats "$TMP/load-A.txt" "$ta0" "$ta1") || die "build A's run failed (see $TMP/load-A.txt)"
    b=$(run_stats "$TMP/load-B.txt" "$tb0" "$tb1") || die "build B's run failed (see $TMP/load-B.txt)"
    echo "$n $a $b"
}

declare -A PORT PID
for n in $OBJECTS; do
    for side in A B; do
        bin=$BIN_A
        [[ $side == B ]] && bin=$BIN_B
        PORT[$side$n]=$(free_port)
        start_sluice "${PORT[$side$n]}" "$bin"
        PID[$side$n]=$SLUICE_PID
        log "build $side, $n objects, port ${PORT[$side$n]}: walking"
        walk "${PORT[$side$n]}" "$n"
        log "build $side, $n objects: RSS $(rss_kib "$SLUICE_PID") KiB after the walk"
    done
    pair "$n" "A B" >/dev/null    # warm-up, discarded
done
echo "objects a_req/s a_cpu_s_per_100k a_user b_req/s b_cpu_s_per_100k b_user"
for round in $(seq "$ROUNDS"); do
    order="A B"
    ((round % 2)) || order="B A"
    for n in $OBJECTS; do pair "$n" "$order"; done
done | tee "$TMP/rows.txt"
python3 - "$TMP/rows.txt" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, *values = line.split()
    rows[n].append([float(v) for v in values])
for n, runs in rows.items():
    parts = []
    for i, name in ((0, "req/s"), (1, "CPU/100k"), (2, "user/100k")):
        ratios = sorted(run[i + 3] / run[i] for run in runs)
        parts.append(f"{name} {statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f})")
    print(f"{n} objects, B/A, median of {len(runs)} rounds (range): " + ", ".join(parts))
EOF
