#!/usr/bin/env bash
# Install the Debian packages kitledger runs against, when they are missing.
#   scripts/system-deps.sh run    what `make run` needs: the Mosquitto broker
#   scripts/system-deps.sh test   what `make test` needs as well: Chromium for the browser
#                                 tests (never a downloaded browser), Pango to lay out PDF
#                                 reports and poppler-utils to check them, and mosquitto_pub, the ingest
#                                 benchmark's load (and its smoke test), and valgrind,
#                                 which counts the ingest benchmark's instructions
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ "${1:-test}" = "test" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
  command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
  # WeasyPrint (the custody report's PDF) draws its text with Pango.
  ldconfig -p | grep -q 'libpangoft2-1.0.so.0 ' || need+=(libpango-1.0-0 libpangoft2-1.0-0)
  command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
  command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian package may enable a system broker on 1883; kitledger and its tests start their
# own on free ports.
