#!/usr/bin/env bash
# bench/compare.sh: mailq against a private Postfix, side by side on loopback,
# both relaying to one smtp-sink that counts every recipient (issue 13).
# Prints the table of docs/benchmarks.md; exits 1 if any message is lost or
# duplicated. Run as root (Postfix's master starts as root), from anywhere:
#   bench/compare.sh                                 # defaults: 5000 × 4 KiB, 3 runs, ~10 min
#   bench/compare.sh --messages 20000 --sessions 32  # the issue's sizes
#   bench/compare.sh --smoke                         # what CI runs (~1-2 min)
# Flags: bench/compare.sh --help.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
for prog in postfix postconf postqueue smtp-source smtp-sink go; do
	command -v "$prog" >/dev/null || {
		echo "$0: $prog is not installed (run .ci/install-peers)" >&2
		exit 1
	}
done
if [[ $(id -u) != 0 ]]; then
	echo "$0: run as root: Postfix's master must start as root" >&2
	exit 1
fi
cd "$repo"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/compare" ./bench/compare
"$bin/compare" "$@"
