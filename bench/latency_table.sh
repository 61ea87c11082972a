#!/bin/sh
# Issue 21's table in one run: the shared-memory lock hand-over (async_lock against the blocking lock), tracker
# transitions on a 100-job file (tmpfs and the repository's disk) and a 10,000-job file (against the bare
# flock + read + write + fsync + rename loop), open + onset discovery of a 1,000,000-member log archive, and the
# try_log tail (1 and 4 producers, with the same threads' control interval). Every baseline runs in the same process
# as the figure it is compared with; this script only runs the drivers one after the other on an otherwise idle
# machine and prints the CPU model and load first.
#
#   bench/latency_table.sh [BUILD_DIR] [TMPFS_DIR] [DISK_DIR]     (defaults: build, /dev/shm/axds-latency,
#                                                                  BUILD_DIR/latency-bench)
set -eu
build=${1:-build}
shm=${2:-/dev/shm/axds-latency}
disk=${3:-$build/latency-bench}
bench=$build/bench
for driver in ads_bench_shm ads_bench_tracker ads_bench_log_archive ads_bench_data_logger; do
  [ -x "$bench/$driver" ] || { echo "latency_table: $bench/$driver not built (-DAXDS_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
done
rm -rf "$shm" "$disk"
mkdir -p "$shm" "$disk"
trap 'rm -rf "$shm" "$disk"' EXIT
echo "CPU:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) logical CPUs), kernel $(uname -r)"
echo "load: $(uptime)"
echo "== shared_memory_array lock hand-over"
"$bench/ads_bench_shm" --ops 1000000
echo "== tracker, 100 jobs, tmpfs ($shm)"
"$bench/ads_bench_tracker" --dir "$shm" --jobs 100 --transitions 300 --rounds 3 --processes 2
echo "== tracker, 100 jobs, disk ($disk: $(df -T "$disk" | awk 'NR == 2 {print $2}'))"
"$bench/ads_bench_tracker" --dir "$disk" --jobs 100 --transitions 300 --rounds 3 --processes 2
echo "== tracker, 10,000 jobs, tmpfs"
"$bench/ads_bench_tracker" --dir "$shm" --jobs 10000 --transitions 60 --rounds 3 --processes 1
echo "== log archive open + onset discovery, 1,000,000 members"
"$bench/ads_bench_log_archive" --dir "$shm" --messages 1000000 --assemble 0 --big-count 0 --python-sample 1
echo "== try_log tail"
"$bench/ads_bench_data_logger" --dir "$shm" --latency-only 1 --attribute-faults 1
echo "load after: $(uptime)"
