#!/usr/bin/env bash
# ensure-claude-code.sh — install the pinned Claude Code CLI (npm package
# @anthropic-ai/claude-code) once per machine into a cache directory, and print
# the path of its `claude` binary on stdout. Idempotent: when the pinned version
# is already installed (its binary answers `--version` with that version),
# nothing is downloaded.
#
# The client end-to-end test (test/e2e/claudecode_client_test.go) runs it; so
# does `make claude-code`, a prerequisite of `make test`.
#
# Needs npm and the npm registry (only when the version is not cached yet).
# Concurrent callers are serialised with flock; the install goes to a temporary
# directory that is renamed into place, so a half-finished install is never used.
#
# Environment:
#   CLAUDE_CODE_VERSION   version to install (default: the pinned one below)
#   CLAUDE_CODE_CACHE     cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/claude-parallel/claude-code)
set -euo pipefail

# Pinned: the version the client end-to-end test was written against
# (npm view @anthropic-ai/claude-code version).
VERSION="${CLAUDE_CODE_VERSION:-2.1.337}"
CACHE="${CLAUDE_CODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claude-parallel/claude-code}"
DEST="$CACHE/$VERSION"
BIN="$DEST/node_modules/.bin/claude"

say() { printf 'ensure-claude-code: %s\n' "$*" >&2; }

installed() {
	[ -x "$BIN" ] && timeout 60 "$BIN" --version 2>/dev/null | grep -qF "$VERSION"
}

if installed; then
	echo "$BIN"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	say "npm is missing: install Node.js and npm (Debian: apt-get install npm), then run me again"
	exit 1
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
# Another caller may have installed it while we waited for the lock.
if installed; then
	echo "$BIN"
	exit 0
fi

tmp="$(mktemp -d "$CACHE/.install-$VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "installing @anthropic-ai/claude-code@$VERSION into $DEST (once per machine)"
npm install --no-audit --no-fund --no-save --prefix "$tmp" "@anthropic-ai/claude-code@$VERSION" >&2
# The package's postinstall (which npm may not run) only links the native binary
# of this platform into bin/; do it here when the link is not an executable yet.
pkg="$tmp/node_modules/@anthropic-ai/claude-code"
if ! timeout 60 "$tmp/node_modules/.bin/claude" --version >/dev/null 2>&1; then
	native="$(ls "$tmp"/node_modules/@anthropic-ai/claude-code-linux-*/claude 2>/dev/null | head -n1 || true)"
	if [ -z "$native" ]; then
		say "no native claude binary for this platform in the package"
		exit 1
	fi
	ln -f "$native" "$pkg/bin/claude.exe" 2>/dev/null || cp "$native" "$pkg/bin/claude.exe"
	chmod +x "$pkg/bin/claude.exe"
fi
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
if ! installed; then
	say "installed, but $BIN does not answer --version with $VERSION"
	exit 1
fi
echo "$BIN"
