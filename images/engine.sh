#!/usr/bin/env bash
# A private Docker engine for the handbook's tests (root only; Debian's docker.io).
#
#   images/engine.sh start   start dockerd, wait until it answers, print DOCKER_HOST=...
#   images/engine.sh stop    stop it (SIGTERM, then SIGKILL after 30 s) and its containerd
#   images/engine.sh status  say whether it runs
#
# Everything lives under $HANDBOOK_DOCKER_ROOT (default /var/tmp/handbook-docker): the
# socket docker.sock, data/ (images and containers: kept between runs, so built images
# are cached), exec/, dockerd.pid and dockerd.log. The engine has no bridge and touches
# no iptables rule: containers run with the host's network (the handbook's servers
# listen on 127.0.0.1), and `docker build --network host` reaches the Debian mirror.
set -euo pipefail
root=${HANDBOOK_DOCKER_ROOT:-/var/tmp/handbook-docker}
sock=$root/docker.sock
pidfile=$root/dockerd.pid
export DOCKER_HOST=unix://$sock

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
    running || { rm -f "$pidfile"; return 0; }
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "engine.sh: dockerd $pid ignored SIGTERM for 30 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    # dockerd leaves its network namespace handle mounted under the exec root.
    awk -v root="$root/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mount; do umount "$mount" 2>/dev/null || true; done
    echo "engine.sh: dockerd stopped"
}

start() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "engine.sh: dockerd needs root; run as root, or use a Docker engine you have" >&2
        return 1
    fi
    command -v dockerd >/dev/null || {
        echo "engine.sh: no dockerd: apt-get install --no-install-recommends docker.io" >&2
        return 1
    }
    # One left by a killed run of this script is ours: stop it first.
    stop >/dev/null
    mkdir -p "$root"
    dockerd --data-root "$root/data" --exec-root "$root/exec" -H "unix://$sock" \
        --pidfile "$pidfile" --bridge=none --iptables=false --ip6tables=false \
        >"$root/dockerd.log" 2>&1 &
    for _ in $(seq 600); do
        if docker version >/dev/null 2>&1; then
            echo "DOCKER_HOST=$DOCKER_HOST"
            echo "engine.sh: dockerd $(cat "$pidfile") answers on $sock" \
                "(storage driver: $(docker info --format '{{.Driver}}'))" >&2
            return 0
        fi
        sleep 0.1
    done
    echo "engine.sh: dockerd did not answer within 60 s; its log ($root/dockerd.log):" >&2
    tail -n 20 "$root/dockerd.log" >&2
    stop >&2
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "dockerd $(cat "$pidfile") on $sock"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: images/engine.sh start|stop|status" >&2; exit 2 ;;
esac
