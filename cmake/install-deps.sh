#!/bin/sh
# Installs every Debian 12 package axds needs to build, test and benchmark. Idempotent: packages already present are
# left alone, and apt-get runs only when something is missing. Needs root (or sudo).
set -eu
packages="cmake g++ ninja-build pkg-config libasio-dev liburing-dev libyaml-cpp-dev libyaml-dev libxxhash-dev
zlib1g-dev libfmt-dev catch2 libcli11-dev libbenchmark-dev xxhash clang-format
python3 python3-numpy python3-yaml python3-xxhash"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
