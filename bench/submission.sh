#!/usr/bin/env bash
# bench/submission.sh: mailq's SMTP submission listener against Postfix's smtpd,
# both started privately on loopback in the same run, so the figures are ratios
# against a baseline measured alongside them on the same machine (issue 6).
#
# Usage: bench/submission.sh [accept|relay]      (run as root, from anywhere)
#   accept (default)  acceptance rate: smtp-source into each listener; nothing is
#                     delivered (both relay to a dead loopback port and defer),
#                     so the figure is durable intake (a 250 only after fsync).
#   relay             end to end: smtp-source into each, both relay to one
#                     smtp-sink; the clock stops when the queue is empty again.
# Environment: MESSAGES (5000), SESSIONS ("8 32"), ROUNDS (3), SIZE (4096 bytes),
#   TARGETS ("postfix mailq"), KEEP=1 keeps the temp dir (logs, queues) for a look.
# Talks only to 127.0.0.1. Everything it starts is stopped by PID on exit.
set -euo pipefail

mode=${1:-accept}
case $mode in
accept | relay) ;;
*)
	echo "usage: $0 [accept|relay]" >&2
	exit 2
	;;
esac
MESSAGES=${MESSAGES:-5000}
SESSIONS=${SESSIONS:-"8 32"}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-4096}
TARGETS=${TARGETS:-"postfix mailq"}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}

repo=$(cd "$(dirname "$0")/.." && pwd)
for prog in postfix postconf smtp-source smtp-sink jq go; do
	command -v "$prog" >/dev/null || {
		echo "$0: $prog is not installed (run .ci/install-peers)" >&2
		exit 1
	}
done
if [[ $(id -u) != 0 ]]; then
	echo "$0: run as root: Postfix's master must start as root" >&2
	exit 1
fi

# The temp dir is on the same disk as everything else (never tmpfs: the point is
# fsync). 0711: Postfix's unprivileged daemons must traverse it, nobody may list it.
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/mailq-bench.XXXXXX")
chmod 0711 "$tmp"
pf=$tmp/postfix
mq=$tmp/mailq
mailq_pid=
sink_pid=
source_pid=

cleanup() {
	local rc=$?
	set +e
	if [[ -n $source_pid ]]; then
		kill -TERM "$source_pid" 2>/dev/null
		wait "$source_pid" 2>/dev/null
	fi
	if [[ -n $mailq_pid ]]; then
		kill -TERM "$mailq_pid" 2>/dev/null
		wait "$mailq_pid" 2>/dev/null
	fi
	if [[ -f $pf/spool/pid/master.pid ]]; then
		local master
		master=$(tr -d ' ' <"$pf/spool/pid/master.pid")
		postfix -c "$pf/etc" stop >/dev/null 2>&1
		for _ in $(seq 100); do
			kill -0 "$master" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$master" 2>/dev/null
	fi
	if [[ -n $sink_pid ]]; then
		kill -TERM "$sink_pid" 2>/dev/null
		wait "$sink_pid" 2>/dev/null
	fi
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a loopback TCP port nobody listens on right now.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# listening PORT succeeds when something accepts connections on 127.0.0.1:PORT.
listening() {
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_listening NAME PORT LOG waits up to 15s for the port, else shows LOG and fails.
wait_listening() {
	for _ in $(seq 150); do
		listening "$2" && return 0
		sleep 0.1
	done
	echo "$0: $1 is not listening on 127.0.0.1:$2; its log ($3):" >&2
	tail -n 30 "$3" >&2 || true
	exit 1
}

now() { date +%s.%N; }

dead_port=$(free_port) # nothing listens here: deliveries in accept mode defer
if [[ $mode == relay ]]; then
	sink_port=$(free_port)
	smtp-sink -u nobody 127.0.0.1:"$sink_port" 1024 >"$tmp/sink.log" 2>&1 &
	sink_pid=$!
	wait_listening smtp-sink "$sink_port" "$tmp/sink.log"
	next_hop=$sink_port
else
	next_hop=$dead_port
fi

# --- Postfix: a private instance, its own config, queue and log in $pf ---------
start_postfix() {
	pf_port=$(free_port)
	mkdir -p "$pf/etc" "$pf/spool" "$pf/data"
	cp -a /etc/postfix/. "$pf/etc/"
	rm -f "$pf/etc/makedefs.out" # a symlink out of the directory; postfix check warns
	chown postfix: "$pf/data"
	chmod 0700 "$pf/data"
	: >"$pf/etc/main.cf"
	postconf -c "$pf/etc" -e \
		"compatibility_level = 3.6" \
		"config_directory = $pf/etc" \
		"queue_directory = $pf/spool" \
		"data_directory = $pf/data" \
		"maillog_file = $pf/maillog" \
		"myhostname = postfix-bench.localdomain" \
		"inet_interfaces = 127.0.0.1" \
		"inet_protocols = ipv4" \
		"mydestination =" \
		"mynetworks = 127.0.0.0/8" \
		"relayhost = [127.0.0.1]:$next_hop" \
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
		"alias_maps =" \
		"alias_database =" \
		"smtp_tls_security_level = none" \
		"smtpd_tls_security_level = none"
	# Nothing populates a chroot here; the smtpd listens on our port, not 25.
	postconf -c "$pf/etc" -F '*/*/chroot = n'
	postconf -c "$pf/etc" -MX smtp/inet
	postconf -c "$pf/etc" -M "127.0.0.1:$pf_port/inet = 127.0.0.1:$pf_port inet n - n - - smtpd"
	postfix -c "$pf/etc" start >"$tmp/postfix-start.log" 2>&1 || {
		echo "$0: postfix start failed:" >&2
		cat "$tmp/postfix-start.log" "$pf/maillog" >&2 2>/dev/null || true
		exit 1
	}
	wait_listening postfix "$pf_port" "$pf/maillog"
}

# postfix_queued prints how many messages are in the instance's queues.
postfix_queued() {
	find "$pf/spool/incoming" "$pf/spool/active" "$pf/spool/deferred" "$pf/spool/maildrop" \
		"$pf/spool/hold" -type f 2>/dev/null | wc -l
}

# --- mailq: the daemon built from this tree, its own config and data in $mq ----
start_mailq() {
	mq_port=$(free_port)
	mkdir -p "$mq"
	chmod 0700 "$mq"
	(cd "$repo" && go build -o "$mq/mailq" ./cmd/mailq && go build -o "$mq/mailqctl" ./cmd/mailqctl)
	local workers=1 # accept: keep the CPU for intake; deliveries only defer
	[[ $mode == relay ]] && workers=32
	cat >"$mq/mailq.toml" <<EOF
data_dir = "$mq/data"
hostname = "mailq-bench.localdomain"
shutdown_grace = "2s"
log_level = "info"

[control]
socket = "$mq/control.sock"
socket_group = "$(id -gn)"

[maildrop]
dir = "$mq/maildrop"

[delivery]
workers = $workers

[[submission]]
listen = "127.0.0.1:$mq_port"

[[route]]
name = "bench"
domains = ["*"]
host = "127.0.0.1"
port = $next_hop
EOF
	"$mq/mailq" --config "$mq/mailq.toml" 2>"$mq/mailq.log" &
	mailq_pid=$!
	for _ in $(seq 300); do
		grep -q '"message":"ready"' "$mq/mailq.log" && break
		kill -0 "$mailq_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '"message":"ready"' "$mq/mailq.log"; then
		echo "$0: mailq did not log \"ready\"; its log:" >&2
		tail -n 30 "$mq/mailq.log" >&2
		exit 1
	fi
	if ! listening "$mq_port"; then
		echo "$0: mailq is ready but nothing listens on its [[submission]] 127.0.0.1:$mq_port" \
			"(is the listener wired into cmd/mailq?); its log:" >&2
		tail -n 30 "$mq/mailq.log" >&2
		exit 1
	fi
}

mailq_stat() { # mailq_stat FIELD prints one field of `mailqctl stats --json`
	"$mq/mailqctl" --socket "$mq/control.sock" stats --json | jq -r ".$1"
}

# --- the runs ------------------------------------------------------------------
for target in $TARGETS; do
	case $target in
	postfix) start_postfix ;;
	mailq) start_mailq ;;
	*)
		echo "$0: unknown target $target (postfix or mailq)" >&2
		exit 2
		;;
	esac
done

results=$tmp/results
: >"$results"
declare -A sent=([postfix]=0 [mailq]=0)

# drain TARGET waits until TARGET's queue is empty (relay mode).
drain() {
	local deadline=$((SECONDS + DRAIN_TIMEOUT))
	while ((SECONDS < deadline)); do
		case $1 in
		postfix) [[ $(postfix_queued) == 0 ]] && return 0 ;;
		mailq) [[ $(mailq_stat live) == 0 ]] && return 0 ;;
		esac
		sleep 0.05
	done
	echo "$0: $1 did not empty its queue within ${DRAIN_TIMEOUT}s" >&2
	exit 1
}

# verify TARGET checks that every message smtp-source sent so far was kept
# (accept) or delivered (relay).
verify() {
	local want=${sent[$1]} got
	case $1/$mode in
	postfix/accept)
		got=$(postfix_queued)
		((got >= want)) || {
			echo "$0: postfix has $got queue files, sent $want" >&2
			exit 1
		}
		;;
	postfix/relay)
		# postlogd writes the log asynchronously: give the last lines a moment.
		for _ in $(seq 50); do
			got=$(grep -c 'status=sent' "$pf/maillog" || true)
			((got >= want)) && break
			sleep 0.1
		done
		((got == want)) || {
			echo "$0: postfix logged $got status=sent, sent $want" >&2
			exit 1
		}
		;;
	mailq/accept)
		got=$(mailq_stat live)
		((got == want)) || {
			echo "$0: mailq stats live=$got, sent $want" >&2
			exit 1
		}
		;;
	mailq/relay)
		got=$(mailq_stat delivered_total)
		((got == want)) || {
			echo "$0: mailq stats delivered_total=$got, sent $want" >&2
			exit 1
		}
		;;
	esac
	echo "  verified $1: $got (sent $want)" >&2
}

port_of() { if [[ $1 == postfix ]]; then echo "$pf_port"; else echo "$mq_port"; fi; }

echo "mode=$mode messages=$MESSAGES size=$SIZE rounds=$ROUNDS sessions=($SESSIONS) targets=($TARGETS)" >&2
for s in $SESSIONS; do
	for ((r = 1; r <= ROUNDS; r++)); do
		# Alternate which target goes first, so neither always runs on a warmer machine.
		order=$TARGETS
		((r % 2 == 0)) && order=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
		for target in $order; do
			start=$(now)
			# In the background and waited for, so a signal runs the trap at once.
			smtp-source -s "$s" -m "$MESSAGES" -l "$SIZE" -f a@example.com -t b@example.org \
				127.0.0.1:"$(port_of "$target")" >"$tmp/source.log" 2>&1 &
			source_pid=$!
			wait "$source_pid" || {
				echo "$0: smtp-source into $target failed:" >&2
				cat "$tmp/source.log" >&2
				exit 1
			}
			source_pid=
			[[ $mode == relay ]] && drain "$target"
			end=$(now)
			sent[$target]=$((sent[$target] + MESSAGES))
			rate=$(awk -v n="$MESSAGES" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
			echo "$target $s $rate" >>"$results"
			echo "  $target sessions=$s round=$r: $rate msg/s ($(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')s)" >&2
			verify "$target"
		done
	done
done

# median TARGET SESSIONS prints the middle rate of that target's rounds.
median() {
	awk -v t="$1" -v s="$2" '$1 == t && $2 == s { print $3 }' "$results" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

what="accepted (durable)"
[[ $mode == relay ]] && what="relayed end to end"
echo
echo "# $mode: msg/s $what, $MESSAGES x $SIZE B messages per run, median of $ROUNDS, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
printf '%-8s %8s %10s\n' target sessions "msg/s"
for s in $SESSIONS; do
	for target in $TARGETS; do
		printf '%-8s %8s %10s\n' "$target" "$s" "$(median "$target" "$s")"
	done
done
if [[ $TARGETS == *postfix* && $TARGETS == *mailq* ]]; then
	for s in $SESSIONS; do
		awk -v s="$s" -v m="$(median mailq "$s")" -v p="$(median postfix "$s")" \
			'BEGIN { printf "ratio mailq/postfix at %s sessions: %.2f\n", s, m / p }'
	done
fi
