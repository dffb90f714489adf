#!/usr/bin/env bash
# Ensures the FerretDB binary the tests run exists and prints its path (the only line on stdout).
#
#   test/harness/build-ferretdb.sh [output-path]
#
# Output path: $1, else $FERRETDB_BIN, else <repo>/node_modules/.cache/ferretdb/ferretdb-v1.24.2.
# Idempotent: an existing executable is reused as is. Needs Go (and network for the module download).
#
# Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: the module ships an empty
# build/version/version.txt and the resulting binary panics at start. So we copy the module source to a
# writable directory, write the version file and build there.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-${FERRETDB_BIN:-$repo_root/node_modules/.cache/ferretdb/ferretdb-$FERRETDB_VERSION}}

if [[ -x $out ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build-ferretdb: Go is needed to build FerretDB ($out is missing)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-build.XXXXXX")
trap 'rm -rf "$work" "$out.partial.$$"' EXIT

echo "build-ferretdb: building FerretDB $FERRETDB_VERSION into $out (about a minute)..." >&2
started=$(date +%s)
# `go mod download -json` prints the module's directory in the read-only module cache.
dir=$(cd "$work" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
  | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).Dir')
[[ -d $dir ]] || { echo "build-ferretdb: go mod download gave no directory ($dir)" >&2; exit 1; }

cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"
echo "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
# Build beside the target and rename, so a killed build never leaves a half-written binary behind.
(cd "$work/src" && go build -buildvcs=false -o "$out.partial.$$" ./cmd/ferretdb) >&2
mv -f "$out.partial.$$" "$out"
echo "build-ferretdb: built in $(( $(date +%s) - started )) s" >&2
echo "$out"
