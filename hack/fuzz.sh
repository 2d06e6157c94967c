#!/bin/sh
# Runs every fuzz target of the module briefly: `make test` calls it after
# the tests (which already replay each target's seeds and its
# testdata/fuzz corpus). Targets are found, not listed: every
# `func FuzzX(f *testing.F)` in a _test.go file. A failure leaves the
# input that broke the target in that package's testdata/fuzz/FuzzX/;
# commit it with the fix, as a seed.
#
#   FUZZTIME=d        time per target (default: FUZZ_TOTAL shared out)
#   FUZZ_TOTAL=s      seconds of fuzzing in all when FUZZTIME is unset
#                     (default 75: with each target's start, about two
#                     minutes on 2 cores once the instrumented build is
#                     cached; never less than 2s a target)
#   FUZZ_RETRY=d      time for a second run of a target whose seed corpus
#                     did not finish within FUZZTIME (default 30s)
#   FUZZ_MATCH=regex  only the targets whose name matches (default all)
#   GO=go             the go command
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_RETRY=${FUZZ_RETRY:-30s}

# "dir name" per target, in a stable order.
targets=$(grep -rE --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git \
	'^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sed -E 's|^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
	grep -E " .*${FUZZ_MATCH}" | sort)
[ -n "$targets" ] || { echo "fuzz: no targets match $FUZZ_MATCH" >&2; exit 1; }
if [ -z "${FUZZTIME:-}" ]; then
	per=$((${FUZZ_TOTAL:-75} / $(echo "$targets" | wc -l)))
	FUZZTIME=$((per > 2 ? per : 2))s
fi

failed=
n=0
echo "$targets" | {
	while read -r dir name; do
		n=$((n + 1))
		start=$(date +%s)
		out=$("$GO" test "./$dir" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" 2>&1) && ok=1 || ok=
		# go test reports "context deadline exceeded" when FUZZTIME ends
		# before the fuzzer has run its seed corpus once (a loaded machine):
		# no input failed, so give that target the longer budget once.
		if [ -z "$ok" ] && echo "$out" | grep -q 'context deadline exceeded' &&
			! echo "$out" | grep -q 'Failing input written'; then
			echo "fuzz: ./$dir $name did not finish its seed corpus in $FUZZTIME; again for $FUZZ_RETRY"
			out=$("$GO" test "./$dir" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZ_RETRY" 2>&1) && ok=1 || ok=
		fi
		if [ -n "$ok" ]; then
			echo "fuzz: ok   ./$dir $name ($(($(date +%s) - start))s)"
		else
			echo "fuzz: FAIL ./$dir $name"
			echo "$out" | grep -v '^fuzz: elapsed' | sed 's/^/    /'
			failed="$failed ./$dir:$name"
		fi
	done
	if [ -n "$failed" ]; then
		echo "fuzz: failed:$failed" >&2
		exit 1
	fi
	echo "fuzz: $n targets, $FUZZTIME each"
}
