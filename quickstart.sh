#!/usr/bin/env bash
# aigate quick start, as root on a fresh Debian 13 machine (Debian 12 and
# Ubuntu 24.04 too, once Node.js >= 20 is installed: the script says how):
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
  debhelper help2man lintian                 # npm run package (dpkg-buildpackage, aigate(8) from --help) and its test; lintian build/*.deb
)

need_install() {
  for p in "${PACKAGES[@]}"; do
    [[ "$p" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  return 1
}

node_major() { if command -v node >/dev/null; then node -p 'process.versions.node.split(".")[0]'; else echo 0; fi; }

# Node.js >= 20, checked first. Debian 13 has it in main (nodejs 20): installed
# from there when missing. Debian 12 and Ubuntu 24.04 ship nodejs 18: say
# where 20 comes from.
need_node() {
  [ "$(node_major)" -ge 20 ] && return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  local candidate
  candidate=$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: \([0-9]*:\)\{0,1\}\([0-9]*\).*/\2/p')
  if [ "${candidate:-0}" -ge 20 ] 2>/dev/null; then
    echo "quickstart: installing nodejs and npm (major version $candidate) with apt..." >&2
    # NodeSource's nodejs carries npm itself and conflicts with Debian's npm package.
    if apt-cache policy nodejs | grep -q nodesource; then apt-get install -y -qq nodejs >/dev/null; else apt-get install -y -qq nodejs npm >/dev/null; fi
    [ "$(node_major)" -ge 20 ] && return 0
  fi
  local os
  os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-this system}")
  cat >&2 <<EOF
quickstart: Node.js >= 20 is required. This machine has $(node --version 2>/dev/null || echo "no node"),
and apt offers nodejs ${candidate:-(none)}.x ($os).
  Debian 13 (trixie) has nodejs 20 in main: apt-get install nodejs npm
  Debian 12 (bookworm) and Ubuntu 24.04 ship nodejs 18: install Node 20 from NodeSource,
  then run this script again:
    curl -fsSL https://deb.nodesource.com/setup_20.x -o /tmp/nodesource_setup.sh   # read it first
    bash /tmp/nodesource_setup.sh && apt-get install -y nodejs
  (NodeSource's nodejs includes npm: apt-get remove npm first if Debian's npm is installed.)
EOF
  exit 1
}

setup() {
  if [ "$(id -u)" != 0 ]; then
    echo "quickstart: run as root (it installs packages and builds network namespaces)" >&2
    exit 1
  fi
  need_node
  if need_install; then
    echo "quickstart: installing Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; the preseed answers no.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
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
