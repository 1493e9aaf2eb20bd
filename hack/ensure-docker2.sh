#!/usr/bin/env bash
# ensure-docker2.sh — a SECOND Docker engine on this machine, idempotently, for the
# remote-engine tests: its own unix socket, data root, exec root (with its own
# containerd) and pid file, so that to claude-parallel it is an engine elsewhere whose
# file system it cannot see (workspace_transfer: copy). The machine's main dockerd
# (hack/ensure-docker.sh) is never touched, stopped or reconfigured.
#
#   1. the second engine answers  → load the test image into it if missing, exit 0.
#   2. otherwise (as root)        → start it in the background, wait until it answers,
#                                   then load the test image.
#
# The test image (claude-parallel/shell:latest, hack/build-test-image.sh) is copied
# from the main engine with `docker save | docker -H … load` when the second engine
# lacks it or has another build of it: neither engine can pull from a registry here.
#
# Safe to run several times at once (flock). Prints the engine's address last on
# stdout, so `export CP_DOCKER2_HOST=$(bash hack/ensure-docker2.sh)` works.
#
# Environment:
#   CP_DOCKER2_NAME     name of the engine's files (default cp-docker2): the socket
#                       /run/NAME.sock, data root /var/lib/NAME, exec root /run/NAME,
#                       pid file /run/NAME.pid, log /var/log/NAME.log
#   CP_DOCKER2_IMAGES   images to copy into it (default claude-parallel/shell:latest)
#   ENSURE_DOCKER_TIMEOUT  seconds to wait for the daemon (default 60)
set -euo pipefail

NAME="${CP_DOCKER2_NAME:-cp-docker2}"
SOCK="/run/$NAME.sock"
HOST="unix://$SOCK"
DATA="/var/lib/$NAME"
EXEC="/run/$NAME"
PIDFILE="/run/$NAME.pid"
CONF="$DATA.json"
LOG="/var/log/$NAME.log"
IMAGES="${CP_DOCKER2_IMAGES:-claude-parallel/shell:latest}"
TIMEOUT="${ENSURE_DOCKER_TIMEOUT:-60}"
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { printf 'ensure-docker2: %s\n' "$*" >&2; }

answers() { timeout 10 docker -H "$HOST" version >/dev/null 2>&1; }

# load_images copies each image from the main engine unless the second one has the
# same image id already.
load_images() {
	local img want have
	for img in $IMAGES; do
		want="$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)"
		if [ -z "$want" ]; then
			say "$img is not on the main engine; building it (hack/build-test-image.sh)"
			bash "$HERE/build-test-image.sh"
			want="$(docker image inspect -f '{{.Id}}' "$img")"
		fi
		have="$(docker -H "$HOST" image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)"
		if [ "$have" = "$want" ]; then
			continue
		fi
		say "loading $img into $HOST"
		docker save "$img" | docker -H "$HOST" load -q >/dev/null
	done
}

exec 9>"${TMPDIR:-/tmp}/claude-parallel-ensure-$NAME.lock"
command -v flock >/dev/null 2>&1 && flock -w $((TIMEOUT + 300)) 9

# The main engine is the source of the images; make sure it answers first.
bash "$HERE/ensure-docker.sh"

if ! answers; then
	if [ "$(id -u)" != 0 ]; then
		say "the second engine ($HOST) does not answer and starting dockerd needs root; run: sudo bash $0"
		exit 1
	fi
	command -v dockerd >/dev/null 2>&1 || { say "dockerd is not installed (hack/ensure-docker.sh installs it)"; exit 1; }
	if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; then
		rm -f "$PIDFILE"
	fi
	mkdir -p "$DATA" "$EXEC"
	# Its own (empty) configuration file: the main engine's /etc/docker/daemon.json
	# is not read, so nothing set there for the main engine applies to this one.
	[ -f "$CONF" ] || printf '{}\n' >"$CONF"
	# No bridge, no iptables: task containers use network none, and the main
	# engine's NAT rules must not be touched.
	flags=(--host "$HOST" --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE"
		--config-file "$CONF" --bridge=none --iptables=false --ip6tables=false --ip-masq=false)
	say "starting: dockerd ${flags[*]} (log: $LOG)"
	# setsid + nohup: the daemon outlives this script; 9>&-: it must not inherit the lock.
	setsid nohup dockerd "${flags[@]}" >>"$LOG" 2>&1 </dev/null 9>&- &
	pid=$!
	for _ in $(seq 1 "$TIMEOUT"); do
		answers && break
		if ! kill -0 "$pid" 2>/dev/null; then
			say "dockerd exited early; last log lines:"
			tail -n 15 "$LOG" >&2 || true
			exit 1
		fi
		sleep 1
	done
	if ! answers; then
		say "dockerd did not answer within ${TIMEOUT}s; last log lines:"
		tail -n 15 "$LOG" >&2 || true
		exit 1
	fi
fi

load_images
say "second engine answers at $HOST ($(docker -H "$HOST" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'))"
echo "$HOST"
