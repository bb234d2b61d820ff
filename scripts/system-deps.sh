#!/usr/bin/env bash
# Debian packages the test suite needs: PostgreSQL server binaries (the database tests
# start a throwaway cluster), ESO's esorex with the HAWK-I pipeline (the reference peer
# the HAWK-I recipes are compared with), the ESO pipelines that ship a Gasgano OCA rule
# file (tests/oca parses and evaluates every one) and Chromium (the dashboards' browser
# tests).
# Installs what is missing when it can (root + apt-get). Otherwise: under CI=true it
# fails (CI runs every test); elsewhere it says loudly what the tests will skip.
set -u
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v esorex >/dev/null 2>&1 || need+=(esorex)
ls /usr/lib/*/cpl/plugins/hawki-*/ >/dev/null 2>&1 || need+=(cpl-plugin-hawki)
for inst in amber giraf hawki muse naco uves vimos visir; do
  ls /usr/share/cpl-plugins/$inst-*/gasgano/config/$inst.oca >/dev/null 2>&1 \
    || [[ " ${need[*]} " == *" cpl-plugin-$inst "* ]] || need+=(cpl-plugin-$inst)
done
test -x /usr/bin/chromium || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  if apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then exit 0; fi
  echo "system-deps: apt-get install ${need[*]} FAILED"
fi
echo "##################################################################"
echo "## system-deps: MISSING ${need[*]}. Install as root:"
echo "##   apt-get install ${need[*]}"
if [ "${CI:-}" = "true" ]; then
  echo "## CI=true: every test must run; stopping here."
  echo "##################################################################"
  exit 1
fi
echo "## The tests that need it will be SKIPPED with this reason."
echo "##################################################################"
exit 0
