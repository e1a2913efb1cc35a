#!/bin/sh
# keepalived notify script of an aigate gateway (systemd/ha/keepalived.conf): $1 is primary, backup
# or fault. The steps of conntrackd's primary-backup.sh (/usr/share/doc/conntrackd/examples/sync/);
# each transition is appended to /run/aigate-ha.states with its time. On becoming primary: commit
# the peer's entries into the kernel, flush both caches, resync the internal cache from the kernel
# and send it to the peer in bulk; on becoming backup: shorten the kernel's timers (the zombie
# entries of our time as primary) and ask the peer for a full resync; on a fault: shorten the timers.
#
#   aigate-ha-notify.sh primary                   # defaults below
#   CONNTRACKD=/usr/sbin/conntrackd AIGATE_CONNTRACKD_CONF=/tmp/x/conntrackd.conf \
#     AIGATE_HA_STATES=/tmp/x/states aigate-ha-notify.sh primary   # `aigate demo --ha`, one per gateway
CT="${CONNTRACKD:-/usr/sbin/conntrackd} -C ${AIGATE_CONNTRACKD_CONF:-/etc/conntrackd/conntrackd.conf}"
STATES="${AIGATE_HA_STATES:-/run/aigate-ha.states}"
echo "$(date +%s.%N) $1 begin" >> "$STATES"
case "$1" in
  primary)
    $CT -c || echo "conntrackd -c failed" >&2   # commit the external cache into the kernel table
    $CT -f || echo "conntrackd -f failed" >&2   # flush the internal and the external caches
    $CT -R || echo "conntrackd -R failed" >&2   # resynchronize the internal cache with the kernel table
    $CT -B || echo "conntrackd -B failed" >&2   # send a bulk update to the backup
    ;;
  backup)
    $CT -t || echo "conntrackd -t failed" >&2   # shorten kernel timers: purge our entries as primary
    $CT -n || echo "conntrackd -n failed" >&2   # request a resync from the primary
    ;;
  fault)
    $CT -t || echo "conntrackd -t failed" >&2
    ;;
  *) echo "usage: $0 primary|backup|fault" >&2; exit 1 ;;
esac
echo "$(date +%s.%N) $1 done" >> "$STATES"
exit 0
