package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a spec or package file, located where the user
// can fix it.
type Error struct {
	File string // path of the file as given to Load or LoadPackage
	Line int    // 1-based; 0 when the problem has no single place (a missing kernel)
	Col  int    // 1-based
	Path string // key path, entries named: service[sshd].capabilities
	Msg  string
	Hint string // a suggestion, without the "did you mean"
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		fmt.Fprintf(&b, "; did you mean %q?", e.Hint)
	}
	return b.String()
}

// Errors are every problem found in one run, in file and position order.
type Errors []*Error

// MaxShownErrors bounds the lines Errors.Error writes: past the first
// screenful, more lines do not help fix a file.
const MaxShownErrors = 100

// Error has one line per problem, the first MaxShownErrors of them and a
// count of the others.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es[:min(len(es), MaxShownErrors)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	if n := len(es) - MaxShownErrors; n > 0 {
		fmt.Fprintf(&b, "\nand %d more errors", n)
	}
	return b.String()
}

// sortErrors orders errors by the order the files were given, then by
// position, so that output is the same on every run.
func sortErrors(es Errors, files []string) {
	rank := func(f string) int {
		if i := slices.Index(files, f); i >= 0 {
			return i
		}
		return len(files)
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(rank(a.File), rank(b.File)),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
		)
	})
}

// suggest returns the candidate closest to s, if it is close enough to be
// a likely typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	limit := max(2, len(s)/3)
	ls := strings.ToLower(s)
	for _, c := range candidates {
		// The distance is at least the difference in length: skipping
		// the candidates too far off keeps a long value cheap to check.
		lc := strings.ToLower(c)
		if abs(len(ls)-len(lc)) > limit {
			continue
		}
		d := editDistance(ls, lc)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > limit || bestD == len(s) {
		return ""
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
