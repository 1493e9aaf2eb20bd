#!/usr/bin/env bash
# demo.sh — the product's main job, end to end, on its embedded defaults
# (SQLite under ~/.claude-parallel, the local Docker engine):
#   1. a small demo git repository is created under your home directory
#      (work folders must lie inside config `allowed_roots`, default: ~);
#   2. a task runs the `shell` agent on it in a hardened container;
#   3. the diff the task left is shown;
#   4. the diff is applied to the repository's working tree.
# `make demo` prepares Docker, the demo image and the binary first.
#
# Environment: CLAUDE_PARALLEL_HOME (installation dir), DEMO_DIR (where to
# create the demo repository; default a new folder under $HOME).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${CLAUDE_PARALLEL_BIN:-$root/bin/claude-parallel}"
if [[ ! -x "$bin" ]]; then
	echo "demo: building $bin"
	(cd "$root" && go build -o "$bin" ./cmd/claude-parallel)
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

repo="${DEMO_DIR:-$(mktemp -d "${HOME}/claude-parallel-demo.XXXXXX")}"
mkdir -p "$repo"
say "demo repository: $repo"
git -C "$repo" init -q -b main
cat >"$repo/greeting.txt" <<'TXT'
Hello, World!
TXT
cat >"$repo/README.md" <<'TXT'
# demo
A repository for the claude-parallel demo.
TXT
git -C "$repo" add -A
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "demo: initial commit"

# The prompt is a shell script for the `shell` agent; with the `claude` agent it
# would be an instruction in words. It is passed as one argv element.
prompt='sed -i "s/World/claude-parallel/" greeting.txt
echo "- written by a claude-parallel task" >> README.md
mkdir -p docs && echo "# Notes" > docs/NOTES.md
echo "changed $(ls | wc -l) top-level entries"'

say "task start (agent shell) and wait for it"
out="$("$bin" task start --repo "$repo" --agent shell --prompt "$prompt" --wait --json)"
task_id="$(printf '%s\n' "$out" | sed -n 's/.*"id": *"\(task-[0-9a-f]*\)".*/\1/p' | head -n1)"
diff_id="$(printf '%s\n' "$out" | sed -n 's/.*"diff": *"\(diff-[0-9a-f]*\)".*/\1/p' | head -n1)"
status="$(printf '%s\n' "$out" | sed -n 's/.*"status": *"\([a-z_]*\)".*/\1/p' | head -n1)"
if [[ -z "$task_id" || -z "$diff_id" || "$status" != completed ]]; then
	echo "demo: the task did not complete with a diff:" >&2
	printf '%s\n' "$out" >&2
	exit 1
fi
"$bin" task show "$task_id"

say "task logs $task_id"
"$bin" task logs "$task_id"

say "diff show $diff_id --patch"
"$bin" diff show "$diff_id" --patch

say "diff apply $diff_id (worktree mode)"
"$bin" diff apply "$diff_id" --wait

say "the demo repository now"
git -C "$repo" status --short
printf -- '--- greeting.txt\n%s\n' "$(cat "$repo/greeting.txt")"
grep -q "claude-parallel" "$repo/greeting.txt" || { echo "demo: the change is not in the work tree" >&2; exit 1; }

say "done"
echo "Task $task_id ran in its own container; its diff $diff_id is applied to $repo."
echo "Remove the demo repository with: rm -rf '$repo'"
