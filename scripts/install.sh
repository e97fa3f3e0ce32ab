#!/usr/bin/env bash
# Production install of storegw on a Debian/Ubuntu box (run as root from a checkout):
#   sudo bash scripts/install.sh [--config storegw.toml] [--smartcard]
# What it does, in order (README "Running the daemon"):
#   1. apt: Python venv + build tools for pyscard, libpcsclite, the label fonts; pcscd only
#      with a smart-card reader (--smartcard, or a [[devices]] kind = "smartcard" in the
#      config). Never vsmartcard-vpcd: its virtual reader takes "cards" from the network.
#   2. the system user `storegw` (systemd-sysusers, deploy/sysusers/storegw.conf) in the groups
#      dialout, input and plugdev;
#   3. the venv /opt/storegw/venv with storegw in it (the unit's ExecStart);
#   4. the unit, its pcscd drop-in (smart card only), the NFC udev rule and modprobe blacklist;
#      /etc/storegw (0750) and the config (0640) when --config is given, owned by storegw with
#      the remote-config drop-in (the cloud's config.set rewrites the file), by root:storegw
#      and read-only to the daemon with --no-remote-config;
#   5. udev reload, the NFC kernel drivers unloaded, `systemctl enable --now storegw`.
# /var/lib/storegw and /var/log/storegw are made by systemd (StateDirectory=, LogsDirectory=).
#
# --root DIR lays everything out under DIR instead of / and skips apt, chown and systemctl:
# for checking the layout (tests/deploy/test_install.py) and building images. --print-packages lists
# the apt packages it would install and exits. Re-running it upgrades storegw in place.
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --root DIR  --config FILE  --smartcard|--no-smartcard  --no-apt"
  echo "         --no-systemctl  --no-remote-config  --pip-args 'ARGS'  --print-packages"
}

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT=""
CONFIG=""
SMARTCARD=auto
APT=1
SYSTEMCTL=1
REMOTE_CONFIG=1
PIP_ARGS=""
PRINT_PACKAGES=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift ;;
    --config) CONFIG="${2:?--config needs a file}"; shift ;;
    --smartcard) SMARTCARD=yes ;;
    --no-smartcard) SMARTCARD=no ;;
    --no-apt) APT=0 ;;
    --no-systemctl) SYSTEMCTL=0 ;;
    --no-remote-config) REMOTE_CONFIG=0 ;;
    --pip-args) PIP_ARGS="${2?--pip-args needs a value}"; shift ;;
    --print-packages) PRINT_PACKAGES=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { echo "storegw install: $*"; }
fail() { echo "storegw install: $*" >&2; exit 1; }

if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  APT=0
  SYSTEMCTL=0
fi
PREFIX="$ROOT/opt/storegw"
ETC="$ROOT/etc/storegw"
TOML="$ETC/storegw.toml"

if [ "$SMARTCARD" = auto ]; then
  SMARTCARD=no
  for f in "$CONFIG" "$TOML"; do
    if [ -n "$f" ] && [ -f "$f" ] && grep -Eq '^[[:space:]]*kind[[:space:]]*=[[:space:]]*"smartcard"' "$f"; then
      SMARTCARD=yes
    fi
  done
fi

# pyscard has no Linux wheels: gcc, the Python headers and libpcsclite-dev build it; evdev
# (HID scanners) compiles against linux/input.h from linux-libc-dev.
packages=(python3 python3-venv python3-dev gcc libpcsclite-dev libpcsclite1 linux-libc-dev
          fonts-dejavu-core fonts-wqy-microhei)
[ "$SMARTCARD" = yes ] && packages+=(pcscd)
if [ "$PRINT_PACKAGES" = 1 ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || fail "run as root (sudo), or use --root DIR"
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || fail "no config file $CONFIG"

# 1. system packages
if [ "$APT" = 1 ]; then
  command -v apt-get >/dev/null || fail "not a Debian/Ubuntu system: install ${packages[*]}"
  say "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
  if dpkg-query -W -f='${Status}' vsmartcard-vpcd 2>/dev/null | grep -q "install ok installed"; then
    say "WARNING: vsmartcard-vpcd is installed: anyone on the LAN can present a card to pcscd"
    say "         remove it: apt-get purge vsmartcard-vpcd && systemctl restart pcscd"
  fi
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "storegw needs Python 3.11+"

# 2. the system user and its device groups
install -D -m 0644 "$SRC/deploy/sysusers/storegw.conf" "$ROOT/usr/lib/sysusers.d/storegw.conf"
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT/etc"
  systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/storegw.conf"
else
  systemd-sysusers /usr/lib/sysusers.d/storegw.conf
fi

# 3. the venv the unit runs
say "installing storegw into $PREFIX/venv"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
# shellcheck disable=SC2086 # PIP_ARGS is a list of options
"$PREFIX/venv/bin/pip" install -q --disable-pip-version-check $PIP_ARGS "$SRC"
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"

# 4. unit, drop-in, udev rule, modprobe blacklist, config directory
unit_dir="$ROOT/etc/systemd/system"
install -D -m 0644 "$SRC/deploy/storegw.service" "$unit_dir/storegw.service"
dropin="$unit_dir/storegw.service.d/pcscd.conf"
if [ "$SMARTCARD" = yes ]; then
  install -d -m 0755 "$unit_dir/storegw.service.d"
  printf '%s\n' "# A smart-card reader is configured: start pcscd's socket with storegw." \
    "[Unit]" "Wants=pcscd.socket" "After=pcscd.socket" > "$dropin"
  chmod 0644 "$dropin"
else
  rm -f "$dropin"
fi
remote="$unit_dir/storegw.service.d/remote-config.conf"
if [ "$REMOTE_CONFIG" = 1 ]; then
  install -D -m 0644 "$SRC/deploy/storegw.service.d/remote-config.conf" "$remote"
  etc_owner=storegw:storegw
else
  rm -f "$remote"
  etc_owner=root:storegw
fi
install -D -m 0644 "$SRC/deploy/udev/60-storegw-nfc.rules" \
  "$ROOT/etc/udev/rules.d/60-storegw-nfc.rules"
install -D -m 0644 "$SRC/deploy/modprobe/storegw-nfc-blacklist.conf" \
  "$ROOT/etc/modprobe.d/storegw-nfc-blacklist.conf"
install -d -m 0750 "$ETC"
if [ -n "$CONFIG" ]; then
  if [ -f "$TOML" ]; then
    say "keeping the existing $TOML (not overwritten by --config)"
  else
    install -m 0640 "$CONFIG" "$TOML"
  fi
fi
if [ -z "$ROOT" ]; then
  chown "$etc_owner" "$ETC"
  [ -f "$TOML" ] && chown "$etc_owner" "$TOML" && chmod 0640 "$TOML"
fi

# 5. activate
if [ "$SYSTEMCTL" = 1 ] && [ -d /run/systemd/system ]; then
  udevadm control --reload || true
  udevadm trigger --subsystem-match=usb --action=add || true
  for module in port100 pn533_usb pn533; do
    modprobe -r "$module" 2>/dev/null || true
  done
  systemctl daemon-reload
  [ "$SMARTCARD" = yes ] && systemctl enable --now pcscd.socket
  if [ -f "$TOML" ]; then
    systemctl enable --now storegw.service
    systemctl restart storegw.service  # a re-run picks up the new code
    say "storegw is running: systemctl status storegw; storegw provision doctor -c $TOML"
  else
    systemctl enable storegw.service
    say "no $TOML yet: storegw provision init -c $TOML ..., then systemctl start storegw"
  fi
else
  say "files laid out under ${ROOT:-/}; systemd not touched"
fi
