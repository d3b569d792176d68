#!/usr/bin/env bash
# What it measures: Sluice side by side with nginx and HAProxy (and, with MODE=cache, nginx
# proxy_cache, HAProxy cache, Varnish and a static nginx upper bound) as reverse proxies in front
# of one fixed local origin: req/s, p50/p99 latency, peak RSS and the proxy's own CPU seconds per
# 100 000 requests, for HTTP/1.1 (wrk) and h2c (h2load), 1 KiB and 100 KiB bodies.
#
# Run: benches/peers/run.sh            (defaults: DURATION=10 ROUNDS=3, about 8-9 minutes)
#      DURATION=3 ROUNDS=1 PEERS="nginx haproxy" benches/peers/run.sh
# See benches/peers/README.md for every knob. Results go to bench-results/peers-*/.
# Traffic goes to 127.0.0.1 only; the network is used only to apt-get install a missing tool.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin      # nginx, haproxy and varnishd live in sbin
export LC_ALL=C                         # "." in $EPOCHREALTIME and in the tools' numbers

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PARSE="python3 $HERE/parse.py"

# ---- knobs -------------------------------------------------------------------------------------
MODE=${MODE:-pass}                      # pass | cache
DURATION=${DURATION:-10}                # seconds measured per run
WARMUP=${WARMUP:-2}                     # seconds of discarded load before each measured run
ROUNDS=${ROUNDS:-3}                     # A B C, C B A, ... ; the median of rounds is reported
CONNS=${CONNS:-64}                      # connections (wrk and h2load)
STREAMS=${STREAMS:-10}                  # h2load concurrent streams per connection (-m)
if [[ $MODE == cache ]]; then
    # PROTO-SIZE (sizes as Nk; h2 is h2c), and objs-N: random hits over N stored 1 KiB objects (HTTP/1.1)
    SCENARIOS=${SCENARIOS:-"h1-1k h1-100k h2-1k objs-1000 objs-1000000"}
    PEERS=${PEERS:-"sluice nginx haproxy varnish static"}
else
    SCENARIOS=${SCENARIOS:-"h1-1k h1-100k h2-1k h2-100k"}
    PEERS=${PEERS:-"sluice nginx haproxy"}
fi
OBJ_PEERS=${OBJ_PEERS:-"sluice haproxy varnish static"}  # the peers that run objs-N scenarios
OBJ_ROUNDS=${OBJ_ROUNDS:-1}            # rounds of objs-N scenarios with N >= 100000 (the warm-up
                                        # walk of 1M objects takes 1-2 minutes per peer)
PROXY_CPU=${PROXY_CPU:-1}               # the proxy under test
LOAD_CPU=${LOAD_CPU:-0}                 # wrk / h2load and the origin
SLUICE_BIN=${SLUICE_BIN:-$ROOT/target/release/sluice}
SKIP_BUILD=${SKIP_BUILD:-0}             # 1: use SLUICE_BIN as it is
CACHE_SIZE_MB=${CACHE_SIZE_MB:-256}     # cache budget of every cached peer
OBJ_CACHE_MB=${OBJ_CACHE_MB:-4096}      # ... in objs-N scenarios with N >= 100000: Sluice charges
                                        # ~3.2 KiB per 1 KiB object (what RSS grows by), so 3072
                                        # evicted and 1% of the random requests missed
HIT_MAX_ORIGIN_PCT=${HIT_MAX_ORIGIN_PCT:-0.1}   # cache mode: a run sending more to origin fails
NGINX_EXTRA=${NGINX_EXTRA:-}            # directives added to the nginx proxy's location (tuning trials)
HAPROXY_EXTRA=${HAPROXY_EXTRA:-}        # a line added to HAProxy's defaults section (tuning trials)
KEEP_TMP=${KEEP_TMP:-0}                 # 1: keep the temp dir (configs, logs) for inspection
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/peers-$MODE-$(date +%Y%m%d-%H%M%S)}

log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- process bookkeeping: we stop only what we started, by PID ----------------------------------
STARTED=()
TMP=""

stop_pid() {   # TERM, wait up to 5 s, then KILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    STARTED=()
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

launch() {     # launch NAME CMD... : start in the background, logs in $TMP/NAME.{out,err}
    local name=$1; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    LAUNCHED=$!
    STARTED+=("$LAUNCHED")
}

forget() {     # drop a stopped PID from STARTED
    local pid=$1 keep=() p
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]+"${keep[@]}"}")
}

children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }

free_ports() { # free_ports N: N distinct free TCP ports on 127.0.0.1
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_ready() { # wait_ready PROTO PORT PATH PID: poll with curl until a 200, PID alive, 10 s deadline
    local proto=$1 port=$2 path=$3 pid=$4 deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if probe "$proto" "$port" "$path"; then return 0; fi
        sleep 0.1
    done
    return 1
}

render() { $PARSE render "$@" || die "cannot render $1"; }

# ---- peers: start_X H1_PORT H2_PORT sets PEER_PID, PEER_H1, PEER_H2; pids_X prints the PIDs ----
# whose CPU and RSS count as the proxy's. To add a peer: write start_X (and pids_X if the work is
# done by child processes), add X to PEERS.

start_sluice() {   # start_sluice H1 H2 [NAME [EXTRA ARGS...]]
    local name=${3:-sluice}
    local args=(proxy --listen "127.0.0.1:$1" --to "127.0.0.1:$ORIGIN_PORT" "${@:4}")
    if [[ $SLUICE_ACCESS_LOG_FLAG == 1 ]]; then args+=(--access-log off); fi
    if [[ $MODE == cache ]]; then args+=(--cache "${CACHE_MB}MiB"); fi
    # one runtime worker, like 1 nginx worker / 1 HAProxy thread (taskset alone would give the
    # same, tokio sizes itself from the CPU affinity mask; this makes it explicit)
    launch "$name" env TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$SLUICE_BIN" "${args[@]}"
    PEER_PID=$LAUNCHED PEER_H1=$1 PEER_H2=$1     # one port: HTTP/1.1 and h2c prior knowledge
}
pids_sluice() { echo "$PEER_PID"; }

# Sluice without per-request metrics and without the resource sampler and alerts (the cost of
# observability: compare it with "sluice" in the same run)
start_sluice_nometrics() { start_sluice "$1" "$2" sluice_nometrics --no-metrics; }
pids_sluice_nometrics() { echo "$PEER_PID"; }

start_nginx() {
    local d="$TMP/nginx" cache_path="" cache_use=""
    rm -rf "$d/cache"        # every run starts with an empty cache, like the other peers
    mkdir -p "$d"
    if [[ $MODE == cache ]]; then
        # keys zone: about 8000 keys per MiB (nginx docs), so N objects need N/8000 MiB.
        # max_size counts disk blocks: a 1 KiB object takes a 4 KiB block (and was seen to
        # evict 5% of 1M objects with max_size = 2048m), so objs-N gets 4 times the budget.
        local zone_mb=$((OBJECTS / 4000 + 10)) disk_mb=$CACHE_MB
        if ((OBJECTS > 0)); then disk_mb=$((CACHE_MB * 4)); fi
        cache_path="proxy_cache_path $d/cache levels=1:2 keys_zone=objects:${zone_mb}m max_size=${disk_mb}m inactive=1h use_temp_path=off;"
        cache_use="proxy_cache objects; proxy_cache_valid 200 1h; add_header X-Cache-Status \$upstream_cache_status;"
    fi
    render "$HERE/conf/nginx.conf" "$d/nginx.conf" DIR="$TMP" H1_PORT="$1" H2_PORT="$2" \
        ORIGIN_PORT="$ORIGIN_PORT" CACHE_PATH="$cache_path" CACHE_USE="$cache_use" \
        NGINX_EXTRA="$NGINX_EXTRA"
    launch nginx taskset -c "$PROXY_CPU" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    PEER_PID=$LAUNCHED PEER_H1=$1 PEER_H2=$2
}
pids_nginx() { nginx_workers "$PEER_PID"; }   # the master only waits; the worker does the work

nginx_workers() {
    local pid
    for pid in $(children_of "$1"); do
        grep -qa "worker process" /proc/"$pid"/cmdline 2>/dev/null && echo "$pid"
    done
    return 0
}

start_static() {   # upper bound: nginx serves the files itself (MODE=cache)
    local d="$TMP/static"
    mkdir -p "$d"
    render "$HERE/conf/static.nginx.conf" "$d/nginx.conf" DIR="$TMP" H1_PORT="$1" H2_PORT="$2"
    launch static taskset -c "$PROXY_CPU" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    PEER_PID=$LAUNCHED PEER_H1=$1 PEER_H2=$2
}
pids_static() { nginx_workers "$PEER_PID"; }

start_haproxy() {
    local d="$TMP/haproxy" section="" use=""
    mkdir -p "$d"
    if [[ $MODE == cache ]]; then
        # total-max-size is in MiB (at most 4095)
        local haproxy_mb=$((CACHE_MB > 4095 ? 4095 : CACHE_MB))
        section=$(printf 'cache objects\n    total-max-size %s\n    max-object-size 1048576\n    max-age 3600' "$haproxy_mb")
        # X-Cache-Status on hits only: the harness checks it before measuring
        use=$(printf 'http-request cache-use objects\n    http-response cache-store objects\n    http-after-response set-header X-Cache-Status HIT if { res.cache_hit }')
    fi
    render "$HERE/conf/haproxy.cfg" "$d/haproxy.cfg" DIR="$TMP" H1_PORT="$1" H2_PORT="$2" \
        ORIGIN_PORT="$ORIGIN_PORT" CACHE_SECTION="$section" CACHE_USE="$use" \
        HAPROXY_EXTRA="$HAPROXY_EXTRA"
    launch haproxy taskset -c "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg"
    PEER_PID=$LAUNCHED PEER_H1=$1 PEER_H2=$2
}
pids_haproxy() { echo "$PEER_PID"; }   # -db, no master-worker: one process

start_varnish() {  # MODE=cache
    local d="$TMP/varnish"
    mkdir -p "$d"
    render "$HERE/conf/varnish.vcl" "$d/default.vcl" ORIGIN_PORT="$ORIGIN_PORT"
    launch varnish taskset -c "$PROXY_CPU" varnishd -F -n "$d/work" -a "127.0.0.1:$1" \
        -f "$d/default.vcl" -s "malloc,${CACHE_MB}m" -T none -p feature=+http2 \
        -p thread_pools=1
    PEER_PID=$LAUNCHED PEER_H1=$1 PEER_H2=$1
}
pids_varnish() { children_of "$PEER_PID"; }   # the cache child; the manager only supervises

stop_peer() {
    stop_pid "$PEER_PID"
    forget "$PEER_PID"
}

# ---- cache mode: is the peer serving hits? hit_X HEADERS_FILE succeeds when the response whose
# headers are in the file came from the peer's cache. A peer that is not hitting fails the run.
hit_sluice() { grep -qiE '^cache-status:.*;[[:space:]]*hit([;,[:space:]]|$)' "$1"; }
hit_sluice_nometrics() { hit_sluice "$1"; }
hit_nginx() { grep -qiE '^x-cache-status:[[:space:]]*HIT' "$1"; }      # $upstream_cache_status
hit_haproxy() { grep -qiE '^x-cache-status:[[:space:]]*HIT' "$1"; }    # res.cache_hit
hit_varnish() { grep -qiE '^x-varnish:[[:space:]]*[0-9]+[[:space:]]+[0-9]+' "$1"; }  # 2 ids: a hit
hit_static() { true; }                                                  # no cache, no origin

check_hits() { # check_hits PEER PROTO PORT PATH...: each path must be a hit, and reach no origin
    local peer=$1 flag=--http1.1 port=$3 path o0 o1 headers="$TMP/hit-headers"
    if [[ $2 == h2 ]]; then flag=--http2-prior-knowledge; fi
    shift 3
    [[ $peer == static ]] && return 0
    o0=$(origin_counters)
    for path in "$@"; do
        curl -s "$flag" --max-time 2 -D "$headers" -o /dev/null "http://127.0.0.1:$port$path" || true
        if ! "hit_$peer" "$headers"; then
            log "ERROR: $peer did not serve $path from its cache after the warm-up; headers:"
            cat "$headers" >&2 || true
            die "$peer is not hitting (check its cache configuration in $HERE/conf and run.sh)"
        fi
    done
    o1=$(origin_counters)
    # the second status request itself is the one origin request allowed
    if (( ${o1#* } - ${o0#* } > 1 )); then
        die "$peer sent $(( ${o1#* } - ${o0#* } - 1 )) of $# hit checks to the origin"
    fi
}

# ---- measurements -------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

proc_ticks() { # proc_ticks PID...: "UTIME STIME" summed over the PIDs (all threads), clock ticks
    local user=0 sys=0 pid stat rest fields
    for pid in "$@"; do
        read -r stat <"/proc/$pid/stat" 2>/dev/null || continue
        rest=${stat##*) }
        read -r -a fields <<<"$rest"
        user=$((user + fields[11])) sys=$((sys + fields[12]))   # fields 14 and 15 of proc(5)
    done
    echo "$user $sys"
}

core_ticks() { # core_ticks CPU: "USER+NICE BUSY TOTAL" of one CPU from /proc/stat, clock ticks
    # (busy = all but idle and iowait)
    awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3, $2 + $3 + $4 + $7 + $8 + $9,
                                         $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

to_ms() {      # to_ms 1m2.345s -> 62345 (the format of bash `times`)
    local t=$1 min sec
    min=${t%%m*} sec=${t#*m}; sec=${sec%s}
    echo $((10#$min * 60000 + 10#${sec%.*} * 1000 + 10#${sec#*.}))
}

children_ms() { # sets CHILDREN_MS: user+sys CPU of this shell's reaped children so far (`times`)
    local _ user sys
    times >"$TMP/times"                # a builtin: runs in this shell, not in a subshell
    { read -r _ _; read -r user sys; } <"$TMP/times"
    CHILDREN_MS=$(( $(to_ms "$user") + $(to_ms "$sys") ))
}

peak_rss_kib() {   # VmHWM summed over the given PIDs
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

origin_counters() { # "ACCEPTS REQUESTS" from the origin's stub_status
    curl -s --max-time 2 "http://127.0.0.1:$ORIGIN_PORT/_origin_status" | awk 'NR == 3 {print $1, $3}'
}

probe() {      # probe PROTO PORT PATH: one request must return 200
    local proto=$1 port=$2 path=$3 flag=--http1.1
    if [[ $proto == h2 ]]; then flag=--http2-prior-knowledge; fi
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$flag" "http://127.0.0.1:$port$path") == 200 ]]
}

load() {       # load PROTO PORT PATH SECONDS OUT [H2LOG]; PROTO objs: random over $OBJECTS URLs
    local proto=$1 port=$2 path=$3 secs=$4 out=$5 h2log=${6:-/dev/null}
    local url="http://127.0.0.1:$port$path"
    if [[ $proto == objs ]]; then
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
            -s "$HERE/lua/random.lua" "http://127.0.0.1:$port" -- "$OBJECTS" >"$out" 2>&1
    elif [[ $proto == h1 ]]; then
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
            wrk -t1 -c"$CONNS" -d"${secs}s" --latency "$url" >"$out" 2>&1
    else
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" \
            h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$secs" --log-file="$h2log" "$url" >"$out" 2>&1
    fi
}

walk_objects() { # walk_objects PORT OUT: GET /obj/1../obj/$OBJECTS once each; sets WALK_SECONDS
    local port=$1 out=$2 marker="$TMP/walk.done" pid deadline ns0=$EPOCHREALTIME
    local limit=$((OBJECTS / 2000 + 60))    # seconds; at least 2000 misses/s or it fails
    rm -f "$marker"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${limit}s" -s "$HERE/lua/walk.lua" \
        "http://127.0.0.1:$port" -- "$OBJECTS" "$marker" >"$out" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    deadline=$((SECONDS + limit + 5))
    while [[ ! -f $marker ]] && kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    WALK_SECONDS=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" \
        "$ns0" "$EPOCHREALTIME")
    stop_pid "$pid"; forget "$pid"
    [[ -f $marker ]] || die "the walk over $OBJECTS objects did not finish in ${limit} s (see $out)"
}

objs_n() {     # objs_n SCENARIO: N of objs-N, or 0
    if [[ $1 =~ ^objs-([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; else echo 0; fi
}

run_one() {    # run_one SCENARIO PEER ROUND: start, warm up, measure, stop; one JSON line to raw
    local scenario=$1 peer=$2 round=$3 proto=${1%%-*} size=${1#*-}
    local path="/$size.bin" base="$OUT_DIR/raw/$scenario.$peer.r$round" h1 h2 pids
    OBJECTS=$(objs_n "$scenario") CACHE_MB=$CACHE_SIZE_MB WALK_SECONDS=0
    if ((OBJECTS > 0)); then
        path=/obj/1
        if ((OBJECTS >= 100000)); then CACHE_MB=$OBJ_CACHE_MB; fi
    fi
    read -r h1 h2 <<<"$(free_ports 2)"
    "start_$peer" "$h1" "$h2"
    local port=$PEER_H1 probe_proto=$proto
    if [[ $proto == h2 ]]; then port=$PEER_H2; fi
    if [[ $proto == objs ]]; then probe_proto=h1; fi
    if ! wait_ready "$probe_proto" "$port" "$path" "$PEER_PID"; then
        log "$peer did not serve $proto $path on $port; stderr:"
        tail -n 20 "$TMP/$peer.err" >&2 || true
        stop_peer
        printf '{"scenario":"%s","peer":"%s","round":%s,"failed":true}\n' \
            "$scenario" "$peer" "$round" >>"$OUT_DIR/raw.jsonl"
        return 0
    fi
    if [[ $proto == objs ]]; then
        walk_objects "$port" "$base.walk.txt"
        log "$peer: walked $OBJECTS objects in $WALK_SECONDS s"
    fi
    load "$proto" "$port" "$path" "$WARMUP" "$base.warmup.txt" || true
    if [[ $MODE == cache ]]; then
        if [[ $proto == objs ]]; then
            check_hits "$peer" h1 "$port" /obj/1 "/obj/$((OBJECTS / 2 + 1))" "/obj/$OBJECTS"
        else
            check_hits "$peer" "$probe_proto" "$port" "$path"
        fi
    fi
    pids=$("pids_$peer")
    [[ -n $pids ]] || die "no PIDs to measure for $peer"
    # Before and after the measured run: the proxy's utime/stime; the origin's accepts/requests;
    # both cores' user time (to see CPU taken by processes that are not part of the benchmark);
    # the load tool's CPU (this shell's reaped children).
    local p0 p1 o0 o1 w0 w1 pc0 pc1 lc0 lc1 t0 t1 rss status=0
    # shellcheck disable=SC2086
    p0=$(proc_ticks $pids) w0=$(proc_ticks $ORIGIN_WORKERS) o0=$(origin_counters)
    pc0=$(core_ticks "$PROXY_CPU") lc0=$(core_ticks "$LOAD_CPU")
    children_ms; t0=$CHILDREN_MS; local ns0=$EPOCHREALTIME
    load "$proto" "$port" "$path" "$DURATION" "$base.txt" "$TMP/h2.log" || status=$?
    local ns1=$EPOCHREALTIME; children_ms; t1=$CHILDREN_MS
    pc1=$(core_ticks "$PROXY_CPU") lc1=$(core_ticks "$LOAD_CPU")
    # shellcheck disable=SC2086
    p1=$(proc_ticks $pids) w1=$(proc_ticks $ORIGIN_WORKERS) o1=$(origin_counters)
    # shellcheck disable=SC2086
    rss=$(peak_rss_kib $pids)
    stop_peer
    [[ $status == 0 ]] || log "$peer: load tool exited with $status (see $base.txt)"
    if [[ $proto == objs ]]; then rm -f "$TMP/walk.done"; fi
    local parsed
    if [[ $proto != h2 ]]; then parsed=$($PARSE wrk "$base.txt"); else
        parsed=$($PARSE h2load "$base.txt" "$TMP/h2.log"); rm -f "$TMP/h2.log"; fi
    python3 - "$parsed" "$scenario" "$peer" "$round" "$CLK_TCK" "$rss" "$p0" "$p1" "$o0" "$o1" \
        "$w0" "$w1" "$pc0" "$pc1" "$lc0" "$lc1" "$t0" "$t1" "$ns0" "$ns1" "$MODE" "$OBJECTS" \
        "$WALK_SECONDS" "$CACHE_MB" "$HIT_MAX_ORIGIN_PCT" >>"$OUT_DIR/raw.jsonl" <<'EOF'
import json, sys
row = json.loads(sys.argv[1])
mode, objects, walk_seconds, cache_mb, max_origin_pct = sys.argv[21:26]
scenario, peer, rnd, tck, rss = sys.argv[2:7]
p0, p1, o0, o1, w0, w1, pc0, pc1, lc0, lc1 = ([int(x) for x in a.split()] for a in sys.argv[7:17])
t0, t1 = int(sys.argv[17]), int(sys.argv[18])
tck = int(tck)
elapsed = float(sys.argv[20]) - float(sys.argv[19])   # wall seconds of the measured run
cpu = (p1[0] + p1[1] - p0[0] - p0[1]) / tck
core = (pc1[2] - pc0[2]) / tck                  # the proxy core's ticks during the run, s
wall = elapsed or None   # the denominator of the percentages (the tick total was seen to jump)
# user time on each core not spent by the benchmark's own processes (other jobs on the machine)
foreign_proxy = max(0, (pc1[0] - pc0[0]) - (p1[0] - p0[0])) / tck
foreign_load = max(0.0, (lc1[0] - lc0[0]) - (w1[0] - w0[0]) - (t1 - t0) / 1000 * tck) / tck
row.update(scenario=scenario, peer=peer, round=int(rnd), cpu_seconds=cpu,
           peak_rss_kib=int(rss) or None,
           origin_requests=max(0, o1[1] - o0[1] - 1),      # minus the status request itself
           origin_connections=max(0, o1[0] - o0[0] - 1),
           load_tool_cpu_seconds=(t1 - t0) / 1000, elapsed_seconds=elapsed,
           core_seconds=core,
           foreign_pct_proxy_cpu=100 * foreign_proxy / wall if wall else None,
           foreign_pct_load_cpu=100 * foreign_load / wall if wall else None,
           busy_pct_proxy_cpu=100 * (pc1[1] - pc0[1]) / tck / wall if wall else None,
           busy_pct_load_cpu=100 * (lc1[1] - lc0[1]) / tck / wall if wall else None,
           cpu_s_per_100k=cpu / row["requests"] * 100000 if row["requests"] else None)
if int(objects):
    row.update(objects=int(objects), walk_seconds=float(walk_seconds),
               walk_rps=int(objects) / float(walk_seconds) if float(walk_seconds) else None)
if mode == "cache":
    row["cache_mb"] = int(cache_mb)
    # A cached peer that sends more than a trace to the origin during the measured run is not
    # measuring hits (the static upper bound has no origin at all)
    limit = max(10, float(max_origin_pct) / 100 * row["requests"])
    row["not_hitting"] = peer != "static" and row["origin_requests"] > limit
    if row["not_hitting"]:
        sys.stderr.write(f"[peers] ERROR: {scenario} {peer} r{rnd}: {row['origin_requests']} of "
                         f"{row['requests']} requests reached the origin: not a hit benchmark\n")
print(json.dumps(row))
sys.stderr.write(f"[peers] {scenario} {peer} r{rnd}: {row['rps'] or 0:.0f} req/s, "
                 f"p99 {row['p99_ms']} ms, cpu {cpu:.2f} s, "
                 f"errors {row['errors'] + row['non_2xx']}, origin conns "
                 f"{row['origin_connections']}, cores busy {row['busy_pct_proxy_cpu'] or 0:.0f}%"
                 f"/{row['busy_pct_load_cpu'] or 0:.0f}% (foreign {row['foreign_pct_proxy_cpu'] or 0:.0f}%"
                 f"/{row['foreign_pct_load_cpu'] or 0:.0f}%) proxy/load\n")
EOF
}

# ---- setup --------------------------------------------------------------------------------------
install_missing() {
    local want=() cmd pkg
    for pair in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client varnishd:varnish \
                taskset:util-linux curl:curl; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null 2>&1 \
            || want+=("$pkg")
    done
    [[ ${#want[@]} == 0 ]] && return 0
    log "installing with apt: ${want[*]}"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}" \
        || die "apt-get install ${want[*]} failed"
}

make_origin() {
    mkdir -p "$TMP/www" "$TMP/origin"
    local scenario size
    for scenario in $SCENARIOS; do
        size=${scenario#*-}
        if [[ $scenario == objs-* ]]; then
            [[ $(objs_n "$scenario") -gt 0 ]] || die "scenario $scenario: objs-N needs a number N > 0"
            size=1k
        fi
        [[ $size =~ ^[0-9]+k$ ]] || die "scenario $scenario: size must be Nk"
        [[ -f $TMP/www/$size.bin ]] || head -c $((${size%k} * 1024)) /dev/urandom >"$TMP/www/$size.bin"
    done
    ORIGIN_PORT=$(free_ports 1)
    render "$HERE/conf/origin.nginx.conf" "$TMP/origin/nginx.conf" DIR="$TMP" ORIGIN_PORT="$ORIGIN_PORT"
    launch origin taskset -c "$LOAD_CPU" nginx -p "$TMP/origin" -e "$TMP/origin/error.log" \
        -c "$TMP/origin/nginx.conf"
    ORIGIN_PID=$LAUNCHED
    wait_ready h1 "$ORIGIN_PORT" /_origin_status "$ORIGIN_PID" \
        || { cat "$TMP/origin.err" "$TMP/origin/error.log" >&2 || true; die "origin did not start"; }
    ORIGIN_WORKERS=$(nginx_workers "$ORIGIN_PID")
    log "origin nginx on 127.0.0.1:$ORIGIN_PORT (pid $ORIGIN_PID, worker $ORIGIN_WORKERS)"
}

machine_note() {
    local versions
    versions=$(
        printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
        printf 'haproxy\t%s\n' "$(haproxy -v 2>&1 | head -n 1)"
        printf 'varnish\t%s\n' "$(varnishd -V 2>&1 | head -n 1)"
        printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 || true)"
        printf 'h2load\t%s\n' "$(h2load --version 2>&1 | head -n 1)"
        if [[ " $PEERS " == *" sluice"* ]]; then
            printf 'sluice\t%s (git %s, %s uncommitted files)\n' \
                "$("$SLUICE_BIN" --version 2>&1 | head -n 1)" \
                "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
                "$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)"
        fi
    )
    VERSIONS=$versions python3 - "$@" >"$OUT_DIR/machine.json" <<'EOF'
import json, os, platform, sys, time
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
versions = dict(l.split("\t", 1) for l in os.environ["VERSIONS"].splitlines() if "\t" in l)
print(json.dumps({
    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "nproc": os.cpu_count(), "cpu_model": cpu,
    "kernel": platform.release(), "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "versions": versions, "settings": " ".join(sys.argv[1:]),
}, indent=2))
EOF
}

main() {
    install_missing
    [[ $(nproc) -ge 2 ]] || log "warning: fewer than 2 CPUs; proxy and load share a core"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    local peer
    for peer in $PEERS; do
        declare -F "start_$peer" >/dev/null || die "unknown peer $peer"
        if [[ ($peer == varnish || $peer == static) && $MODE != cache ]]; then
            die "$peer is a cached peer; use MODE=cache"
        fi
    done
    SLUICE_ACCESS_LOG_FLAG=0
    if [[ " $PEERS " == *" sluice"* ]]; then
        if [[ $SKIP_BUILD != 1 ]]; then
            log "cargo build --release"
            (cd "$ROOT" && cargo build --release) \
                || die "cargo build --release failed (PEERS without sluice skips it)"
        fi
        [[ -x $SLUICE_BIN ]] || die "no $SLUICE_BIN"
        local help
        help=$("$SLUICE_BIN" proxy --help 2>&1) || die "$SLUICE_BIN has no working 'proxy' subcommand"
        if [[ $help == *--access-log* ]]; then SLUICE_ACCESS_LOG_FLAG=1; fi
        if [[ " $PEERS " == *" sluice_nometrics "* && $help != *--no-metrics* ]]; then
            die "'$SLUICE_BIN proxy' has no --no-metrics; peer sluice_nometrics needs it"
        fi
        if [[ $MODE == cache && $help != *--cache* ]]; then
            log "warning: '$SLUICE_BIN proxy' has no --cache yet; sluice left out of MODE=cache"
            PEERS=$(echo " $PEERS " | sed 's/ sluice / /; s/^ *//; s/ *$//')
        fi
    fi

    mkdir -p "$OUT_DIR/raw"
    TMP=$(mktemp -d /tmp/sluice-peers.XXXXXX)
    chmod 755 "$TMP"   # nginx workers and varnish drop root privileges and must read the files
    local settings="MODE=$MODE DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONNS=$CONNS"
    settings+=" STREAMS=$STREAMS SCENARIOS='$SCENARIOS' PEERS='$PEERS' PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU"
    if [[ $MODE == cache ]]; then
        settings+=" CACHE_SIZE_MB=$CACHE_SIZE_MB OBJ_CACHE_MB=$OBJ_CACHE_MB OBJ_PEERS='$OBJ_PEERS'"
        settings+=" OBJ_ROUNDS=$OBJ_ROUNDS"
    fi
    if [[ -n $NGINX_EXTRA ]]; then settings+=" NGINX_EXTRA='$NGINX_EXTRA'"; fi
    if [[ -n $HAPROXY_EXTRA ]]; then settings+=" HAPROXY_EXTRA='$HAPROXY_EXTRA'"; fi
    machine_note "$settings"
    make_origin

    local scenario round rounds peers
    for scenario in $SCENARIOS; do
        rounds=$ROUNDS peers=$PEERS
        if [[ $scenario == objs-* ]]; then
            [[ $MODE == cache ]] || die "objs-N scenarios need MODE=cache"
            peers=""
            for peer in $PEERS; do
                if [[ " $OBJ_PEERS " == *" $peer "* ]]; then peers+=" $peer"; fi
            done
            if (($(objs_n "$scenario") >= 100000)); then rounds=$OBJ_ROUNDS; fi
        fi
        # Odd rounds run the peers in order, even rounds in reverse (A B C, C B A, ...), so
        # that a drift of the machine over a round, or an advantage of running first, falls on
        # every peer alike.
        local order reversed
        reversed=$(printf '%s\n' $peers | tac | tr '\n' ' ')
        for ((round = 1; round <= rounds; round++)); do
            order=$peers
            if ((round % 2 == 0)); then order=$reversed; fi
            for peer in $order; do
                run_one "$scenario" "$peer" "$round"
            done
        done
    done

    stop_pid "$ORIGIN_PID"; forget "$ORIGIN_PID"
    $PARSE report "$OUT_DIR/raw.jsonl" "$OUT_DIR/machine.json" "$OUT_DIR"
    log "results in $OUT_DIR"
    if grep -q '"not_hitting": true' "$OUT_DIR/raw.jsonl"; then
        die "some cached runs sent requests to the origin (not_hitting in raw.jsonl): see above"
    fi
}

main "$@"
