#!/usr/bin/env bash
# Packs what bench/devices.ts needs on a machine without Node.js into .gpu/
# (ignored by git): the node binary, the compiled benchmark with the
# compiler and runtime, and the production node_modules with onnxruntime-node's
# Linux x64 binaries only. The device tool carries .gpu and .gl to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu
npx tsc -p bench/gpu/tsconfig.json
xz -6 -T0 -c "$(command -v node)" > .gpu/node.xz
modules=$(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/' | sort -u)
tar -cJf .gpu/peftc.tar.xz package.json --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' \
  --no-recursion $(find $modules -maxdepth 0) --recursion $modules
du -sh .gpu/*
