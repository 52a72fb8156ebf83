#!/bin/sh
# Install every Debian package gcmon needs to build, test and demo.
# Idempotent and fast when everything is present (one dpkg-query).
set -eu
cd "$(dirname "$0")/.."
# Three lists. RUNTIME: what a server running gcmon needs and nothing else
# (docs/install.md; the package's Depends: apache2-api and the libraries by
# ${shlibs:Depends}, one mod_dbd driver by name). BUILD: compiling the modules
# and `make deb` (debhelper, dpkg-dev; dh_apache2 is in apache2-dev). TEST:
# the suites, the demo and the checks (make test).
# chromium (Debian's) drives the dashboard tests; apache2-utils brings htpasswd.
# postgresql-15: the unit suites' and make integration-pgsql's throwaway clusters
# (the tests run initdb and postgres themselves); postgresql-client-15: psql, for
# tools/gcmon-migrate-db (postgresql-15 depends on it already). unshare, which
# test_scale_out.py runs each "host" under, is util-linux (always installed).
# clang-format-14: make check-style (the .clang-format at the top). lintian:
# make deb checks the package with it. python3-pytest-timeout: a hung test fails
# (PYTEST_TIMEOUT) instead of eating the CI run. clang, libclang-rt-14-dev
# (libFuzzer and the sanitizer runtimes; clang only recommends it) and llvm
# (llvm-symbolizer for the reports): make fuzz and the fuzz step of make test
# (tests/fuzz/). openssl: test_reference_conf.py's self-signed certificate for
# the HTTPS virtual host. python3-jsonschema, python3-yaml: the integration
# harness checks every API answer against docs/openapi.yaml.
RUNTIME="apache2 libaprutil1-dbd-sqlite3 libaprutil1-dbd-pgsql libcurl4 libjansson4
libwebsockets17 libssl3"
BUILD="apache2-dev libapr1-dev libaprutil1-dev libwebsockets-dev libcurl4-openssl-dev
libjansson-dev libssl-dev pkg-config debhelper dpkg-dev"
TEST="apache2-utils check python3 python3-aiohttp python3-pytest sqlite3 curl prometheus wrk
postgresql-15 postgresql-client-15 chromium clang-format-14 lintian python3-pytest-timeout
clang libclang-rt-14-dev llvm openssl python3-jsonschema python3-yaml"
PKGS="$RUNTIME $BUILD $TEST"
# Node.js and npm only when the machine has none (a newer one from elsewhere is kept).
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

# The dashboard tests' one npm package, playwright-core, pinned by
# tests/browser/package-lock.json; it downloads no browser (it drives
# /usr/bin/chromium). `npm ci` only when the installed version is not the pinned one.
browser_deps() {
    want=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' tests/browser/package.json)
    have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
           tests/browser/node_modules/playwright-core/package.json 2>/dev/null | head -1)
    [ -n "$want" ] && [ "$want" = "$have" ] && return 0
    echo "deps: npm ci in tests/browser (playwright-core $want)"
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
}
missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
if [ -z "$missing" ]; then
    browser_deps
    exit 0
fi
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Keep the packaged apache2 service from starting on port 80.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# prometheus (for `promtool check metrics`) and postgresql-15 (the unit suites
# and make integration-pgsql start throwaway clusters of their own) are only
# here for the tests: keep their servers from running on a developer's machine.
for svc in prometheus postgresql; do
    case "$missing" in
        *"$svc"*) $SUDO systemctl disable --now "$svc.service" >/dev/null 2>&1 || true ;;
    esac
done
browser_deps
