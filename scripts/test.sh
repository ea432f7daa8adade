#!/usr/bin/env bash
# The project's test command (README.md): vet (also for macOS and Windows,
# where the library must build), the race-enabled tests in random order, and
# a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-10s}"

echo "== go vet"
go vet ./...
GOOS=darwin go vet ./gpulock/... ./cmd/...
GOOS=windows go vet ./gpulock/...

echo "== go test -race"
go test -race -shuffle=on -count=1 ./...

echo "== fuzz ($FUZZTIME each)"
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "-- $pkg $target"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo "== all tests passed"
