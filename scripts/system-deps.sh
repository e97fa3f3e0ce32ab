#!/usr/bin/env bash
# Install the Debian/Ubuntu packages storegw's tests and demo run for real:
# Mosquitto (broker), pcscd + vsmartcard-vpcd (PC/SC with virtual readers), Chromium (the
# kiosk page's browser tests; Playwright drives it, it never downloads a browser of its own)
# a small CJK font (the page's Chinese text in screenshots), nftables (the cloud broker's
# enrolment connection caps, deploy/mosquitto/enrolment-limits.nft) and, for the contract
# checks, promtool (Debian's prometheus) and Node.js/npm (scripts/tools.sh installs the
# AsyncAPI CLI). vsmartcard-vpcd is for tests and the demo only: the production install
# (scripts/install.sh) never installs it.
# As root it installs them; otherwise it prints the exact command and fails (tests need them).
set -euo pipefail
# "build": only what `pip install` needs (pyscard has no Linux wheels and compiles against
#          libpcsclite's headers; evdev builds against the kernel's linux/input.h from
#          linux-libc-dev), an error when missing;
# "test":  everything, an error when missing;
# "demo":  everything, a warning when missing (the demo falls back) except the build packages.
mode="${1:-test}"
build_packages=(libpcsclite-dev linux-libc-dev)
packages=("${build_packages[@]}")
if [ "$mode" != build ]; then
  packages+=(mosquitto mosquitto-clients pcscd vsmartcard-vpcd libpcsclite1 fonts-dejavu-core
             chromium fonts-wqy-microhei nftables)
  # systemd-analyze/systemd-sysusers check the unit and run scripts/install.sh --root
  [ "$mode" = test ] && packages+=(systemd)
fi
if [ "$mode" = test ]; then
  packages+=(prometheus)
  # Node from any source will do (e.g. NodeSource's nodejs bundles npm): only without one.
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "storegw: not a Debian/Ubuntu system; install these yourself: ${missing[*]}" >&2
  [ "$mode" = demo ] && exit 0 || exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  echo "storegw: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The packaged services are not used: tests and the demo start their own instances.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now mosquitto prometheus >/dev/null 2>&1 || true
  fi
  exit 0
fi
echo "storegw: missing system packages: ${missing[*]}" >&2
echo "run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
for p in "${missing[@]}"; do
  for b in "${build_packages[@]}"; do [ "$p" = "$b" ] && exit 1; done
done
[ "$mode" = demo ] && exit 0 || exit 1
