#!/usr/bin/env bash
# Ensures the FerretDB binary the tests run exists and prints its path (the only line on stdout).
#
#   test/harness/build-ferretdb.sh [output-path]
#
# Output path: $1, else $FERRETDB_BIN, else <repo>/node_modules/.cache/ferretdb/ferretdb-v1.24.2.
# Idempotent: an existing executable is reused as is. Needs network access to the Go module proxy.
#
# Go: FerretDB 1.24.2 needs Go 1.24. Any Go on PATH will do: Go 1.21 or newer fetches the Go its
# go.mod asks for by itself (GOTOOLCHAIN=auto); an older one (Debian 12's golang-go is Go 1.19)
# downloads that Go as the module golang.org/toolchain through the module proxy, checksums verified,
# and builds with it. Without any Go, running as root on Debian, golang-go is installed first
# (what .ci/run does too); otherwise the script says what to install.
#
# Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: the module ships an empty
# build/version/version.txt and the resulting binary panics at start. So we copy the module source to a
# writable directory, write the version file and build there.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
GO_TOOLCHAIN=go1.24.3 # the toolchain line of FerretDB v1.24.2's go.mod
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-${FERRETDB_BIN:-$repo_root/node_modules/.cache/ferretdb/ferretdb-$FERRETDB_VERSION}}

if [[ -x $out ]]; then
  echo "$out"
  exit 0
fi

say() { echo "build-ferretdb: $*" >&2; }

# Minor version of a Go binary (go1.19.8 → 19), 0 when it cannot tell.
go_minor() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null || true)
  [[ $v =~ ^go1\.([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

if ! command -v go >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "no Go on PATH: installing Debian's golang-go (only to fetch Go ${GO_TOOLCHAIN#go} through the module proxy)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends golang-go ca-certificates >&2
  else
    say "Go is needed to build FerretDB ($out is missing): install any Go (Debian: apt-get install golang-go),"
    say "or run as root on Debian (it is installed for you), or point FERRETDB_BIN at a FerretDB $FERRETDB_VERSION binary"
    exit 1
  fi
fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-build.XXXXXX")
# Module cache files are read-only: make them writable so the folder can be removed.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$out.partial.$$"' EXIT
# A private module cache: the sources and any Go toolchain fetched go away with the build folder.
export GOMODCACHE=$work/mod

go=$(command -v go)
if (( $(go_minor "$go") >= 21 )); then
  export GOTOOLCHAIN=auto # switches to $GO_TOOLCHAIN (downloaded through the proxy) when older
else
  arch=$(uname -m)
  case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
  say "$("$go" version) is too old for FerretDB: fetching $GO_TOOLCHAIN through the Go module proxy"
  dir=$(cd "$work" && "$go" mod download -json "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-$arch" |
    node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).Dir')
  cp -R "$dir" "$work/go"
  chmod -R u+w "$work/go"
  # The module keeps no file modes: the toolchain's programs become executable again (as Go itself does).
  chmod +x "$work/go/bin/"* "$work/go/pkg/tool/"*/*
  go=$work/go/bin/go
  export GOTOOLCHAIN=local
fi

say "building FerretDB $FERRETDB_VERSION into $out (about a minute)..."
started=$(date +%s)
# `go mod download -json` prints the module's directory in the (read-only) module cache.
dir=$(cd "$work" && "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
  node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).Dir')
[[ -d $dir ]] || { say "go mod download gave no directory ($dir)"; exit 1; }

cp -R "$dir" "$work/src"
chmod -R u+w "$work/src"
echo "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
# Build beside the target and rename, so a killed build never leaves a half-written binary behind.
(cd "$work/src" && "$go" build -buildvcs=false -o "$out.partial.$$" ./cmd/ferretdb) >&2
mv -f "$out.partial.$$" "$out"
say "built with $("$go" version | cut -d' ' -f3) in $(($(date +%s) - started)) s"
echo "$out"
