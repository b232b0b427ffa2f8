#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for tests: one monitor and one OSD on
# 127.0.0.1, everything (config, keys, data, logs, sockets) under DIR.
#
#   scripts/ceph-test-cluster.sh start DIR     create and start; ready on exit
#   scripts/ceph-test-cluster.sh stop DIR      stop exactly the daemons started
#   scripts/ceph-test-cluster.sh env DIR       print CEPH_CONF / CEPH_KEYRING
#   scripts/ceph-test-cluster.sh osd-stop DIR  stop only the OSD (outage tests)
#   scripts/ceph-test-cluster.sh osd-start DIR start the OSD again, wait for it
#
# DIR must be short (e.g. /tmp/c123): admin socket paths must stay under 107
# bytes. It must be absent or empty for `start`. The cluster has no mgr, one
# OSD (bluestore on a sparse file, or memstore with
# OVERTIER_CEPH_OBJECTSTORE=memstore), pools of size 1, and the client user
# client.admin whose key is in DIR/keyring (DIR/ceph.conf points at it).
# Daemons write their pids to DIR/run/*.pid; `stop` kills those pids only,
# after checking they are still ceph daemons of this DIR.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|env|osd-stop|osd-start DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case "$dir" in
  /*) ;;
  *) echo "ceph-test-cluster: DIR must be absolute: '$dir'" >&2; exit 2 ;;
esac
dir=${dir%/}
# "$dir/run/osd.0.asok" plus some margin must fit in sun_path (108).
if [ ${#dir} -gt 60 ]; then
  echo "ceph-test-cluster: DIR '$dir' is too long (${#dir} > 60 characters):" \
    "admin socket paths must stay under 107 bytes" >&2
  exit 2
fi
conf=$dir/ceph.conf

ceph_cli() { timeout 30 ceph --conf "$conf" --connect-timeout 10 "$@"; }

# Is pid $2 a live ceph daemon ($1: ceph-mon or ceph-osd) of this cluster?
ours() {
  local want=$1 pid=$2
  [ -r "/proc/$pid/cmdline" ] || return 1
  local cl
  cl=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cl" == *"$want"* && "$cl" == *"$conf"* ]]
}

# Stops one daemon by its pid file: TERM, up to 10 s, then KILL.
stop_daemon() {
  local bin=$2 pidfile=$dir/run/$1.pid
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && ours "$bin" "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      ours "$bin" "$pid" || break
      sleep 0.1
    done
    if ours "$bin" "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        ours "$bin" "$pid" || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$pidfile"
}

# Waits until the OSD is up and in (the mon's view), up to 60 s.
wait_osd_up() {
  for _ in $(seq 600); do
    if ceph_cli osd dump 2>/dev/null | grep -q '^osd\.0 up *in'; then return 0; fi
    local pid
    pid=$(cat "$dir/run/osd.0.pid" 2>/dev/null || true)
    if [ -z "$pid" ] || ! ours ceph-osd "$pid"; then
      # Not started yet (the pid file comes after the fork) or died.
      if [ -n "$pid" ]; then
        echo "ceph-test-cluster: ceph-osd died; see $dir/log/osd.0.log" >&2
        return 1
      fi
    fi
    sleep 0.1
  done
  echo "ceph-test-cluster: OSD not up after 60 s; see $dir/log/osd.0.log" >&2
  return 1
}

start_osd() {
  ceph-osd --conf "$conf" -i 0 2>>"$dir/log/start.log"
  wait_osd_up
}

start() {
  for b in ceph-mon ceph-osd ceph ceph-authtool monmaptool; do
    command -v $b >/dev/null || {
      echo "ceph-test-cluster: '$b' not found (apt-get install ceph-mon ceph-osd ceph-common)" >&2
      exit 3
    }
  done
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    echo "ceph-test-cluster: '$dir' is not empty" >&2
    exit 2
  fi
  mkdir -p "$dir"/{mon,osd/ceph-0,run,log}
  local fsid port store
  fsid=$(cat /proc/sys/kernel/random/uuid)
  # A free port for the monitor (several clusters may run at once).
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  store=${OVERTIER_CEPH_OBJECTSTORE:-bluestore}
  case "$store" in bluestore | memstore) ;; *)
    echo "ceph-test-cluster: OVERTIER_CEPH_OBJECTSTORE must be bluestore or memstore" >&2
    exit 2
    ;;
  esac
  cat >"$conf" <<EOF
# Written by scripts/ceph-test-cluster.sh: a single-node test cluster.
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
public network = 127.0.0.1/32
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
ms bind ipv6 = false

[mon]
mon data = $dir/mon/\$cluster-\$id
paxos propose interval = 0.05
mon osd report timeout = 60

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = $store
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mount = false
bluestore cache size = 134217728
osd memory target = 1073741824
memstore device bytes = 4294967296
osd max object size = 134217728
osd heartbeat grace = 20

[client]
objecter tick interval = 0.5
# Many clients per process (tests) and per cluster: one socket and log each.
admin socket = $dir/run/\$name.\$pid.\$cctid.asok
log file = $dir/log/\$name.\$pid.log
EOF
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  chmod 600 "$dir/keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
  ceph-mon --conf "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
    >"$dir/log/mkfs-mon.log" 2>&1 || {
    echo "ceph-test-cluster: ceph-mon --mkfs failed; see $dir/log/" >&2
    exit 1
  }
  ceph-mon --conf "$conf" -i a 2>>"$dir/log/start.log"
  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph_cli osd new "$osd_uuid" 0 >/dev/null
  ceph-osd --conf "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/mkfs-osd.log" 2>&1 || {
    echo "ceph-test-cluster: ceph-osd --mkfs failed; see $dir/log/" >&2
    exit 1
  }
  start_osd
}

case "$cmd" in
  start)
    # A failed start leaves nothing running (set -e stays in force: start
    # is not called from a condition).
    trap 'stop_daemon osd.0 ceph-osd; stop_daemon mon.a ceph-mon' EXIT
    start
    trap - EXIT
    echo "ceph-test-cluster: ready, conf $conf"
    ;;
  stop)
    stop_daemon osd.0 ceph-osd
    stop_daemon mon.a ceph-mon
    ;;
  env)
    [ -f "$conf" ] || { echo "ceph-test-cluster: no cluster in '$dir'" >&2; exit 2; }
    echo "export CEPH_CONF=$conf"
    echo "export CEPH_KEYRING=$dir/keyring"
    echo "export CEPH_ARGS='--conf $conf --id admin'"
    ;;
  osd-stop)
    stop_daemon osd.0 ceph-osd
    ;;
  osd-start)
    start_osd
    ;;
  *) usage ;;
esac
