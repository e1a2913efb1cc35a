#!/bin/sh
# aigate-ha-announce: make the kernel announce the verdict mark of blocked
# (dropped) flows, so conntrackd carries it to the peer gateway.
#
# Why this exists: the kernel reports a change of a connection's mark (the
# CONNMARK save of aigate's verdict) with the next packet of that connection
# that leaves the gateway. An allowed or monitored flow sends one at once; a
# rejected one sends its reset; a dropped flow never sends another packet, so
# conntrackd would sync it with no mark, and after a failover the new primary
# would ask its own daemon again. Every INTERVAL seconds this lists the
# entries with the drop mark and touches each new one once through ctnetlink
# (`conntrack -U`, its timeout plus one second), which reports the entry with
# its mark at once. Runs on both gateways; costs one filtered dump per
# interval and one update per blocked flow.
#
#   aigate-ha-announce.sh              # defaults below
#   AIGATE_ANNOUNCE_INTERVAL=0.2 aigate-ha-announce.sh
set -u
MARK="${AIGATE_ANNOUNCE_MARK:-0x2000000/0xf000000}"   # aigate's drop verdict (src/verdict/marks.ts)
INTERVAL="${AIGATE_ANNOUNCE_INTERVAL:-0.5}"
CONNTRACK="${CONNTRACK:-conntrack}"
seen=" "
trap 'exit 0' TERM INT
while :; do
  next=" "
  for family in ipv4 ipv6; do
    # One line per entry: proto timeout src dst sport dport id (the original direction's fields come first).
    fields=$($CONNTRACK -L -f "$family" -m "$MARK" -o id 2>/dev/null | awk '{
        split("", f)
        for (i = 4; i <= NF; i++) { p = index($i, "="); if (p == 0) continue; k = substr($i, 1, p - 1); if (!(k in f)) f[k] = substr($i, p + 1) }
        if (("id" in f) && ("sport" in f) && ("dport" in f)) print $1, $3, f["src"], f["dst"], f["sport"], f["dport"], f["id"]
      }')
    while read -r proto timeout src dst sport dport id; do
      [ -n "${id:-}" ] || continue
      next="$next$id "
      case "$seen" in *" $id "*) continue ;; esac
      $CONNTRACK -U -f "$family" -p "$proto" -s "$src" -d "$dst" --sport "$sport" --dport "$dport" -t "$((timeout + 1))" >/dev/null 2>&1 || true
    done <<END
$fields
END
  done
  seen="$next"
  sleep "$INTERVAL"
done
