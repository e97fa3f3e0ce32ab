#!/usr/bin/env bash
# The cloud's Mosquitto for a one-machine store bring-up (README "Bringing up a store").
#
# Runs deploy/mosquitto/storegw.conf with its ACLs exactly as shipped; only the ports, paths
# and log destination are substituted (simulators.cloud.enrollment.render_deploy_config, the
# same rendering the tests use). The cloud's CA and identities are made on first use in
# DIR/pki (CA key 0600; the broker gets copies of ca.pem, broker.pem and broker.key only).
#
#   scripts/cloud-broker.sh start DIR [PORT [PROVISION_PORT]]   default 8883 8884; waits until
#                                                               both listeners accept (10 s)
#   scripts/cloud-broker.sh wait-client DIR CLIENT_ID [SECONDS] wait until that MQTT client
#                                                               has connected (default 20 s)
#   scripts/cloud-broker.sh stop DIR                            SIGTERM, wait for the exit
#
# The broker runs in the background of this script's caller; its pid is DIR/broker/mosquitto.pid
# and its log DIR/broker/mosquitto.log. As root with nft (package nftables), start also loads
# deploy/mosquitto/enrolment-limits.nft for PROVISION_PORT (table storegw_enrol_PORT, removed by
# stop): Mosquitto 2.0.11 miscounts max_connections, the kernel does not.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "cloud-broker: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${STOREGW_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
MOSQUITTO="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local dir="$1" port="${2:-8883}" provision_port="${3:-8884}"
    [ -x "$MOSQUITTO" ] || die "mosquitto not found (apt-get install mosquitto)"
    local pidfile="$dir/broker/mosquitto.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        die "already running (pid $(cat "$pidfile")); stop it first: $0 stop $dir"
    fi
    for p in "$port" "$provision_port"; do
        if listening "$p"; then die "port $p is in use"; fi
    done
    mkdir -p "$dir"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$dir" "$port" "$provision_port" <<'PY'
import os
import shutil
import sys
from pathlib import Path

from core.datafiles import write_atomic
from gateway.wire.certs import ensure_private_dir
from simulators.cloud.enrollment import DEPLOY_DIR, CloudPki, render_deploy_config

directory, port, provision_port = Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3])
pki = CloudPki.open(directory / "pki")
broker = directory / "broker"
etc = broker / "etc"
ensure_private_dir(etc)
for name in ("storegw.acl", "provision.acl"):
    shutil.copyfile(DEPLOY_DIR / name, etc / name)
shutil.copyfile(pki.ca_file, etc / "ca.pem")
shutil.copyfile(pki.broker_cert, etc / "broker.pem")
write_atomic(etc / "broker.key", pki.broker_key.read_bytes(), 0o600)
(broker / "data").mkdir(exist_ok=True)
(broker / "mosquitto.conf").write_text(
    render_deploy_config(
        DEPLOY_DIR,
        etc_dir=etc,
        data_dir=broker / "data",
        log_file=broker / "mosquitto.log",
        port=port,
        provision_port=provision_port,
        run_as_root=os.geteuid() == 0,
    )
)
PY
    : > "$dir/broker/mosquitto.log"
    "$MOSQUITTO" -c "$dir/broker/mosquitto.conf" >>"$dir/broker/mosquitto.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" > "$pidfile"
    local deadline=$((SECONDS + 10))
    until listening "$port" && listening "$provision_port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/broker/mosquitto.out" "$dir/broker/mosquitto.log" >&2 || true
            rm -f "$pidfile"
            die "mosquitto exited during start"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            rm -f "$pidfile"
            die "mosquitto did not listen on $port and $provision_port within 10 s"
        fi
        sleep 0.05
    done
    limit_connections "$dir" "$provision_port"
    echo "cloud broker up (pid $pid): mqtts://localhost:$port (mTLS), enrolment mqtts://localhost:$provision_port"
    echo "CA certificate for gateways: $dir/pki/ca.pem"
}

limit_connections() {
    local dir="$1" provision_port="$2" table="storegw_enrol_$2"
    if [ "$(id -u)" -ne 0 ] || ! command -v nft >/dev/null 2>&1; then
        echo "cloud-broker: warning: enrolment connections capped only by Mosquitto's max_connections," \
             "which 2.0.11 miscounts; run as root with nftables for the real cap" >&2
        return 0
    fi
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c \
        'import sys; from simulators.cloud.netlimits import render_enrolment_limits as r; print(r(int(sys.argv[1]), sys.argv[2]))' \
        "$provision_port" "$table" | nft -f - || {
        echo "cloud-broker: warning: cannot load the enrolment connection limits (see above)" >&2
        return 0
    }
    echo "$table" > "$dir/broker/nft.table"
}

wait_client() {
    local dir="$1" client="$2" timeout="${3:-20}"
    local log="$dir/broker/mosquitto.log"
    local deadline=$((SECONDS + timeout))
    until grep -q -F " as $client " "$log" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$client did not connect within ${timeout} s (see $log)"
        fi
        sleep 0.05
    done
    echo "$client connected"
}

stop() {
    local dir="$1" pidfile="$1/broker/mosquitto.pid"
    [ -f "$pidfile" ] || die "not running (no $pidfile)"
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    rm -f "$pidfile"
    if [ -f "$dir/broker/nft.table" ]; then
        nft delete table inet "$(cat "$dir/broker/nft.table")" 2>/dev/null || true
        rm -f "$dir/broker/nft.table"
    fi
    echo "cloud broker stopped"
}

[ $# -ge 2 ] || usage
action="$1"
shift
case "$action" in
    start) start "$@" ;;
    wait-client) [ $# -ge 2 ] || usage; wait_client "$@" ;;
    stop) stop "$1" ;;
    *) usage ;;
esac
