#!/bin/sh
# Quick local check of accept_loop: a namespace, loopback, one NFQUEUE rule,
# a UDP flood, and the packets/s each mode sustains.
#
#   sudo native/bench/flood-ns.sh [SECONDS [SIZE [MODES...]]]
#   MODES: none (no queue rule: the flood alone), per-packet, batch (default: all three)
#
# Needs root (netns, iptables). Builds the tools first (make -C native/bench).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-5}
size=${2:-64}
[ $# -gt 2 ] && shift 2 && modes=$* || modes="none per-packet batch"
ns="aigate-bench-$$"
port=9999

make -s -C "$here"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
# Accepted packets die at INPUT: no receiver, no ICMP port unreachable.
ip netns exec "$ns" iptables -A INPUT -p udp --dport $port -j DROP

for mode in $modes; do
	ip netns exec "$ns" iptables -F OUTPUT
	if [ "$mode" = none ]; then
		printf 'mode=none          %s\n' "$(ip netns exec "$ns" "$here/udp_flood" 127.0.0.1 $port "$secs" "$size")"
		continue
	fi
	ip netns exec "$ns" iptables -A OUTPUT -p udp --dport $port -j NFQUEUE --queue-num 0
	out=$(mktemp)
	ip netns exec "$ns" "$here/accept_loop" "--$mode" --queue 0 >"$out" 2>/dev/null &
	loop=$!
	sleep 0.3
	flood=$(ip netns exec "$ns" "$here/udp_flood" 127.0.0.1 $port "$secs" "$size")
	kill -TERM $loop
	wait $loop || true
	printf '%-18s %s\n  flood: %s\n' "mode=$mode" "$(cut -d' ' -f3- "$out")" "$flood"
	rm -f "$out"
done
