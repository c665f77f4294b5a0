#!/bin/sh
# make test: every stage runs even when an earlier one fails, and the last
# line sums them all up: "N passed, N failed" (", N skipped" when any was).
#   unit:         Criterion's "Synthesis: ... Passing: P | Failing: F | Crashing: C"
#   integration:  run.py's own "N passed, N failed[, N skipped]" (also the
#                 Debian package's test, make test-deb)
#   fuzz:         one per target, passed when it ran its time with no finding
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
trap 'exit 1' INT TERM HUP # so that the EXIT trap runs
passed=0 failed=0 skipped=0

# stage NAME KIND COMMAND...: runs COMMAND with its output shown and kept,
# then adds what it reports to the totals.
stage() {
    name=$1 kind=$2
    shift 2
    echo "== $name"
    "$@" >"$logs/$name" 2>&1
    rc=$?
    cat "$logs/$name"
    case $kind in
    unit)
        set -- $(sed -n 's/.*Synthesis: Tested: [0-9]* | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3/p' \
            "$logs/$name" | awk '{p += $1; f += $2 + $3} END {print p + 0, f + 0}')
        p=$1 f=$2 s=0 ;;
    integration)
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logs/$name" | tail -n 1)
        p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
        f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
        p=${p:-0} f=${f:-0} s=${s:-0} ;;
    fuzz)
        p=$(grep -c '^fuzz: .* passed$' "$logs/$name") f=0 s=0 ;;
    esac
    # A stage that failed without saying what (a build error) counts once.
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$name: exited with status $rc"
        f=1
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

stage release-unit unit $MAKE --no-print-directory MODE=release unit
stage release-integration integration $MAKE --no-print-directory MODE=release integration
stage package integration $MAKE --no-print-directory MODE=release test-deb
stage asan-unit unit $MAKE --no-print-directory MODE=asan unit
stage asan-integration integration $MAKE --no-print-directory MODE=asan integration ARGS=--sanitizer
# TSan looks at what threads share (stats, access log, health checks,
# reloads, the workers' hand-overs), which is the same whichever io back end
# a worker runs: once, on the default one; release and ASan run both.
stage tsan-integration integration $MAKE --no-print-directory MODE=tsan integration \
    ARGS="--sanitizer --io uring"
if command -v clang >/dev/null; then
    stage fuzz fuzz $MAKE --no-print-directory fuzz
else
    echo "fuzz: clang is not installed"
    failed=$((failed + 1))
fi

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
