#!/usr/bin/env bash
# User-space instructions per transaction, counted exactly with callgrind (not timed).
#
# indextap (the `profiling` build) runs under `valgrind --tool=callgrind`; one client makes
# WARMUP transactions, the counters are zeroed (`callgrind_control -z`), the client makes
# TXNS more, and the counters are dumped (`callgrind_control -d`), so start-up and warm-up
# are not counted; every thread is (the analysis thread too). Cases:
#   prepared / simple: `pgbench -n -S -c 1 -M ...` against a throwaway PostgreSQL 15
#                      cluster on a free loopback port (as a non-root user when root);
#   mongo:             a raw client sending the overhead bench's OP_MSG `find` to a canned
#                      upstream answering with the bench's canned reply (both in Python,
#                      with pymongo's bson, below).
# Prints one line per case: instructions per transaction.
#
# Environment: INDEXTAP_BIN (default: build target/profiling/indextap), PG_BIN_DIR (default
# /usr/lib/postgresql/15/bin), PYTHON (default /opt/secantus/bin/python), CALLGRIND_CASES
# (default "prepared simple mongo"), CALLGRIND_TXNS (2000), CALLGRIND_WARMUP (300),
# CALLGRIND_CLIENTS (1: the clients that share the transactions, each on a connection of its
# own; batching across connections only shows with several), CALLGRIND_KEEP (a directory to
# keep the callgrind.out files in, for callgrind_annotate).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
PYTHON=${PYTHON:-/opt/secantus/bin/python}
TXNS=${CALLGRIND_TXNS:-2000}
WARMUP=${CALLGRIND_WARMUP:-300}
CLIENTS=${CALLGRIND_CLIENTS:-1}
(( CLIENTS >= 1 && TXNS % CLIENTS == 0 && WARMUP % CLIENTS == 0 )) ||
  { echo "callgrind: CALLGRIND_TXNS and CALLGRIND_WARMUP must be multiples of CALLGRIND_CLIENTS" >&2; exit 1; }
read -r -a CASES <<<"${CALLGRIND_CASES:-prepared simple mongo}"

die() { echo "callgrind: $*" >&2; exit 1; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  die "valgrind is required"
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS
export PGSSLMODE=disable

BIN=${INDEXTAP_BIN:-}
if [[ -z $BIN ]]; then
  (cd "$ROOT" && cargo build --profile profiling -q -p indextap-proxy --bin indextap)
  BIN=$ROOT/target/profiling/indextap
fi

WORK=$(mktemp -d -t indextap-callgrind-XXXXXX)
chmod 755 "$WORK"
PIDS=()
PG_STARTED=0
OS_USER=
as_pg() { if [[ -n $OS_USER ]]; then runuser -u "$OS_USER" -- "$@"; else "$@"; fi; }
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  [[ $PG_STARTED == 1 ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && break
    sleep 0.1
  done
  [[ -n ${3:-} ]] && tail -20 "$3" >&2
  die "nothing listens on port $1"
}

# indextap under callgrind in front of 127.0.0.1:$2 for engine $1; sets LISTEN and VG_PID.
start_indextap() {
  LISTEN=$(free_port)
  # indextap refuses unknown INDEXTAP_* variables (INDEXTAP_BIN is the script's own).
  env $(env | awk -F= '/^INDEXTAP_/ {print "-u " $1}') valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.$3" \
    "$BIN" proxy --"$1"-listen "127.0.0.1:$LISTEN" --"$1"-upstream "127.0.0.1:$2" \
    --admin-listen "127.0.0.1:$(free_port)" >"$WORK/indextap.$3.log" 2>&1 &
  VG_PID=$!
  PIDS+=("$VG_PID")
  wait_port "$LISTEN" "$VG_PID" "$WORK/indextap.$3.log"
}

# Zero, run "$@" (the measured transactions), dump, and print instructions per transaction.
measure() {
  local name=$1
  shift
  callgrind_control -z "$VG_PID" >/dev/null 2>&1
  "$@" >"$WORK/client.$name.log" 2>&1 || { cat "$WORK/client.$name.log"; die "$name: client failed"; }
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  local dump
  dump=$(ls -t "$WORK"/callgrind.out."$name".* | head -1)
  awk -v n="$TXNS" -v name="$name" '/^(summary|totals):/ {total = $2}
    END {printf "%-9s %8.0f instructions per transaction (%d transactions, '"$CLIENTS"' clients)\n", name, total / n, n}' "$dump"
  [[ -n ${CALLGRIND_KEEP:-} ]] && cp "$dump" "$CALLGRIND_KEEP/callgrind.out.$name"
  kill -TERM "$VG_PID"
  wait "$VG_PID" 2>/dev/null || true
}

pg_case() {
  if [[ $PG_STARTED == 0 ]]; then
    if [[ $(id -u) == 0 ]]; then
      OS_USER=${PG_OS_USER:-postgres}
      id "$OS_USER" >/dev/null 2>&1 || { OS_USER=indextap-test; id "$OS_USER" >/dev/null 2>&1 ||
        useradd --system --no-create-home "$OS_USER"; }
      chown "$OS_USER:" "$WORK"
    fi
    as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust --no-sync >/dev/null
    PG_PORT=$(free_port)
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
      -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    PG_STARTED=1
    "$PG_BIN/pgbench" -q -i -s 1 -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1
  fi
  start_indextap pg "$PG_PORT" "$1"
  local bench=("$PG_BIN/pgbench" -n -S -c "$CLIENTS" -j "$CLIENTS" -M "$1" -h 127.0.0.1 -p "$LISTEN" -U postgres)
  "${bench[@]}" -t $((WARMUP / CLIENTS)) postgres >/dev/null 2>&1 || die "$1: warm-up failed"
  measure "$1" "${bench[@]}" -t $((TXNS / CLIENTS)) postgres
}

MONGO_PY='
import socket, struct, sys, threading, bson
def frame(doc, rid=0, to=0):
    body = struct.pack("<IB", 0, 0) + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), rid, to, 2013) + body
def read(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
def request_id(s):
    size, rid = struct.unpack("<ii", read(s, 8))
    read(s, size - 8)
    return rid
def nodelay(s): s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def serve(s, reply):
    try:
        while True:
            s.sendall(reply[:8] + struct.pack("<i", request_id(s)) + reply[12:])
    except (EOFError, OSError):
        s.close()
if sys.argv[1] == "upstream":
    reply = frame({"cursor": {"firstBatch": [{"_id": 1, "status": "A"}], "id": bson.Int64(0),
                              "ns": "app.orders"}, "ok": 1.0})
    listener = socket.create_server(("127.0.0.1", int(sys.argv[2])))
    while True:
        threading.Thread(target=serve, args=(nodelay(listener.accept()[0]), reply), daemon=True).start()
else:
    s = nodelay(socket.create_connection(("127.0.0.1", int(sys.argv[2]))))
    for i in range(int(sys.argv[3])):
        s.sendall(frame({"find": "orders", "filter": {"status": "A", "customerId": bson.Int64(i % 4)},
                         "sort": {"createdAt": -1}, "projection": {"_id": 1, "status": 1, "total": 1},
                         "limit": 20, "lsid": {"id": bson.Binary(b"\x5a" * 16, 4)}, "$db": "app"}, i + 1))
        request_id(s)
'
# CLIENTS raw clients at once, $1 finds between them.
mongo_clients() {
  local pids=() status=0
  for _ in $(seq "$CLIENTS"); do
    "$PYTHON" -c "$MONGO_PY" client "$LISTEN" $(($1 / CLIENTS)) &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  return "$status"
}
mongo_case() {
  local upstream
  upstream=$(free_port)
  "$PYTHON" -c "$MONGO_PY" upstream "$upstream" &
  PIDS+=("$!")
  wait_port "$upstream"
  start_indextap mongo "$upstream" mongo
  mongo_clients "$WARMUP" || die "mongo: warm-up failed"
  measure mongo mongo_clients "$TXNS"
}

echo "callgrind: $BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
for case in "${CASES[@]}"; do
  case $case in
    prepared | simple) pg_case "$case" ;;
    mongo) mongo_case ;;
    *) die "unknown case $case" ;;
  esac
done
