#!/usr/bin/env bash
# build-agent-image.sh — build claude-parallel/agent:latest, the image of the `claude`
# agent profile, without a container registry (make agent-image).
#
# hack/images/agent/Dockerfile builds the same image FROM node on a machine that reaches
# Docker Hub. This script needs no registry: the image is FROM scratch, made of
#   - the pinned Claude Code npm package (hack/ensure-claude-code.sh installs it once per
#     machine). Since 2.x the package ships a native executable per platform
#     (@anthropic-ai/claude-code-linux-x64/claude, a self-contained Bun build): it needs
#     no Node.js, only glibc. It goes to /usr/local/bin/claude;
#   - from Debian's packages installed on this machine (apt-get installs what is
#     missing when run as root): busybox-static (sh and the usual tools, one symlink per
#     applet), bash (Claude Code's Bash tool wants a POSIX shell named in SHELL), git
#     (the binary; its builtins need no helper programs), ca-certificates (the API is
#     HTTPS), and the shared libraries these need, found with ldd and copied with the
#     dynamic loader;
#   - /etc/passwd and /etc/group with the user `agent` (10001:10001), /tmp (1777),
#     /workspace and /home/agent owned by agent.
# Everything but those two directories belongs to root, so the agent cannot change the
# image's programs; it runs as well with --read-only, all capabilities dropped,
# --network none and HOME on a tmpfs or a bind mount.
#
# Idempotent: the image carries a label with a hash of this script and of every file
# it copies (the Claude Code binary included); when an image with that hash exists
# nothing is built. FORCE=1 rebuilds.
#
# Environment:
#   IMAGE                 image reference to build (default claude-parallel/agent:latest)
#   FORCE                 1 = rebuild even when the image is up to date
#   CLAUDE_CODE_VERSION   passed to hack/ensure-claude-code.sh (default: its pinned version)
set -euo pipefail

IMAGE="${IMAGE:-claude-parallel/agent:latest}"
HASH_LABEL="claude-parallel.image-hash"
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { printf 'build-agent-image: %s\n' "$*" >&2; }

if ! timeout 10 docker version >/dev/null 2>&1; then
	say "no Docker engine answers; running hack/ensure-docker.sh"
	bash "$HERE/ensure-docker.sh"
fi

case "$(uname -m)" in
x86_64) ARCH=x64 ;;
aarch64) ARCH=arm64 ;;
*)
	say "no Claude Code binary is published for $(uname -m)"
	exit 1
	;;
esac

# The Debian packages the image is made of; installed when missing (needs root + apt).
need_pkgs=()
static_busybox() {
	local out
	[ -x /bin/busybox ] || return 1
	# ldd exits 1 on a static binary; read its words, not its status.
	out="$(LC_ALL=C ldd /bin/busybox 2>&1 || true)"
	case "$out" in *"not a dynamic"* | *"statically linked"*) return 0 ;; esac
	return 1
}
static_busybox || need_pkgs+=(busybox-static)
command -v bash >/dev/null 2>&1 || need_pkgs+=(bash)
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
[ -r /etc/ssl/certs/ca-certificates.crt ] || need_pkgs+=(ca-certificates)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
	if [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		say "installing ${need_pkgs[*]} with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 || {
			apt-get update -qq
			apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
		}
	else
		say "missing: ${need_pkgs[*]} (Debian/Ubuntu: apt-get install ${need_pkgs[*]})"
		exit 1
	fi
fi

# The pinned Claude Code package; its native binary is what runs.
CLAUDE_BIN="$(bash "$HERE/ensure-claude-code.sh")"
PKG_ROOT="$(cd "$(dirname "$CLAUDE_BIN")/.." && pwd)" # <cache>/<version>/node_modules
CLAUDE="$(ls "$PKG_ROOT"/@anthropic-ai/claude-code-linux-"$ARCH"/claude 2>/dev/null | head -n1 || true)"
if [ -z "$CLAUDE" ] || [ ! -x "$CLAUDE" ]; then
	say "no native Claude Code binary for linux-$ARCH under $PKG_ROOT/@anthropic-ai"
	exit 1
fi
CLAUDE_VERSION="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PKG_ROOT/@anthropic-ai/claude-code/package.json" | head -n1)"

BUSYBOX=/bin/busybox
BASH_BIN="$(readlink -f "$(command -v bash)")"
GIT_BIN="$(readlink -f "$(command -v git)")"
CA_FILE="$(readlink -f /etc/ssl/certs/ca-certificates.crt)"

# The shared libraries (and the loader) of every dynamic program, as real files.
libs_of() {
	LC_ALL=C ldd "$1" | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]*ld-linux/ { print $1 }'
}
mapfile -t LIBS < <(for b in "$BASH_BIN" "$GIT_BIN" "$CLAUDE"; do libs_of "$b"; done | sort -u)
if [ "${#LIBS[@]}" -eq 0 ]; then
	say "ldd found no libraries for $CLAUDE; is it the glibc build?"
	exit 1
fi

# The hash covers everything that decides the image's content.
HASH="$( (
	cat "$0"
	for f in "$BUSYBOX" "$BASH_BIN" "$GIT_BIN" "$CA_FILE" "${LIBS[@]}"; do
		printf '%s\n' "$f"
		cat "$(readlink -f "$f")"
	done
	cat "$CLAUDE"
) | sha256sum | cut -c1-32)"

up_to_date() {
	local have
	have="$(docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
	[ "$have" = "$HASH" ]
}
if [ "${FORCE:-0}" != "1" ] && up_to_date; then
	say "$IMAGE is up to date ($HASH_LABEL=$HASH)"
	exit 0
fi

# Concurrent callers (parallel make targets, test binaries) build once.
exec 9>"${TMPDIR:-/tmp}/claude-parallel-build-agent-image.lock"
command -v flock >/dev/null 2>&1 && flock -w 900 9
if [ "${FORCE:-0}" != "1" ] && up_to_date; then
	say "$IMAGE is up to date (built by a concurrent caller)"
	exit 0
fi

CTX="$(mktemp -d "${TMPDIR:-/tmp}/cp-agent-image.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
ROOT="$CTX/rootfs"
mkdir -p "$ROOT/bin" "$ROOT/usr/bin" "$ROOT/usr/local/bin" "$ROOT/sbin" "$ROOT/etc/ssl/certs" \
	"$ROOT/root" "$ROOT/tmp" "$ROOT/var/tmp" "$ROOT/home"

cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	case "$applet" in busybox | bash | */*) continue ;; esac
	ln -sf busybox "$ROOT/bin/$applet"
done
for applet in env awk sed tr head tail; do
	ln -sf ../../bin/busybox "$ROOT/usr/bin/$applet"
done
cp "$BASH_BIN" "$ROOT/bin/bash"
ln -sf ../../bin/bash "$ROOT/usr/bin/bash"
cp "$GIT_BIN" "$ROOT/usr/bin/git"
cp "$CLAUDE" "$ROOT/usr/local/bin/claude"
for lib in "${LIBS[@]}"; do
	# Keep the path ldd named (the loader's search path), with the file's content.
	mkdir -p "$ROOT$(dirname "$lib")"
	cp -L "$lib" "$ROOT$lib"
done
# /lib64 and /lib may be symlinks into /usr on the host (merged /usr); the copies
# above are plain directories, which the loader reads the same.
cp -L "$CA_FILE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$ROOT"/bin/busybox "$ROOT"/bin/bash "$ROOT"/usr/bin/git "$ROOT"/usr/local/bin/claude
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 0700 "$ROOT/root"
chmod 0755 "$ROOT/home"

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
agent:x:10001:10001:claude-parallel agent:/home/agent:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
agent:x:10001:
nogroup:x:65534:
EOF
printf '/bin/sh\n/bin/bash\n' >"$ROOT/etc/shells"
chmod 0644 "$ROOT/etc/passwd" "$ROOT/etc/group" "$ROOT/etc/shells"

# Only the agent's home and workspace belong to 10001; tar sets the owners itself, so
# the script needs no chown, and one archive makes one layer.
AGENT="$CTX/agentfs"
mkdir -p "$AGENT/home/agent" "$AGENT/workspace"
chmod 0755 "$AGENT/workspace" && chmod 0750 "$AGENT/home/agent"
tar --numeric-owner --owner=0 --group=0 -C "$ROOT" -cf "$CTX/rootfs.tar" .
tar --numeric-owner --owner=10001 --group=10001 -C "$AGENT" -rf "$CTX/rootfs.tar" ./home/agent ./workspace
rm -rf "$ROOT" "$AGENT"

cat >"$CTX/Dockerfile" <<EOF
# Generated by hack/build-agent-image.sh — do not edit; edit the script.
FROM scratch
ADD rootfs.tar /
ENV HOME=/home/agent \\
    PATH=/usr/local/bin:/usr/bin:/bin \\
    SHELL=/bin/bash \\
    LANG=C.UTF-8 \\
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    DISABLE_AUTOUPDATER=1
USER 10001:10001
WORKDIR /workspace
LABEL org.opencontainers.image.title="claude-parallel agent" \\
      org.opencontainers.image.description="Claude Code $CLAUDE_VERSION for the claude profile, FROM scratch out of Debian packages" \\
      claude-parallel.claude-code-version="$CLAUDE_VERSION" \\
      $HASH_LABEL="$HASH"
CMD ["claude", "--version"]
EOF

say "building $IMAGE with Claude Code $CLAUDE_VERSION"
old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$CTX" 2>&1)"; then
	printf '%s\n' "$out" >&2
	say "docker build failed"
	exit 1
fi
new_id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
	docker image rm "$old_id" >/dev/null 2>&1 || true
fi
# A last check that the image runs the way the server runs it.
if ! got="$(docker run --rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges \
	--user 10001:10001 --tmpfs /tmp --tmpfs /home/agent:uid=10001,gid=10001 "$IMAGE" claude --version 2>&1)" ||
	! printf '%s' "$got" | grep -qF "$CLAUDE_VERSION"; then
	say "the built image does not run claude --version: $got"
	exit 1
fi
say "built $IMAGE ($got; $HASH_LABEL=$HASH)"
