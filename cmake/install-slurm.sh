#!/bin/sh
# Optional: installs a single-node SLURM (slurm-wlm, munge) for the SLURM tests (tests/slurm). Idempotent; needs root
# (or sudo). Nothing else in axds needs these packages.
set -eu
missing=""
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-slurm: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-slurm: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
