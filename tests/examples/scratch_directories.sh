#!/bin/sh
# The examples' scratch directories (found by a hostile-user run): an example used $TMPDIR/axds-<name>-<pid>,
# deleting whatever directory was already there and writing through a link planted at that name; a missing TMPDIR
# crashed it. Each example below now runs in a fresh mkdtemp directory and leaves everything else alone.
# Usage: scratch_directories.sh EXAMPLE_BINARY PREFIX
set -eu
binary=$1 prefix=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/decoy" && echo precious >"$work/decoy/config.yaml"
# The name the old code would have used, prepared by the shell that becomes the example (exec keeps the pid).
TMPDIR=$work sh -c 'mkdir -p "$TMPDIR/'"$prefix"'$$/mine" && echo user-data >"$TMPDIR/'"$prefix"'$$/mine/results.csv" &&
  exec "$0" >/dev/null' "$binary"
found=$(find "$work" -name results.csv | wc -l)
[ "$found" -eq 1 ] || { echo "FAIL: the user's directory at the example's old scratch name was deleted"; exit 1; }
TMPDIR=$work sh -c 'ln -s "$TMPDIR/decoy" "$TMPDIR/'"$prefix"'$$" && exec "$0" >/dev/null' "$binary"
[ "$(cat "$work/decoy/config.yaml")" = precious ] && [ "$(ls "$work/decoy")" = config.yaml ] ||
  { echo "FAIL: the example wrote through a link planted at its old scratch name"; exit 1; }
if TMPDIR=$work/missing "$binary" >/dev/null 2>"$work/err"; then
  echo "FAIL: the example succeeded without a temporary directory"; exit 1
fi
grep -q "no usable temporary directory" "$work/err" || { echo "FAIL: unclear error:"; cat "$work/err"; exit 1; }
leftover=$(find "$work" -mindepth 1 -maxdepth 1 -name "$prefix*" ! -name "$prefix[0-9]*" | wc -l)
[ "$leftover" -eq 0 ] || { echo "FAIL: the example left its scratch directory behind"; exit 1; }
echo "ok: $binary"
