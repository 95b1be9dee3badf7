#!/usr/bin/env bash
# Install the Debian packages a feature needs when they are missing: as root with apt-get, otherwise
# say which command to run. Usage: scripts/system-packages.sh COMMAND=PACKAGE ...
# (e.g. chromium=chromium: the command that shows the package is there, and the package to install).
set -euo pipefail
missing=()
for pair in "$@"; do
  command=${pair%%=*}
  package=${pair#*=}
  command -v "$command" >/dev/null 2>&1 || [ -e "$command" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install ${missing[*]}" >&2
  echo "  (the tests that need them are skipped until then)" >&2
fi
