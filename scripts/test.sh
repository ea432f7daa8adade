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

# fuzz runs one target. Go's fuzzer itself sometimes ends a run with a bare
# "context deadline exceeded" when -fuzztime runs out while a worker still
# minimises a new input (seen here with unchanged targets): no failing input
# is written, and nothing was found. Only that case is run once more; any
# real finding ("Failing input written to ...") fails at once.
fuzz() {
	local pkg=$1 target=$2 out
	for try in 1 2; do
		if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
			echo "$out"
			return 0
		fi
		echo "$out"
		if [[ $try == 2 || $out == *"Failing input written"* || $out != *"context deadline exceeded"* ]]; then
			return 1
		fi
		echo "-- $pkg $target: the fuzzer's own deadline error, no input found; once more"
	done
}

echo "== fuzz ($FUZZTIME each)"
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "-- $pkg $target"
		fuzz "$pkg" "$target"
	done
done
echo "== all tests passed"
