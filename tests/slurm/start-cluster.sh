#!/bin/sh
# Starts a single-node SLURM cluster on this machine for the SLURM tests: a munge key, munged, a minimal slurm.conf
# (one node named after this host with its CPUs, proctrack/linuxproc, task/none, state and spool under a temporary
# directory), slurmctld and slurmd; waits until the node is idle. Idempotent: a running cluster started by this script
# is left alone. Needs root and the packages of cmake/install-slurm.sh. Exit 0 when the cluster is up, 77 when it
# cannot run here (not root, no packages), 1 when it failed to start.
#
#   AXDS_SLURM_DIR  where state, spool, logs and slurm.conf go (default /tmp/axds-slurm)
# Tests find the cluster through SLURM_CONF=$AXDS_SLURM_DIR/slurm.conf (printed on the last line).
set -eu
dir=${AXDS_SLURM_DIR:-/tmp/axds-slurm}
skip() { echo "start-cluster: SKIP: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root (slurmctld and munged need root here)"
for tool in slurmctld slurmd munged sbatch squeue sinfo; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (run cmake/install-slurm.sh)"
done
export SLURM_CONF="$dir/slurm.conf"
if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null &&
   sinfo -h -o %T 2>/dev/null | grep -q idle; then
  echo "start-cluster: already running"
  echo "SLURM_CONF=$SLURM_CONF"
  exit 0
fi
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cat > "$SLURM_CONF" <<CONF
ClusterName=axds
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
KillWait=2
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
# munge: a key of our own (an existing system key is kept) and a daemon on the default socket.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  touch "$dir/munged.ours"  # stop-cluster.sh stops only a munged this script started
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c munged || munged --force
  else
    munged --force
  fi
fi
i=0
until munge -n 2>/dev/null | unmunge >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 50 ] || { echo "start-cluster: munged did not start" >&2; exit 1; }; sleep 0.1
done
[ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null || slurmctld -c -i
[ -f "$dir/slurmd.pid" ] && kill -0 "$(cat "$dir/slurmd.pid")" 2>/dev/null || slurmd -c
i=0
until sinfo -h -o %T 2>/dev/null | grep -q idle; do
  i=$((i + 1))
  if [ $i -ge 300 ]; then
    echo "start-cluster: the node did not become idle in 30 s; logs:" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 0.1
done
echo "start-cluster: node $host ($cpus CPUs) idle"
echo "SLURM_CONF=$SLURM_CONF"
