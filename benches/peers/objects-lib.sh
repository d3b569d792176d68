# Sourced by objects.sh and ab.sh, which set HERE and LOG_NAME first: the knobs both share
# (CONNS, CACHE, PROXY_CPU, LOAD_CPU, each taken from the environment when set), logging, the
# tool check, a temporary directory with the cleanup of what they start (`begin`, which sets
# the EXIT trap), the nginx origin, the sluice instances, the walk that fills a store, and one
# run's figures from the proxy's CPU clock ticks.
# shellcheck shell=bash

CONNS=${CONNS:-64}                     # wrk connections, per wrk
CACHE=${CACHE:-6GiB}                   # every instance; 1M objects of 1 KiB are charged ~3.2 GB
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

log() { printf '[%s %s] %s\n' "$LOG_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_tools() {
    local tool
    for tool in nginx wrk curl taskset python3; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install nginx wrk curl)"
    done
}

begin() { # sets TMP, a fresh directory removed on exit with everything in STARTED stopped
    TMP=$(mktemp -d "/tmp/sluice-$LOG_NAME.XXXXXX")
    chmod 755 "$TMP"   # nginx's workers drop root privileges and must read the file (else: 403s)
    STARTED=()
    trap cleanup EXIT
}

cleanup() {    # TERM what we started, KILL what is still there after 5 s
    local pid i
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The origin: run.sh's nginx origin config (one 1 KiB file under every /obj/N, cacheable).
start_origin() { # sets ORIGIN_PORT
    ORIGIN_PORT=$(free_port)
    mkdir -p "$TMP/origin" "$TMP/www"
    head -c 1024 /dev/urandom >"$TMP/www/1k.bin"
    python3 "$HERE/parse.py" render "$HERE/conf/origin.nginx.conf" "$TMP/origin/nginx.conf" \
        DIR="$TMP" ORIGIN_PORT="$ORIGIN_PORT" || die "cannot render the origin config"
    taskset -c "$LOAD_CPU" nginx -p "$TMP/origin" -e "$TMP/origin/error.log" \
        -c "$TMP/origin/nginx.conf" &
    STARTED+=($!)
}

start_sluice() { # start_sluice PORT BINARY: sets SLUICE_PID
    env TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$2" proxy \
        --listen "127.0.0.1:$1" --to "127.0.0.1:$ORIGIN_PORT" --cache "$CACHE" --access-log off \
        >"$TMP/sluice-$1.out" 2>"$TMP/sluice-$1.err" &
    SLUICE_PID=$!
    STARTED+=("$SLUICE_PID")
    local deadline=$((SECONDS + 30))
    until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/obj/1"; do
        ((SECONDS < deadline)) || die "sluice on $1 did not answer (see $TMP/sluice-$1.err)"
        sleep 0.1
    done
    local answer
    answer=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$1/obj/1")
    [[ $answer == "200 1024" ]] || die "the origin answered /obj/1 with '$answer', not '200 1024'"
}

walk() { # walk PORT N: every object once (all misses), so the store holds N objects
    local marker="$TMP/walk.done" pid deadline=$((SECONDS + $2 / 2000 + 60))
    rm -f "$marker"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d600s -s "$HERE/lua/walk.lua" \
        "http://127.0.0.1:$1" -- "$2" "$marker" >"$TMP/walk.txt" 2>&1 &
    pid=$!
    while [[ ! -f $marker ]] && ((SECONDS < deadline)); do sleep 0.2; done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -f $marker ]] || die "the walk over $2 objects did not finish"
}

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }   # utime stime, in clock ticks
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }   # resident set, in KiB

# run_stats WRK_OUTPUT TICKS_BEFORE TICKS_AFTER: prints "req/s cpu_s_per_100k user_s_per_100k"
# for one wrk run (parsed by parse.py) against a proxy whose `ticks` were read around it; fails
# on a non-2xx answer or an empty run.
run_stats() {
    python3 - "$HERE" "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'EOF'
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from parse import parse_wrk
run = parse_wrk(sys.argv[2])
if run["non_2xx"] or not run["requests"] or run["rps"] is None:
    sys.exit(f"{sys.argv[2]}: {run['requests']} requests, {run['non_2xx']} non-2xx")
(u0, s0), (u1, s1) = map(int, sys.argv[3].split()), map(int, sys.argv[4].split())
per = 100000 / run["requests"] / int(sys.argv[5])
print(round(run["rps"]), round((u1 + s1 - u0 - s0) * per, 3), round((u1 - u0) * per, 3))
EOF
}
