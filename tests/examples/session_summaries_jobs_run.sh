#!/bin/sh
# examples/session_summaries.cpp through `axds jobs run`: 4 sessions, 2 worker processes; every session gets its
# summary of both archives (200 messages each).
#   session_summaries_jobs_run.sh EXAMPLE AXDS
set -eu
example=$1
axds=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$example" setup "$d" 4
"$axds" jobs run "$d/tracker.yaml" --workers 2 -- "$example" process "$d/{specifier}"
for i in 0 1 2 3; do
  [ "$(grep -c 'messages=200' "$d/session-$i/summary.txt")" -eq 2 ] || { echo "session-$i: bad summary" >&2; exit 1; }
done
"$axds" jobs status "$d/tracker.yaml" | grep -q "4 jobs: 4 succeeded"
echo "4 session summaries written through axds jobs run"
