#!/usr/bin/env bash
# aigate quick start, as root on a fresh Debian 12 / Ubuntu machine:
#
#   ./quickstart.sh demo    install what is needed, build, run the demo
#   ./quickstart.sh test    install what is needed, build, run the whole test suite
#
# Installs Debian packages (build tools, libpcap, libmnl, iptables, real
# clients and servers the tests drive), runs `npm ci` (which builds the
# NFQUEUE addon and the pcap binding), compiles TypeScript, then runs.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  build-essential python3 pkg-config         # node-gyp builds: our addon, pcap
  libpcap-dev libmnl-dev                     # capture files / live capture; netlink for NFQUEUE
  iptables iproute2 ethtool nftables         # firewall rules, namespaces, veth offloads
  conntrack                                  # bench:net flushes the gateway's conntrack table between workloads
  tcpdump tshark libndpi-bin                 # fixtures, cross-checks, benchmark baselines
  curl openssl dnsutils dnsmasq-base caddy   # real clients and servers for tests and the demo
  chromium                                   # real browser hellos (TCP and QUIC) in the end-to-end tests
  libcap2-bin util-linux                     # capsh/setpriv for the capability tests
  prometheus systemd                         # a real Prometheus scrapes the daemon; systemd-analyze checks the unit
  keepalived conntrackd                      # two gateways as one: demo --ha, the HA test and bench:ha
)

need_install() {
  for p in "${PACKAGES[@]}"; do
    [[ "$p" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  return 1
}

setup() {
  if [ "$(id -u)" != 0 ]; then
    echo "quickstart: run as root (it installs packages and builds network namespaces)" >&2
    exit 1
  fi
  if need_install; then
    echo "quickstart: installing Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; the preseed answers no.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
  fi
  if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "quickstart: Node.js >= 20 is required (node --version: $(node --version 2>/dev/null || echo none))" >&2
    exit 1
  fi
  echo "quickstart: npm ci (builds native/ and the pcap binding)..." >&2
  npm ci --no-audit --no-fund --loglevel=error
  # npm 11 may skip dependencies' install scripts; make sure the native builds exist.
  [ -f node_modules/pcap/build/Release/pcap_binding.node ] || npm rebuild pcap --loglevel=error
  [ -f node_modules/pcap/build/Release/pcap_binding.node ] || { echo "quickstart: pcap binding did not build" >&2; exit 1; }
  npm run build:native --silent
  npm run build --silent
}

case "${1:-}" in
  demo) setup; exec node bin/aigate.js demo "${@:2}" ;;
  test) setup; exec npm test ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
