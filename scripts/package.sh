#!/usr/bin/env bash
# npm run package: build/aigate_<version>_<arch>.deb with Debian's own tooling.
#
# 1. A staging tree build/stage/aigate-<version>/ holds debian/, the shipped
#    rules, the unit, the docs, and app/: what goes to /usr/lib/aigate.
# 2. app/ is made here, because npm needs the network and a Debian build must
#    not: TypeScript compiled into app/dist (never the checkout's dist/, which
#    tests running beside us import), `npm ci --omit=dev` (production
#    dependencies only; the pcap binding is built), the NFQUEUE addon built by
#    node-gyp; then only the built .node files are kept of the native trees.
# 3. dpkg-buildpackage -us -uc -b in the staging tree (debian/rules installs
#    app/ and generates aigate(8) and the bash completion from the CLI's help).
#
# Needs: the set-up of the README (./quickstart.sh, or npm ci: typescript),
# and debhelper, help2man, dpkg-dev (quickstart.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die () { echo "package: $*" >&2; exit 1; }

for tool in dpkg-buildpackage dh help2man; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install debhelper dpkg-dev help2man (quickstart.sh installs them)"
done
[ -x node_modules/.bin/tsc ] || die "node_modules/.bin/tsc not found: run npm ci (or ./quickstart.sh) first"

VERSION=$(node -p 'require("./package.json").version')
DEB_VERSION=$(dpkg-parsechangelog -S Version)
# The package's version is package.json's; debian/changelog says what changed in it.
[ "$DEB_VERSION" = "$VERSION" ] || die "debian/changelog's version is $DEB_VERSION, package.json's is $VERSION: add a debian/changelog entry for $VERSION"
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)

STAGE_ROOT=$ROOT/build/stage
STAGE=$STAGE_ROOT/aigate-$VERSION
APP=$STAGE/app
rm -rf "$STAGE_ROOT"
mkdir -p "$APP"

echo "package: compiling TypeScript into $APP/dist" >&2
node_modules/.bin/tsc -p tsconfig.json --outDir "$APP/dist" --sourceMap false
rm -rf "$APP/dist/test"

cp package.json package-lock.json "$APP/"
cp -a bin "$APP/"
# #!/usr/bin/env node finds whatever node is first on PATH; the package depends on Debian's nodejs.
# Executable: the unit runs it directly (ExecStartPre=+/usr/lib/aigate/bin/aigate.js).
sed -i '1s|^#!/usr/bin/env node$|#!/usr/bin/node|' "$APP/bin/aigate.js"
chmod 0755 "$APP/bin/aigate.js"
mkdir -p "$APP/native"
cp -a native/binding.gyp native/src "$APP/native/"

echo "package: npm ci --omit=dev (production dependencies, the pcap binding)" >&2
(
  cd "$APP"
  # Debian's hardening flags (fortify, stack protector, relro, bind now) for both addons: node-gyp's makefiles read them.
  eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
  export CPPFLAGS CFLAGS="$CFLAGS $CPPFLAGS" CXXFLAGS="$CXXFLAGS $CPPFLAGS" LDFLAGS
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
  # npm 11 may skip dependencies' install scripts (as quickstart.sh says): make sure pcap is built.
  [ -f node_modules/pcap/build/Release/pcap_binding.node ] || npm rebuild pcap --loglevel=error
  [ -f node_modules/pcap/build/Release/pcap_binding.node ] || die "the pcap binding did not build"
  echo "package: building the NFQUEUE addon" >&2
  npm run build:native --silent >/dev/null
  [ -f native/build/Release/aigate_nfq.node ] || die "native/build/Release/aigate_nfq.node did not build"
)

# Of the native trees only the built modules run: sources, makefiles and object files stay out.
keep_release () { # DIR MODULE.node
  local dir=$1 mod=$2
  mv "$dir/build/Release/$mod" "$STAGE/$mod"
  rm -rf "$dir/build"
  mkdir -p "$dir/build/Release"
  mv "$STAGE/$mod" "$dir/build/Release/$mod"
}
keep_release "$APP/native" aigate_nfq.node
rm -rf "$APP/native/src" "$APP/native/binding.gyp"
keep_release "$APP/node_modules/pcap" pcap_binding.node
rm -f "$APP/node_modules/.package-lock.json"
# What no running aigate loads: nan (C++ headers pcap was built with), type
# declarations and source maps, pino's documentation site (it loads scripts
# from CDNs: lintian's privacy-breach-generic), git and npm ignore files.
rm -rf "$APP/node_modules/nan" "$APP/node_modules/pcap/node_modules" "$APP/node_modules/pino/docs" "$APP/node_modules/pino/index.html"
find "$APP/node_modules" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '.git*' -o -name '.npmignore' \) -type f -delete
rm -rf "$APP/node_modules/pino-abstract-transport/.husky"
find "$APP/node_modules" -type d -empty -delete

cp -a debian rules README.md LICENSE "$STAGE/"
mkdir -p "$STAGE/systemd" "$STAGE/scripts"
cp systemd/aigate.service systemd/aigate-rules-update.service systemd/aigate-rules-update.timer systemd/metrics.conf systemd/README.md "$STAGE/systemd/"
cp scripts/package-help.mjs "$STAGE/scripts/"

echo "package: dpkg-buildpackage -us -uc -b" >&2
(cd "$STAGE" && dpkg-buildpackage -us -uc -b >"$STAGE_ROOT/dpkg-buildpackage.log" 2>&1) \
  || { tail -40 "$STAGE_ROOT/dpkg-buildpackage.log" >&2; die "dpkg-buildpackage failed (log: $STAGE_ROOT/dpkg-buildpackage.log)"; }

DEB=build/aigate_${VERSION}_${ARCH}.deb
mv "$STAGE_ROOT/aigate_${VERSION}_${ARCH}.deb" "$DEB"
echo "$DEB ($(du -h "$DEB" | cut -f1))"
