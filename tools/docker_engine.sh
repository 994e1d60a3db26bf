#!/bin/sh
# Make a Docker engine and the local base image available, idempotently (issue 14).
#
#   sh tools/docker_engine.sh        # prints the base image's name when ready
#
# What a fresh machine lacks is installed or started; what is there is reused:
#   1. Debian's docker.io and debootstrap, when absent (apt-get update first);
#   2. a daemon: when `docker info` gets no answer, `dockerd --bridge=none --iptables=false
#      --ip-masq=false` (no bridge network, nothing on a private address range), waited for;
#      its pid is written to $VENV_PRUNE_DOCKERD_PIDFILE so the caller can stop it;
#   3. the base image (no image registry is reachable): debootstrap a minimal bookworm with
#      python3, python3-venv and ca-certificates, then `docker import` it as
#      local/python:3.11-bookworm (about a minute), unless an image of that name exists.
# Needs root. Exit 2 with one line on stderr when something cannot be had.
set -eu

IMAGE=${VENV_PRUNE_BASE_IMAGE:-local/python:3.11-bookworm}
SUITE=bookworm
MIRROR=${VENV_PRUNE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=${VENV_PRUNE_ROOTFS:-/var/tmp/venv-prune-rootfs-$SUITE}
LOG=${VENV_PRUNE_DOCKERD_LOG:-/tmp/venv-prune-dockerd.log}
PIDFILE=${VENV_PRUNE_DOCKERD_PIDFILE:-/tmp/venv-prune-dockerd.pid}

fail() { echo "docker_engine: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || fail "needs root (installs packages, starts dockerd); run it as root"

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    echo "docker_engine: installing$missing" >&2
    apt-get update -q >&2 || fail "apt-get update failed"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2 \
        || fail "apt-get install$missing failed"
fi

if ! docker info >/dev/null 2>&1; then
    echo "docker_engine: starting dockerd (log $LOG)" >&2
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le 90 ] || fail "dockerd did not answer within 90 s; see $LOG"
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || fail "dockerd exited; see $LOG"
        sleep 1
    done
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "docker_engine: building $IMAGE with debootstrap (about a minute)" >&2
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS" "$MIRROR" >&2 || fail "debootstrap $SUITE failed; see $ROOTFS/debootstrap/debootstrap.log"
    tar -C "$ROOTFS" -c . | docker import - "$IMAGE" >&2 || fail "docker import $IMAGE failed"
    rm -rf "$ROOTFS"
fi
echo "$IMAGE"
