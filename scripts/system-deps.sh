#!/usr/bin/env bash
# Install the Debian packages the test suite runs against, when they are missing.
# Real parts, not mocks: the tests start their own Mosquitto broker and drive Chromium.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# Browser tests drive Debian's Chromium (never a downloaded browser); PDF reports are checked
# with poppler's pdftotext/pdftoppm.
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian package enables a system broker on 1883; the tests start their own on free ports.
