#!/usr/bin/env bash
# Runs bench/devices.ts on the lent GPU machine from the repository root,
# with .gpu (from bench/gpu/pack.sh) and .gl (the Vulkan loader packages)
# carried. Prints the driver and Vulkan facts first, then the benchmark
# table, and copies both to $OUT/devices.txt when OUT is set.
set -uo pipefail
log="${OUT:-/tmp}/devices.txt"
if [ -d .gl ] && [ "${SKIP_GL:-0}" != 1 ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
work=/tmp/peftc-gpu
rm -rf "$work" && mkdir -p "$work"
xz -dc .gpu/node.xz > "$work/node" && chmod +x "$work/node"
tar -xJf .gpu/peftc.tar.xz -C "$work"
cp -r .gpu/build "$work/build"
{
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  echo "== vulkan loader"; ldconfig -p | grep -i libvulkan
  echo "== vulkan driver file: ${VK_DRIVER_FILES:-none}"
  echo "== node $("$work/node" --version)"
  echo "== bench/devices.ts ${DEVICES:-cpu,webgpu,cuda}"
  timeout "${LIMIT:-420}" "$work/node" "$work/build/bench/devices.js" "${DEVICES:-cpu,webgpu,cuda}"
  echo "== exit $?"
} 2>&1 | tee "$log"
