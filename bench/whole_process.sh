#!/usr/bin/env bash
# Whole-process benchmark: the `axds` command against the tool a user would otherwise run, on the same data, in the
# same run, alternating runs, medians, ratios. Plain bash + date +%s%N (no hyperfine needed).
#
#   bench/whole_process.sh [--axds PATH] [--runs N] [--files N] [--big-mib S] [--entries N] [DIR...]
#
# Each DIR (default: /dev/shm and <repo>/bench-tmp, the repo's disk) gets a scratch folder that is removed at the end.
# Jobs: checksum of N x 16 KiB files in 100 folders and of one S MiB file (vs `xxhsum -H2`), transfer plain and
# verified (vs `cp -r`), delete of the small-file tree (vs `rm -rf`), assembly of N x 256 B log entries (vs python3 +
# numpy np.load + np.savez, the protocol of ads_bench_log_archive; the original Python library, ataraxis-data-
# structures, is used instead when importable); with two DIRs on different filesystems, the one big file's plain
# and verified transfer from the last DIR to the first. --smoke runs tiny sizes once (seconds; for ctest).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
axds_bin="$repo/build/axds"
[[ -x "$axds_bin" ]] || axds_bin=$(command -v axds || true)
runs=5
files=20000
big_mib=1024
entries=20000
dirs=()
while (($#)); do
    case "$1" in
        --axds) axds_bin=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        --big-mib) big_mib=$2; shift 2 ;;
        --entries) entries=$2; shift 2 ;;
        --smoke) runs=1; files=200; big_mib=8; entries=200; shift ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) dirs+=("$1"); shift ;;
    esac
done
if [[ -z "$axds_bin" || ! -x "$axds_bin" ]]; then
    echo "whole_process.sh: no axds binary (build it, or pass --axds PATH)" >&2
    exit 2
fi
((${#dirs[@]})) || dirs=(/dev/shm "$repo/bench-tmp")
have() { command -v "$1" >/dev/null 2>&1; }
python=python3
[[ -x /usr/bin/python3 ]] && python=/usr/bin/python3  # the system one has numpy; a venv's may not

now_ns() { date +%s%N; }
# the filesystem type of a path as mount names it (`stat -f` says "ext2/ext3" for ext4)
fs_name() {
    local t
    t=$(findmnt -n -o FSTYPE --target "$1" 2>/dev/null | tail -n1 || true)
    [[ -n "$t" ]] || t=$(stat -f -c %T "$1")
    echo "$t"
}
# seconds taken by "$@" (output discarded; a failure aborts the benchmark)
timed() {
    local t0 t1
    t0=$(now_ns)
    "$@" >/dev/null 2>&1 || { echo "whole_process.sh: failed: $*" >&2; exit 1; }
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000))  # microseconds
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# compare LABEL GOAL PREPARE AXDS_CMD BASE_CMD CLEANUP: alternating runs (order swapped every round), one untimed
# warm-up of each, PREPARE and a `sync` before and CLEANUP after every run (untimed). Prints one table row; ratio = base / axds.
compare() {
    local label=$1 goal=$2 prepare=$3 ours=$4 base=$5 cleanup=$6 r a=() b=()
    for ((r = 0; r <= runs; r++)); do
        local first=ours second=base
        ((r % 2)) && first=base second=ours
        for side in $first $second; do
            eval "$prepare"
            sync  # untimed: no run pays for the writeback of the one before (ext4 here stalled 1-2 s now and then)
            local cmd=${!side} t
            t=$(timed bash -c "$cmd")
            eval "$cleanup"
            ((r == 0)) && continue  # warm-up
            if [[ $side == ours ]]; then a+=("$t"); else b+=("$t"); fi
        done
    done
    local ma mb
    ma=$(median "${a[@]}")
    mb=$(median "${b[@]}")
    printf '| %s | %s s | %s s | %s× (%s) |\n' "$label" "$(secs "$ma")" "$(secs "$mb")" "$(ratio "$mb" "$ma")" "$goal"
}

make_tree() {  # $1: folder; $files files of 16 KiB in 100 folders, random bytes
    if have "$python"; then
        "$python" - "$1" "$files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(16384))
EOF
    else
        local i
        for ((i = 0; i < files; i++)); do
            mkdir -p "$1/d$(printf %03d $((i % 100)))"
            head -c 16384 /dev/urandom >"$1/d$(printf %03d $((i % 100)))/f$(printf %06d $i).bin"
        done
    fi
}

make_entries() {  # $1: log directory; $entries .npy entries of 256 B payload (source 1), as the data logger writes
    "$python" - "$1" "$entries" <<'EOF'
import os, sys
import numpy as np
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
payload = bytes([0xAB]) * 256
for t in range(n):
    data = bytes([1]) + t.to_bytes(8, "little") + payload
    np.save(os.path.join(root, f"001_{t:020d}.npy"), np.frombuffer(data, dtype=np.uint8))
EOF
}

python_assembly() {  # the numpy baseline of ads_bench_log_archive, or the original library when it is installed
    if "$python" -c 'import ataraxis_data_structures' >/dev/null 2>&1; then
        echo "$python -c 'from ataraxis_data_structures import assemble_log_archives as a; a(\"$1\", remove_sources=False)'"
    else
        echo "$python -c \"import glob, numpy as np; fs = sorted(glob.glob('$1/*.npy')); np.savez('$1/python_1_log.npz', **{f.rsplit('/', 1)[1][:-4]: np.load(f) for f in fs})\""
    fi
}

write_log_scripts() {  # $1: folder; the two sides of the streaming-logger row (issue 19), as files bash -c can run
    cat >"$1/python_log.py" <<'EOF'
# The Python library's way to a log archive, without its multiprocessing queue: np.save per message, then one
# np.savez of all of them (what DataLogger + assemble_log_archives write).
import os, sys
import numpy as np
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
payload = bytes([0xAB]) * 256
names = []
for t in range(1, n + 1):
    name = f"001_{t:020d}"
    np.save(os.path.join(root, name + ".npy"), np.frombuffer(bytes([1]) + t.to_bytes(8, "little") + payload, np.uint8))
    names.append(name)
np.savez(os.path.join(root, "1_log.npz"), **{k: np.load(os.path.join(root, k + ".npy")) for k in names})
EOF
    cat >"$1/producer.py" <<'EOF'
import sys
from axds_log_socket import LogSocketProducer
payload = bytes([0xAB]) * 256
with LogSocketProducer(sys.argv[1]) as producer:
    for t in range(1, int(sys.argv[2]) + 1):
        producer.log(1, t, payload)
EOF
    cat >"$1/serve_log.sh" <<'EOF'
# $1 axds, $2 python, $3 examples/python, $4 output folder, $5 messages, $6 layout [, $7 = assemble]: a Python producer
# through `axds log serve` until the logger stopped (and, with $7, `axds assemble` ran).
set -e
mkdir -p "$4"
"$1" log serve --layout "$6" --socket "$4/wp.sock" "$4" wp >/dev/null &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' EXIT  # a failed producer must not leave the server running
for _ in $(seq 2000); do [ -S "$4/wp.sock" ] && break; sleep 0.005; done
PYTHONPATH="$3" "$2" "$4/../producer.py" "$4/wp.sock" "$5"
kill -INT "$pid"
wait "$pid"
if [ -n "${7:-}" ]; then "$1" assemble "$4/wp_data_log" >/dev/null; fi
[ -f "$4/wp_data_log/1_log.npz" ]
EOF
}

echo "# axds whole-process benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; kernel $(uname -r)"
echo "axds: $axds_bin; runs: $runs after a warm-up, alternating, medians; ratio = baseline time / axds time"
have xxhsum || echo "note: xxhsum not found: checksum rows skipped"
numpy=0
"$python" -c 'import numpy' >/dev/null 2>&1 && numpy=1
"$python" -c 'import ataraxis_data_structures' >/dev/null 2>&1 \
    && echo "assembly baseline: the original Python library (ataraxis_data_structures)" \
    || echo "assembly baseline: python3 + numpy np.load + np.savez (ataraxis_data_structures is not installed)"

for base in "${dirs[@]}"; do
    mkdir -p "$base"
    w=$(mktemp -d "$base/axds-wp.XXXXXX")
    fs_type=$(fs_name "$w")
    echo
    echo "## $w ($fs_type); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    make_tree "$w/tree"
    mkdir -p "$w/big"
    head -c "$((big_mib << 20))" /dev/urandom >"$w/big/one.bin"
    cat "$w/big/one.bin" >/dev/null
    echo
    echo "| job | axds | baseline | ratio (goal) |"
    echo "|---|---|---|---|"
    ax=$axds_bin
    if have xxhsum; then
        ours="$ax checksum --no-save --workers 2 $w/tree" base="find $w/tree -type f -print0 | xargs -0 xxhsum -H2"
        compare "checksum $files × 16 KiB vs \`xxhsum -H2\`" "≥ 1.0×" : "$ours" "$base" :
        ours="$ax checksum --no-save --workers 2 $w/big" base="xxhsum -H2 $w/big/one.bin"
        compare "checksum one $big_mib MiB file vs \`xxhsum -H2\`" "≥ 1.0×" : "$ours" "$base" :
    fi
    # The fixed cost of a run (loader, start-up, exit), which every short command pays: 4× the runs, it is small.
    mkdir -p "$w/tiny"
    head -c 4096 /dev/urandom >"$w/tiny/a.bin"
    ours="$ax transfer $w/tiny $w/out_tiny" base="cp -r $w/tiny $w/out_tiny"
    runs=$((runs * 4)) compare "start-up: transfer of one 4 KiB file vs \`cp -r\`" "no goal: a run's fixed cost" : \
        "$ours" "$base" "rm -rf $w/out_tiny"
    for t in tree big; do
        what="$files × 16 KiB"
        [[ $t == big ]] && what="one $big_mib MiB file"
        ours="$ax transfer --threads 2 $w/$t $w/out_$t" base="cp -r $w/$t $w/out_$t"
        compare "transfer $what vs \`cp -r\`" "≥ 1.0×" : "$ours" "$base" "rm -rf $w/out_$t"
        ours="$ax transfer --threads 2 --verify $w/$t $w/out_$t"
        compare "verified transfer $what vs \`cp -r\`" "≥ 0.77×, i.e. ≤ 1.3× the time" : "$ours" "$base" \
            "rm -rf $w/out_$t; rm -f $w/$t/ax_checksum.txt"
    done
    # Delete: a fresh copy per run (untimed); on a disk the copies stay out of the other timings (ext4 creates crawl
    # right after mass deletions), so this job runs last.
    ours="$ax delete $w/del" base="rm -rf $w/del"
    compare "delete $files files in 100 folders vs \`rm -rf\`" "≥ 1.0×" "cp -r $w/tree $w/del" "$ours" "$base" :
    if ((numpy)); then
        make_entries "$w/log"
        ours="$ax assemble --keep-sources $w/log" base=$(python_assembly "$w/log")
        compare "assemble $entries × 256 B entries vs Python (numpy)" "≥ 20×" : "$ours" "$base" \
            "rm -f $w/log/*.npz"
        write_log_scripts "$w"
        serve="bash $w/serve_log.sh $ax $python $repo/examples/python $w/logged $entries"
        ours="$serve archives" base="$python $w/python_log.py $w/logged $entries"
        compare "log $entries × 256 B from Python into an archive: \`axds log serve --layout archives\` vs np.save + np.savez" \
            "≥ 5×" : "$ours" "$base" "rm -rf $w/logged"
        base="$serve entries assemble"
        compare "same: streaming (archives) vs \`log serve\` entry files + \`axds assemble\`" "≥ 1×" : "$ours" "$base" \
            "rm -rf $w/logged"
    fi
    echo
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$w"
done

# Across filesystems (the usual transfer: acquisition disk to another volume): copy_file_range refuses, so both the
# copy and its verification move the bytes through buffers. From the last DIR to the first (by default the repo's disk
# to /dev/shm), when they are different filesystems.
if ((${#dirs[@]} >= 2)) && [[ $(stat -c %d "${dirs[0]}") != $(stat -c %d "${dirs[-1]}") ]]; then
    from=$(mktemp -d "${dirs[-1]}/axds-wp.XXXXXX")
    to=$(mktemp -d "${dirs[0]}/axds-wp.XXXXXX")
    mkdir -p "$from/big"
    head -c "$((big_mib << 20))" /dev/urandom >"$from/big/one.bin"
    cat "$from/big/one.bin" >/dev/null
    echo
    echo "## across filesystems: $from ($(fs_name "$from")) to $to ($(fs_name "$to"))"
    echo
    echo "| job | axds | baseline | ratio (goal) |"
    echo "|---|---|---|---|"
    ours="$axds_bin transfer --threads 2 $from/big $to/out" base="cp -r $from/big $to/out"
    compare "transfer one $big_mib MiB file vs \`cp -r\`" "≥ 1.0×" : "$ours" "$base" "rm -rf $to/out"
    ours="$axds_bin transfer --threads 2 --verify $from/big $to/out"
    compare "verified transfer one $big_mib MiB file vs \`cp -r\`" "≥ 0.77×, i.e. ≤ 1.3× the time" : "$ours" "$base" \
        "rm -rf $to/out; rm -f $from/big/ax_checksum.txt"
    rm -rf "$from" "$to"
fi
