#!/usr/bin/env bash
# Compiles the typescript-fetch client generated into target/clients/typescript-fetch together with smoke.ts
# (strict tsc, the pinned typescript of package.json) and runs the smoke test with node. Called by
# tests/it/clients.rs with WAIAAS_URL, WAIAAS_MASTER_PASSWORD and ANVIL_URL set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build="$root/target/clients/ts-build"
rm -rf "$build"
mkdir -p "$build"
cp "$here/smoke.ts" "$here/tsconfig.json" "$build/"
cp -r "$root/target/clients/typescript-fetch" "$build/generated"
node "$here/node_modules/typescript/bin/tsc" -p "$build" --outDir "$build/out"
node "$build/out/smoke.js"
