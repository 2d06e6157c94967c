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
#   FUZZ_MATCH=regex  only the targets whose name matches (default all)
#   GO=go             the go command
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZ_MATCH=${FUZZ_MATCH:-.}

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
		if out=$("$GO" test "./$dir" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" 2>&1); then
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
