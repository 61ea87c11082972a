#!/bin/sh
# Stops the cluster of start-cluster.sh: cancels every job, stops slurmd and slurmctld (waits for them to exit) and the
# munged it started. Safe to run when nothing is running.
set -u
dir=${AXDS_SLURM_DIR:-/tmp/axds-slurm}
export SLURM_CONF="$dir/slurm.conf"
[ -f "$SLURM_CONF" ] && command -v scancel >/dev/null 2>&1 && scancel --full --quiet --user=root 2>/dev/null
stop() {
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$1"
}
stop "$dir/slurmd.pid"
stop "$dir/slurmctld.pid"
if [ -f "$dir/munged.ours" ]; then
  stop /run/munge/munged.pid
  rm -f "$dir/munged.ours"
fi
echo "stop-cluster: stopped"
