#!/usr/bin/env bash
# bench/nodes.sh: the queue on bbolt against the queue on PostgreSQL, and 1, 2
# and 3 nodes on one database, all in the same run (issue 14), so every figure
# is a ratio against the bbolt single node measured alongside it.
#
# Usage: bench/nodes.sh              (run from anywhere; as root or not)
#   intake   smtp-source into one node whose next hop is dead: durable intake
#            (a 250 only after fsync / COMMIT), bbolt then postgres.
#   e2e      smtp-source into one node relaying to smtp-sink; the clock stops
#            when the queue is empty again, bbolt then postgres.
#   nodes    the same end to end with 1, 2 and 3 nodes on one database, the
#            messages split over every node's listener at once.
# For each PostgreSQL run it also prints commits (pg_stat_database
# xact_commit) and statements (pg_stat_statements calls) per message.
# Environment: MESSAGES (2000), SESSIONS (16), SIZE (4096 bytes), RUNS (all of
#   intake-bbolt intake-postgres e2e-bbolt e2e-postgres-{1node,2nodes,3nodes}), KEEP=1
#   keeps the temp dir (logs, the database) for a look.
# PostgreSQL is Debian's postgresql package, private to this run: initdb into
# the temp dir, unix socket only (listen_addresses = ''), fsync on. Talks only
# to 127.0.0.1 and that socket. Everything it starts is stopped by PID on exit.
set -euo pipefail

MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-16}
SIZE=${SIZE:-4096}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
RUNS=${RUNS:-"intake-bbolt intake-postgres e2e-bbolt e2e-postgres-1node e2e-postgres-2nodes e2e-postgres-3nodes"}

repo=$(cd "$(dirname "$0")/.." && pwd)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $pgbin/postgres ]] || {
	echo "$0: PostgreSQL is not installed (run .ci/install-peers)" >&2
	exit 1
}
for prog in smtp-source smtp-sink jq go; do
	command -v "$prog" >/dev/null || {
		echo "$0: $prog is not installed (run .ci/install-peers)" >&2
		exit 1
	}
done

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/mailq-nodes.XXXXXX")
chmod 0711 "$tmp"
pg=$tmp/pg
pg_pid=
sink_pid=
node_pids=()

cleanup() {
	local rc=$?
	set +e
	stop_nodes
	[[ -n $sink_pid ]] && kill -TERM "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
	if [[ -n $pg_pid ]]; then
		# A background job of a script ignores SIGINT: ask pg_ctl for a fast stop.
		"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null 2>&1 || kill -KILL "$pg_pid"
		wait "$pg_pid" 2>/dev/null
	fi
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }

# --- PostgreSQL: private, as an unprivileged user when we are root ------------
as_pg=()
if [[ $(id -u) == 0 ]]; then
	pguser=postgres
	id "$pguser" >/dev/null 2>&1 || pguser=nobody
	as_pg=(runuser -u "$pguser" --)
fi
mkdir -p "$pg"
[[ ${#as_pg[@]} -gt 0 ]] && chown "$pguser" "$pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 >"$tmp/initdb.log" 2>&1
"${as_pg[@]}" "$pgbin/postgres" -D "$pg/data" -c listen_addresses= -c unix_socket_directories="$pg" \
	-c fsync=on -c synchronous_commit=on -c max_connections=200 \
	-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all >"$pg/log" 2>&1 &
pg_pid=$!
for _ in $(seq 300); do
	"$pgbin/pg_isready" -q -h "$pg" -U postgres && break
	sleep 0.1
done
psql_() { "$pgbin/psql" -X -q -t -A -h "$pg" -U postgres "$@"; }
psql_ -d postgres -c "CREATE EXTENSION pg_stat_statements"

# --- the next hop and the mailq binaries -------------------------------------
dead_port=$(free_port)
sink_port=$(free_port)
sink_args=()
[[ $(id -u) == 0 ]] && sink_args=(-u nobody)
smtp-sink "${sink_args[@]}" 127.0.0.1:"$sink_port" 1024 >"$tmp/sink.log" 2>&1 &
sink_pid=$!
(cd "$repo" && go build -o "$tmp/mailq" ./cmd/mailq && go build -o "$tmp/mailqctl" ./cmd/mailqctl)

# start_node NAME BACKEND NEXT_HOP_PORT WORKERS: a daemon with its own data,
# socket and listener; its port goes to node_ports.
node_ports=()
node_dirs=()
start_node() {
	local name=$1 backend=$2 hop=$3 workers=$4 dir=$tmp/$1 port
	port=$(free_port)
	mkdir -p "$dir"
	chmod 0700 "$dir"
	local queue="[queue]
backend = \"bbolt\""
	[[ $backend == postgres ]] && queue="[queue]
backend = \"postgres\"
dsn = \"host=$pg user=postgres dbname=mailq\"
node_name = \"$name\""
	cat >"$dir/mailq.toml" <<CFG
data_dir = "$dir/data"
hostname = "$name.bench.localdomain"
shutdown_grace = "2s"
$queue

[control]
socket = "$dir/control.sock"
socket_group = "$(id -gn)"

[maildrop]
dir = "$dir/maildrop"

[delivery]
workers = $workers

[[submission]]
listen = "127.0.0.1:$port"

[[route]]
name = "bench"
domains = ["*"]
host = "127.0.0.1"
port = $hop
CFG
	"$tmp/mailq" --config "$dir/mailq.toml" 2>"$dir/mailq.log" &
	node_pids+=($!)
	for _ in $(seq 600); do
		grep -qs '"message":"ready"' "$dir/mailq.log" && break
		kill -0 "${node_pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '"message":"ready"' "$dir/mailq.log" || {
		echo "$0: node $name did not log \"ready\"; its log:" >&2
		tail -n 30 "$dir/mailq.log" >&2
		exit 1
	}
	node_ports+=("$port")
	node_dirs+=("$dir")
}

stop_nodes() {
	for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null; done
	node_pids=()
	node_ports=()
	node_dirs=()
}

stat_of() { # stat_of DIR FIELD: one field of that node's `mailqctl stats --json`
	"$tmp/mailqctl" --socket "$1/control.sock" stats --json | jq -r ".$2"
}

fresh_db() {
	psql_ -d postgres -c "DROP DATABASE IF EXISTS mailq" -c "CREATE DATABASE mailq"
}
pg_counters() { # commits and statements so far in database mailq
	psql_ -d postgres -c "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = 'mailq'),
		(SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'mailq')" | tr '|' ' '
}

results=$tmp/results
: >"$results"

# run LABEL KIND BACKEND NODES: one measured run. KIND intake or e2e.
run() {
	local label=$1 kind=$2 backend=$3 n=$4 hop=$sink_port workers=32 i
	[[ $kind == intake ]] && hop=$dead_port workers=1
	[[ $backend == postgres ]] && fresh_db
	rm -rf "${tmp:?}"/node*
	for ((i = 1; i <= n; i++)); do start_node "node$i" "$backend" "$hop" "$workers"; done
	local before=(0 0)
	if [[ $backend == postgres ]]; then
		sleep 1.1 # statistics are flushed at most once a second: counters are read as differences
		read -ra before <<<"$(pg_counters)"
	fi
	local per=$((MESSAGES / n)) total=$((MESSAGES / n * n)) sessions=$(((SESSIONS + n - 1) / n)) pids=()
	local start end
	start=$(now)
	for ((i = 0; i < n; i++)); do
		smtp-source -s "$sessions" -m "$per" -l "$SIZE" -f a@example.com -t b@example.org \
			127.0.0.1:"${node_ports[$i]}" >"$tmp/source$i.log" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || {
		echo "$0: smtp-source failed:" >&2
		cat "$tmp"/source*.log >&2
		exit 1
	}; done
	if [[ $kind == e2e ]]; then
		local deadline=$((SECONDS + DRAIN_TIMEOUT))
		until [[ $(stat_of "${node_dirs[0]}" live) == 0 ]]; do
			((SECONDS < deadline)) || {
				echo "$0: $label did not empty its queue within ${DRAIN_TIMEOUT}s" >&2
				exit 1
			}
			sleep 0.05
		done
	fi
	end=$(now)
	# Nothing acknowledged may be missing: kept (intake) or done (e2e), on every node's view.
	local field=live
	[[ $kind == e2e ]] && field=done
	for d in "${node_dirs[@]}"; do
		local got
		got=$(stat_of "$d" "$field")
		[[ $got == "$total" ]] || {
			echo "$0: $label: $(basename "$d") stats $field=$got, sent $total" >&2
			exit 1
		}
	done
	stop_nodes
	local commits=- statements=-
	if [[ $backend == postgres ]]; then
		sleep 1.1
		local after
		read -ra after <<<"$(pg_counters)"
		commits=$(awk -v a="${before[0]}" -v b="${after[0]}" -v n="$total" 'BEGIN { printf "%.1f", (b - a) / n }')
		statements=$(awk -v a="${before[1]}" -v b="${after[1]}" -v n="$total" 'BEGIN { printf "%.1f", (b - a) / n }')
	fi
	local rate
	rate=$(awk -v n="$total" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
	echo "$label $rate $commits $statements" >>"$results"
	echo "  $label: $rate msg/s, $total messages in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')s; per message: $commits commits, $statements statements" >&2
}

echo "messages=$MESSAGES sessions=$SESSIONS size=$SIZE postgres=$("$pgbin/postgres" --version)" >&2
for r in $RUNS; do
	case $r in
	intake-bbolt) run "$r" intake bbolt 1 ;;
	intake-postgres) run "$r" intake postgres 1 ;;
	e2e-bbolt) run "$r" e2e bbolt 1 ;;
	e2e-postgres-[123]node*) run "$r" e2e postgres "${r:13:1}" ;;
	*)
		echo "$0: unknown run $r" >&2
		exit 2
		;;
	esac
done

rate_of() { awk -v l="$1" '$1 == l { print $2 }' "$results"; }
echo
echo "# msg/s, $MESSAGES x $SIZE B messages, $SESSIONS SMTP sessions in all, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(cd "$repo" && git rev-parse --short HEAD)"
printf '%-22s %8s %8s %14s %17s\n' run "msg/s" ratio "commits/msg" "statements/msg"
while read -r label rate commits statements; do
	base=e2e-bbolt
	[[ $label == intake-* ]] && base=intake-bbolt
	printf '%-22s %8s %8s %14s %17s\n' "$label" "$rate" \
		"$(awk -v a="$rate" -v b="$(rate_of "$base")" 'BEGIN { printf "%.2f", a / b }')" "$commits" "$statements"
done <"$results"
echo "(ratio: against bbolt on one node in the same run, intake or end to end)"
