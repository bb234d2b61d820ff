#!/usr/bin/env bash
# Debian packages the test suite needs: PostgreSQL server binaries (the database tests
# start a throwaway cluster) and ESO's esorex with the HAWK-I pipeline (the reference
# peer the HAWK-I recipes are compared with). Installs what is missing when it can (root + apt-get);
# otherwise says loudly what will be skipped and why.
set -u
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v esorex >/dev/null 2>&1 || need+=(esorex)
ls /usr/lib/*/cpl/plugins/hawki-*/ >/dev/null 2>&1 || need+=(cpl-plugin-hawki)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  if apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then exit 0; fi
  echo "system-deps: apt-get install ${need[*]} FAILED"
fi
echo "##################################################################"
echo "## system-deps: MISSING ${need[*]}: the tests that need it will be"
echo "## SKIPPED with this reason. Install as root: apt-get install ${need[*]}"
echo "##################################################################"
exit 0
