#!/usr/bin/env bash
# PostgreSQL overhead benchmark: pgbench select-only through no proxy, HAProxy (TCP mode),
# PgBouncer (session mode) and indextap, side by side in one run, against one ephemeral
# PostgreSQL cluster.
#
# What it does:
#   1. initdb a throwaway cluster in a temp dir, on a free loopback port (as a non-root OS
#      user when run as root: $PG_OS_USER, else postgres, else indextap-test, created);
#   2. pgbench -i -s 10;
#   3. starts HAProxy, PgBouncer and indextap (release build), each in a session of its own
#      (setsid, or PgBouncer's own daemon mode), as services run: the kernel groups a
#      session's tasks for scheduling (autogroups), so every proxy is treated alike and none
#      shares pgbench's group;
#   4. for -M prepared and -M simple: pgbench -S -c 8 -j 2 -T 10 against each target, in 3
#      rounds of the four (a slow spell on a shared machine then hits every target);
#   5. pgbench -S -M prepared -c 1 with a per-transaction log against each target, for the
#      p99 latency each proxy adds at one connection (pooled over the rounds, each round's
#      printed too: the direct path's own p99 moves between rounds on a shared machine);
#   6. prints each target's TPS, its ratio to direct, the proxy's CPU time per transaction
#      (from /proc; split into user and system time: the proxies make the same syscalls, so
#      the split shows whether a gap is in a proxy's own code or in the kernel; indextap's
#      analysis threads shown apart), the verdicts of issue 10's targets (indextap's CPU
#      per transaction <= PgBouncer's and TPS >= PgBouncer's, p99 added < 100 µs), the
#      capture check (the SELECT executions on pgbench_accounts indextap counted vs the
#      transactions pgbench reported, and the dropped samples), and README tables;
#   7. prints the SQL normalisation throughput (cached and cold) from the analyzer bench.
# Everything it started is stopped, and the temp dir removed, at exit.
#
# Environment: PG_BIN_DIR (default /usr/lib/postgresql/15/bin), INDEXTAP_BIN (default: build
# target/release/indextap), PGBOUNCER (default /usr/sbin/pgbouncer), BENCH_PG_SECS (default
# 10), BENCH_PG_ROUNDS (default 3), BENCH_PG_SCALE (default 10), BENCH_PG_LATENCY_SECS
# (default 5, per round), BENCH_PG_MODES (default "prepared simple"), BENCH_PG_TARGETS
# (default "direct haproxy pgbouncer indextap"), BENCH_PG_INDEXTAP_CONFIG (a --config file
# for indextap, e.g. `[runtime] threads = 1`), NORMALISE_OUTPUT (a file holding `cargo
# bench --bench normalise` output to reuse).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
SECS=${BENCH_PG_SECS:-10}
ROUNDS=${BENCH_PG_ROUNDS:-3}
SCALE=${BENCH_PG_SCALE:-10}
LATENCY_SECS=${BENCH_PG_LATENCY_SECS:-5}
read -r -a MODES <<<"${BENCH_PG_MODES:-prepared simple}"
read -r -a TARGETS <<<"${BENCH_PG_TARGETS:-direct haproxy pgbouncer indextap}"
CLIENTS=8
THREADS=2
ADDED_P99_TARGET=100

die() { echo "bench-pg: $*" >&2; exit 1; }
for tool in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pgbench" "$PG_BIN/psql" "$HAPROXY" "$PGBOUNCER"; do
  [[ -x $tool ]] || die "missing $tool (set PG_BIN_DIR / HAPROXY / PGBOUNCER)"
done
for tool in jq curl setsid; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# Only our own settings reach the client tools.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10

WORK=$(mktemp -d -t indextap-bench-pg-XXXXXX)
PG_DATA=$WORK/data
PG_STARTED=0
HAPROXY_PID=
PGBOUNCER_PID=
INDEXTAP_PID=
OS_USER=

as_pg() {
  if [[ -n $OS_USER ]]; then runuser -u "$OS_USER" -- "$@"; else "$@"; fi
}

cleanup() {
  local status=$?
  set +e
  [[ -n $INDEXTAP_PID ]] && kill -TERM "$INDEXTAP_PID" 2>/dev/null && wait "$INDEXTAP_PID" 2>/dev/null
  [[ -n $HAPROXY_PID ]] && kill -TERM "$HAPROXY_PID" 2>/dev/null && wait "$HAPROXY_PID" 2>/dev/null
  if [[ -n $PGBOUNCER_PID ]]; then
    kill -TERM "$PGBOUNCER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$PGBOUNCER_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [[ $PG_STARTED == 1 ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing answers on (checked, not reserved: retried by the callers' bind).
free_port() {
  local port
  for _ in $(seq 100); do
    port=$(( (RANDOM * 32768 + RANDOM) % 30000 + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

wait_port() {
  local port=$1 what=$2 pid=${3:-}
  for _ in $(seq 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then die "$what exited early"; fi
    sleep 0.05
  done
  die "$what is not listening on port $port"
}

# --- PostgreSQL -------------------------------------------------------------------------
if [[ $(id -u) == 0 ]]; then
  OS_USER=${PG_OS_USER:-}
  if [[ -z $OS_USER ]]; then
    if id postgres >/dev/null 2>&1; then
      OS_USER=postgres
    else
      OS_USER=indextap-test
      id "$OS_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$OS_USER"
    fi
  fi
  chown "$OS_USER:" "$WORK"
fi
mkdir -p "$WORK/sock" "$WORK/pgbouncer"
[[ -n $OS_USER ]] && chown "$OS_USER:" "$WORK/sock" "$WORK/pgbouncer"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync \
  --no-instructions >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; die "initdb failed"; }
cat >>"$PG_DATA/postgresql.conf" <<'EOF'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 128MB
EOF
PG_PORT=
for _ in 1 2 3; do
  port=$(free_port)
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/postgres.log" -w -t 60 \
      -o "-p $port -k $WORK/sock -c listen_addresses=127.0.0.1" start >/dev/null; then
    PG_PORT=$port
    PG_STARTED=1
    break
  fi
done
[[ -n $PG_PORT ]] || { tail -20 "$WORK/postgres.log"; die "PostgreSQL did not start"; }

pgbench_to() { "$PG_BIN/pgbench" -h 127.0.0.1 -p "$1" -U postgres "${@:2}" postgres; }

echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT; pgbench -i -s $SCALE ..."
pgbench_to "$PG_PORT" -i -q -s "$SCALE" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; die "pgbench -i failed"; }

# --- HAProxy ----------------------------------------------------------------------------
HAPROXY_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s

listen postgres
    bind 127.0.0.1:$HAPROXY_PORT
    server upstream 127.0.0.1:$PG_PORT
EOF
setsid "$HAPROXY" -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
wait_port "$HAPROXY_PORT" haproxy "$HAPROXY_PID"

# --- PgBouncer (session mode: one server connection per client, every message parsed) ------
PGBOUNCER_PORT=$(free_port)
PGB_DIR=$WORK/pgbouncer
echo '"postgres" ""' >"$PGB_DIR/userlist.txt"
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
postgres = host=127.0.0.1 port=$PG_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
max_client_conn = 1000
default_pool_size = 40
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
EOF
[[ -n $OS_USER ]] && chown "$OS_USER:" "$PGB_DIR"/*
# Daemon mode: its own session, like the others; the pid comes from its pidfile.
as_pg "$PGBOUNCER" -d "$PGB_DIR/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 ||
  { cat "$WORK/pgbouncer.out" "$PGB_DIR/pgbouncer.log" 2>/dev/null; die "pgbouncer did not start"; }
for _ in $(seq 100); do [[ -s $PGB_DIR/pgbouncer.pid ]] && break; sleep 0.05; done
PGBOUNCER_PID=$(cat "$PGB_DIR/pgbouncer.pid" 2>/dev/null) || die "pgbouncer wrote no pidfile"
wait_port "$PGBOUNCER_PORT" pgbouncer "$PGBOUNCER_PID"

# --- indextap ---------------------------------------------------------------------------
BIN=${INDEXTAP_BIN:-}
if [[ -z $BIN ]]; then
  (cd "$ROOT" && cargo build --release -q -p indextap-proxy --bin indextap)
  BIN=$ROOT/target/release/indextap
fi
[[ -x $BIN ]] || die "no indextap binary at $BIN"
INDEXTAP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
CONFIG_ARGS=()
[[ -n ${BENCH_PG_INDEXTAP_CONFIG:-} ]] && CONFIG_ARGS=(--config "$BENCH_PG_INDEXTAP_CONFIG")
env $(env | awk -F= '/^INDEXTAP_/ {print "-u " $1}') \
  setsid "$BIN" proxy --pg-listen "127.0.0.1:$INDEXTAP_PORT" --pg-upstream "127.0.0.1:$PG_PORT" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" "${CONFIG_ARGS[@]}" >"$WORK/indextap.log" 2>&1 &
INDEXTAP_PID=$!
wait_port "$INDEXTAP_PORT" indextap "$INDEXTAP_PID"
wait_port "$ADMIN_PORT" "indextap admin" "$INDEXTAP_PID"
echo "indextap: $(grep -o 'data threads started threads=[0-9]*' "$WORK/indextap.log" | head -1)"
ADMIN=http://127.0.0.1:$ADMIN_PORT

port_of() {
  case $1 in
    direct) echo "$PG_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
    pgbouncer) echo "$PGBOUNCER_PORT" ;;
    indextap) echo "$INDEXTAP_PORT" ;;
  esac
}
pid_of() {
  case $1 in
    haproxy) echo "$HAPROXY_PID" ;;
    pgbouncer) echo "$PGBOUNCER_PID" ;;
    indextap) echo "$INDEXTAP_PID" ;;
    *) echo "" ;;
  esac
}

# SELECT executions on pgbench_accounts that indextap has counted.
captured() {
  curl -fsS "$ADMIN/api/v1/shapes" |
    jq '[.shapes[] | select(.collection == "pgbench_accounts" and .command == "select") | .count] | add // 0'
}

# Poll until the count reaches $1, or stops moving for a second (observations are async).
wait_captured() {
  local want=$1 now last=-1 still=0
  for _ in $(seq 150); do
    now=$(captured)
    if (( now >= want )); then echo "$now"; return; fi
    if (( now == last )); then still=$((still + 1)); else still=0; last=$now; fi
    if (( still >= 10 )); then echo "$now"; return; fi
    sleep 0.1
  done
  echo "$now"
}

# CPU clock ticks of process $1: "user system analysis", analysis being the user + system
# ticks of the threads named indextap-analys(is-N).
cpu_ticks() {
  local user=0 system=0 analysis=0 stat name rest utime stime
  for task in /proc/"$1"/task/*; do
    stat=$(cat "$task/stat" 2>/dev/null) || continue
    name=${stat#*(}; name=${name%)*}
    rest=${stat##*)}
    read -r utime stime < <(awk '{print $12, $13}' <<<"$rest")
    user=$((user + utime))
    system=$((system + stime))
    [[ $name == indextap-analys* ]] && analysis=$((analysis + utime + stime))
  done
  echo "$user $system $analysis"
}
TICKS=$(getconf CLK_TCK)
# Clock ticks $1 as µs per transaction of $2 transactions, to $3 decimals.
per_txn() {
  awk -v t="$1" -v n="$2" -v hz="$TICKS" -v d="$3" 'BEGIN {printf "%.*f", d, t * 1e6 / hz / (n > 0 ? n : 1)}'
}

# --- throughput runs --------------------------------------------------------------------
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), shared by pgbench, the proxy and PostgreSQL; nothing pinned"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at start: $LOAD_START"
echo "each run: pgbench -n -S -c $CLIENTS -j $THREADS -T $SECS, scale $SCALE; $ROUNDS rounds of ${TARGETS[*]} per mode (TPS: the rounds' mean)"
echo

declare -A TPS TXNS CPU CPU_NUM SPLIT SPLIT_README TPS_SUM TXNS_SUM TICKS_USER TICKS_SYSTEM TICKS_ANALYSIS CAPTURED P99 P99_ROUNDS
CAPTURE_LINES=()
DROPPED=""
for mode in "${MODES[@]}"; do
  for target in "${TARGETS[@]}"; do
    TPS_SUM[$mode,$target]=0; TXNS_SUM[$mode,$target]=0
    TICKS_USER[$mode,$target]=0; TICKS_SYSTEM[$mode,$target]=0; TICKS_ANALYSIS[$mode,$target]=0
    CAPTURED[$mode,$target]=0
  done
  # Rounds of every target in turn: a slow spell on a shared machine hits every target,
  # not just the one that happened to be running.
  for round in $(seq 1 "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
      port=$(port_of "$target")
      pid=$(pid_of "$target")
      before=0
      [[ $target == indextap ]] && before=$(captured)
      [[ -n $pid ]] && read -r cpu_user cpu_system cpu_analysis < <(cpu_ticks "$pid")
      out=$WORK/pgbench-$mode-$target-$round.log
      pgbench_to "$port" -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$SECS" >"$out" 2>&1 ||
        { cat "$out"; die "pgbench -M $mode against $target failed"; }
      tps=$(awk '/^tps = / {print $3; exit}' "$out")
      txns=$(awk -F': ' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]; exit}' "$out")
      TPS_SUM[$mode,$target]=$(awk -v a="${TPS_SUM[$mode,$target]}" -v b="$tps" 'BEGIN {print a + b}')
      TXNS_SUM[$mode,$target]=$((TXNS_SUM[$mode,$target] + txns))
      if [[ -n $pid ]]; then
        read -r now_user now_system now_analysis < <(cpu_ticks "$pid")
        TICKS_USER[$mode,$target]=$((TICKS_USER[$mode,$target] + now_user - cpu_user))
        TICKS_SYSTEM[$mode,$target]=$((TICKS_SYSTEM[$mode,$target] + now_system - cpu_system))
        TICKS_ANALYSIS[$mode,$target]=$((TICKS_ANALYSIS[$mode,$target] + now_analysis - cpu_analysis))
      fi
      echo "  -M $mode via $target, round $round: $tps tps"
      if [[ $target == indextap ]]; then
        after=$(wait_captured $((before + txns)))
        CAPTURED[$mode,$target]=$((CAPTURED[$mode,$target] + after - before))
      fi
    done
  done
  for target in "${TARGETS[@]}"; do
    TPS[$mode,$target]=$(awk -v t="${TPS_SUM[$mode,$target]}" -v r="$ROUNDS" 'BEGIN {print t / r}')
    TXNS[$mode,$target]=${TXNS_SUM[$mode,$target]}
    CPU[$mode,$target]=-
    CPU_NUM[$mode,$target]=0
    SPLIT[$mode,$target]=-
    SPLIT_README[$mode,$target]=-
    if [[ $target != direct ]]; then
      txns=${TXNS[$mode,$target]}
      ticks=$((TICKS_USER[$mode,$target] + TICKS_SYSTEM[$mode,$target]))
      CPU_NUM[$mode,$target]=$(per_txn "$ticks" "$txns" 2)
      CPU[$mode,$target]=$(per_txn "$ticks" "$txns" 1)
      SPLIT[$mode,$target]="$(per_txn "${TICKS_USER[$mode,$target]}" "$txns" 1) + $(per_txn "${TICKS_SYSTEM[$mode,$target]}" "$txns" 1)"
      SPLIT_README[$mode,$target]=${SPLIT[$mode,$target]}
      if [[ $target == indextap ]]; then
        analysis=$(per_txn "${TICKS_ANALYSIS[$mode,$target]}" "$txns" 1)
        CPU[$mode,$target]+=" ($analysis analysis)"
        SPLIT_README[$mode,$target]+=" (analysis $analysis)"
      fi
    fi
  done
  if [[ " ${TARGETS[*]} " == *" indextap "* ]]; then
    got=${CAPTURED[$mode,indextap]}
    sent=${TXNS[$mode,indextap]}
    CAPTURE_LINES+=("$(awk -v m="$mode" -v g="$got" -v s="$sent" 'BEGIN {printf "  -M %-8s captured %d SELECTs on pgbench_accounts vs %d transactions reported (%.3f%%)", m, g, s, 100 * g / (s > 0 ? s : 1)}')")
  fi
done

# --- latency at one connection ----------------------------------------------------------
# pgbench's per-transaction log: the third field is the latency in µs.
p99_of_logs() {
  cat "$@" | awk '{print $3}' | sort -n | awk '{v[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; print v[i]}'
}
echo
echo "latency: pgbench -n -S -M prepared -c 1 -T $LATENCY_SECS, $ROUNDS rounds per target, every transaction logged"
for round in $(seq 1 "$ROUNDS"); do
  for target in "${TARGETS[@]}"; do
    out=$WORK/latency-$target-$round.log
    (cd "$WORK" && pgbench_to "$(port_of "$target")" -n -S -M prepared -c 1 -j 1 -T "$LATENCY_SECS" \
      --log --log-prefix="lat-$target-$round" >"$out" 2>&1) ||
      { cat "$out"; die "pgbench -c 1 against $target failed"; }
  done
done
# Each round's p99 too: on a shared machine the direct path's own p99 moves between rounds,
# and the pooled figure alone hides whether a proxy's difference outlasts that.
for target in "${TARGETS[@]}"; do
  P99[$target]=$(p99_of_logs "$WORK"/lat-"$target"-*)
  round_p99s=()
  for round in $(seq 1 "$ROUNDS"); do
    round_p99s+=("$(p99_of_logs "$WORK"/lat-"$target"-"$round".*)")
  done
  P99_ROUNDS[$target]=$(IFS=,; echo "${round_p99s[*]}" | sed 's/,/, /g')
  echo "  $target: p99 ${P99[$target]} µs (rounds: ${P99_ROUNDS[$target]})"
done

# --- tables -----------------------------------------------------------------------------
echo
printf '| %-8s | %-9s | %9s | %9s | %12s | %22s | %13s |\n' mode target "TPS" "vs direct" transactions "proxy CPU µs/txn" "user + system"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------- ----------- ----------- ----------- -------------- ------------------------ ---------------
for mode in "${MODES[@]}"; do
  direct=${TPS[$mode,direct]:-0}
  for target in "${TARGETS[@]}"; do
    tps=${TPS[$mode,$target]}
    ratio=$(awk -v t="$tps" -v d="$direct" 'BEGIN {if (d > 0) printf "%.1f%%", 100 * t / d; else print "-"}')
    printf '| %-8s | %-9s | %9.0f | %9s | %12s | %22s | %13s |\n' "$mode" "$target" "$tps" "$ratio" "${TXNS[$mode,$target]}" "${CPU[$mode,$target]}" "${SPLIT[$mode,$target]}"
  done
done
echo
if [[ ${#CAPTURE_LINES[@]} -gt 0 ]]; then
  echo "capture (indextap /api/v1/shapes, per run):"
  printf '%s\n' "${CAPTURE_LINES[@]}"
  echo "indextap /metrics dropped samples:"
  DROPPED=$(curl -fsS "$ADMIN/metrics" | grep -v '^#' | grep dropped || true)
  sed 's/^/  /' <<<"$DROPPED"
fi

verdict() { if [[ $1 == 1 ]]; then echo MET; else echo MISSED; fi; }
have() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
echo
if have indextap && have pgbouncer; then
  for mode in "${MODES[@]}"; do
    ours=${CPU_NUM[$mode,indextap]} theirs=${CPU_NUM[$mode,pgbouncer]}
    met=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {print (a <= b) ? 1 : 0}')
    echo "target: -M $mode: indextap CPU/txn <= pgbouncer: $(verdict "$met") ($ours vs $theirs µs, $(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}') x)"
    ours=${TPS[$mode,indextap]} theirs=${TPS[$mode,pgbouncer]}
    met=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {print (a >= b) ? 1 : 0}')
    echo "target: -M $mode: indextap TPS >= pgbouncer: $(verdict "$met") ($(printf '%.0f' "$ours") vs $(printf '%.0f' "$theirs"), $(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}') x)"
  done
fi
if have indextap && have direct; then
  added=$(( P99[indextap] - P99[direct] ))
  met=$(( added < ADDED_P99_TARGET ? 1 : 0 ))
  others=""
  for target in haproxy pgbouncer; do
    have "$target" && others+="; $target $(( P99[$target] - P99[direct] )) µs"
  done
  echo "target: 1 connection: indextap p99 added < $ADDED_P99_TARGET µs: $(verdict "$met") ($added µs$others)"
fi
if have indextap; then
  all=1
  for mode in "${MODES[@]}"; do
    [[ ${CAPTURED[$mode,indextap]} == "${TXNS[$mode,indextap]}" ]] || all=0
  done
  if grep -qv ' 0$' <<<"$DROPPED"; then all=0; fi
  echo "target: indextap captures every SELECT, 0 dropped: $(verdict "$all")"
fi

echo
echo "README table (PostgreSQL 15, pgbench -S -c $CLIENTS; load average at start $LOAD_START):"
echo
echo "| pgbench -S | direct TPS | HAProxy TPS, CPU/txn | PgBouncer TPS, CPU/txn | indextap TPS, CPU/txn | indextap / PgBouncer (TPS, CPU) |"
echo "|---|---|---|---|---|---|"
for mode in "${MODES[@]}"; do
  cell() { awk -v t="${TPS[$mode,$1]:-0}" -v c="${CPU_NUM[$mode,$1]:-0}" 'BEGIN {if (t > 0) printf "%.1fk, %.1f µs", t / 1000, c; else print "-"}'; }
  ratio=$(awk -v t="${TPS[$mode,indextap]:-0}" -v tp="${TPS[$mode,pgbouncer]:-0}" -v c="${CPU_NUM[$mode,indextap]:-0}" -v cp="${CPU_NUM[$mode,pgbouncer]:-0}" \
    'BEGIN {if (tp > 0 && cp > 0 && t > 0) printf "%.2f x, %.2f x", t / tp, c / cp; else print "-"}')
  printf '| %s | %.1fk | %s | %s | %s | %s |\n' "$mode" "$(awk -v t="${TPS[$mode,direct]:-0}" 'BEGIN {print t / 1000}')" \
    "$(cell haproxy)" "$(cell pgbouncer)" "$(cell indextap)" "$ratio"
done
echo
echo "| proxy CPU µs/txn, user + system | HAProxy | PgBouncer | indextap |"
echo "|---|---|---|---|"
for mode in "${MODES[@]}"; do
  printf '| %s | %s | %s | %s |\n' "$mode" "${SPLIT_README[$mode,haproxy]:--}" "${SPLIT_README[$mode,pgbouncer]:--}" "${SPLIT_README[$mode,indextap]:--}"
done
if have direct; then
  echo
  head="| \`pgbench -S -M prepared -c 1\`, p99 per $LATENCY_SECS-second round | direct |"
  rule="|---|---|"
  rounds="| rounds 1–$ROUNDS, µs | ${P99_ROUNDS[direct]} |"
  pooled="| pooled p99, and added to direct's | ${P99[direct]} |"
  declare -A LABEL=([haproxy]=HAProxy [pgbouncer]=PgBouncer [indextap]=indextap)
  for target in haproxy pgbouncer indextap; do
    have "$target" || continue
    head+=" ${LABEL[$target]} |"
    rule+="---|"
    rounds+=" ${P99_ROUNDS[$target]} |"
    pooled+=" ${P99[$target]} ($(printf '%+d' $(( P99[$target] - P99[direct] )))) |"
  done
  printf '%s\n%s\n%s\n%s\n' "$head" "$rule" "$rounds" "$pooled"
fi

# --- SQL normalisation ------------------------------------------------------------------
echo
echo "SQL normalisation, one thread (cargo bench -p indextap-analyzer --bench normalise):"
NORMALISE=${NORMALISE_OUTPUT:-}
if [[ -z $NORMALISE || ! -s $NORMALISE ]]; then
  NORMALISE=$WORK/normalise.txt
  (cd "$ROOT" && cargo bench -q -p indextap-analyzer --bench normalise) >"$NORMALISE" 2>&1 ||
    { cat "$NORMALISE"; die "the normalise bench failed"; }
fi
grep -E '^\|( case|-)' "$NORMALISE" | head -2
grep -E '^\| sql' "$NORMALISE"
