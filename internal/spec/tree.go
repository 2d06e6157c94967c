package spec

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// go-toml stops decoding at the first error and does not say which entry
// of an array of tables a key belongs to. To report every problem of a
// file with its line and column, the document is parsed by go-toml's parser
// into a tree of values that remember where they were written, and decoded
// from that tree by keel's own schema walk (decode.go).
//
// TOML's rule that a key is defined once is enforced here, on the tree's
// maps, rather than by go-toml's decoder: its tracker searches every key
// seen so far for each key, which made a file of many keys quadratic (128k
// keys took 22 s). The rules and their messages are go-toml's; a fuzz test
// checks that both accept the same documents.

// maxDepth bounds how deep tables and arrays nest. No key of a spec is
// deeper than a few levels; the bound keeps the schema walk, which
// spells every value's path, linear in the size of the file.
const maxDepth = 64

// pos is a 1-based line and column.
type pos struct{ line, col int }

type nodeKind int

const (
	kindTable nodeKind = iota
	kindArray
	kindString
	kindInteger
	kindFloat
	kindBool
	kindDateTime
)

func (k nodeKind) String() string {
	return [...]string{"table", "array", "string", "integer", "float", "boolean", "date-time"}[k]
}

// node is one TOML value and where it was written.
type node struct {
	kind  nodeKind
	at    pos // the value (or the table header)
	keyAt pos // the key that names it
	str   string
	num   int64
	// numErr is an integer beyond 64 bits: a label's JSON may hold one;
	// the TOML parser refuses it.
	numErr error
	flag   bool
	table  *table
	items  []*node
	// arrayOfTables marks arrays made by [[headers]].
	arrayOfTables bool
	def           definedBy
	depth         int // of nesting: the root is 0
}

// definedBy is how a key came to be, which decides what may define it
// again or add to it.
type definedBy uint8

const (
	byValue       definedBy = iota // key = value: closed, inline tables included
	byHeader                       // [table]: closed to another [table]
	byPath                         // a table on the way to a [a.b] header: may get its own header
	byDottedKey                    // a table on the way to a.b = value: may get more dotted keys
	byArrayHeader                  // [[table]]: each header adds an entry
)

// String names the kind of definition as go-toml's messages do.
func (d definedBy) String() string {
	switch d {
	case byHeader, byPath:
		return "table"
	case byDottedKey:
		return "kv-table"
	case byArrayHeader:
		return "array-table"
	}
	return "value"
}

// table keeps its keys in document order.
type table struct {
	keys []string
	vals map[string]*node
}

func newTable(at pos, def definedBy, depth int) *node {
	return &node{kind: kindTable, at: at, keyAt: at, table: &table{vals: map[string]*node{}}, def: def, depth: depth}
}

func (t *table) get(k string) *node { return t.vals[k] }

func (t *table) set(k string, n *node) {
	if _, ok := t.vals[k]; !ok {
		t.keys = append(t.keys, k)
	}
	t.vals[k] = n
}

// lineIndex turns byte offsets into positions.
type lineIndex []int // offsets of line starts

func newLineIndex(data []byte) lineIndex {
	idx := lineIndex{0}
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

func (li lineIndex) pos(offset int) pos {
	line := sort.Search(len(li), func(i int) bool { return li[i] > offset }) - 1
	return pos{line: line + 1, col: offset - li[line] + 1}
}

// parseTree parses a TOML document. A document that is not valid TOML
// yields one *Error: nothing after a syntax error can be trusted.
func parseTree(file string, data []byte) (*node, *Error) {
	b := &treeBuilder{data: data, lines: newLineIndex(data)}
	root := newTable(pos{1, 1}, byHeader, 0)
	cur := root
	b.p.Reset(data)
	for b.p.NextExpression() {
		e := b.p.Expression()
		var err error
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur, err = b.header(root, e)
		case unstable.KeyValue:
			err = b.keyValue(cur, e)
		}
		var ve *valueError
		switch {
		case errors.As(err, &ve):
			out := b.keyError(file, e, err)
			at := b.lines.pos(ve.offset)
			out.Line, out.Col = at.line, at.col
			return nil, out
		case err != nil:
			return nil, b.keyError(file, e, err)
		}
	}
	if err := b.p.Error(); err != nil {
		var pe *unstable.ParserError
		if !errors.As(err, &pe) {
			return nil, &Error{File: file, Msg: err.Error()}
		}
		e := &Error{File: file, Path: strings.Join(pe.Key, "."), Msg: pe.Message}
		if off, ok := offsetIn(data, pe.Highlight); ok {
			at := b.lines.pos(off)
			e.Line, e.Col = at.line, at.col
		}
		return nil, e
	}
	return root, nil
}

// offsetIn finds where sub, a slice of data's array as go-toml's parser
// highlights errors, starts in data.
func offsetIn(data, sub []byte) (int, bool) {
	off := cap(data) - cap(sub)
	switch {
	case sub == nil || off < 0 || off+len(sub) > len(data):
		return 0, false
	case off < len(data) && len(sub) > 0 && &data[off] != &sub[0]:
		return 0, false
	}
	return off, true
}

// keyError places a problem of an expression at its key, as go-toml does.
func (b *treeBuilder) keyError(file string, e *unstable.Node, err error) *Error {
	parts := b.keyParts(e.Key())
	out := &Error{File: file, Msg: err.Error()}
	if len(parts) > 0 {
		names := make([]string, len(parts))
		for i, k := range parts {
			names[i] = k.name
		}
		out.Line, out.Col, out.Path = parts[0].at.line, parts[0].at.col, strings.Join(names, ".")
	}
	return out
}

type treeBuilder struct {
	p     unstable.Parser
	data  []byte
	lines lineIndex
}

// plainInt is a decimal integer that fits in 64 bits, as most are.
var plainInt = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]{0,17})$`)

// valueError is a value that is not valid TOML, placed at the value.
type valueError struct {
	offset int
	msg    string
}

func (e *valueError) Error() string { return e.msg }

// scalar converts a number or a date-time the way go-toml's decoder does:
// its parser lets through what only conversion checks (a value beyond 64
// bits, a radix prefix without digits, the 13th month).
func (b *treeBuilder) scalar(v *unstable.Node) (any, error) {
	const key = "v="
	var m map[string]any
	err := toml.Unmarshal(append([]byte(key), v.Data...), &m)
	if err == nil {
		return m["v"], nil
	}
	start, ok := offsetIn(b.data, v.Data)
	if !ok {
		start = int(v.Raw.Offset)
	}
	e := &valueError{offset: start, msg: strings.TrimPrefix(err.Error(), "toml: ")}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		_, col := de.Position()
		e.offset += max(0, col-1-len(key))
	}
	return nil, e
}

func (b *treeBuilder) at(n *unstable.Node) pos {
	return b.lines.pos(int(n.Raw.Offset))
}

type keyPart struct {
	name string
	at   pos
}

func (b *treeBuilder) keyParts(it unstable.Iterator) []keyPart {
	var parts []keyPart
	for it.Next() {
		n := it.Node()
		parts = append(parts, keyPart{name: string(n.Data), at: b.at(n)})
	}
	return parts
}

// child returns t's table named k, creating it (as def) when t has none;
// an array of tables stands for its last entry. A key already defined in
// a way that open does not allow to add to is an error.
func child(t *node, k keyPart, def definedBy, open ...definedBy) (*node, error) {
	n := t.table.get(k.name)
	if n == nil {
		if t.depth >= maxDepth {
			return nil, errTooDeep
		}
		n = newTable(k.at, def, t.depth+1)
		t.table.set(k.name, n)
		return n, nil
	}
	if !slices.Contains(open, n.def) {
		if def == byDottedKey {
			return nil, fmt.Errorf("key %s is already defined", k.name)
		}
		return nil, fmt.Errorf("key %s already exists as a value", k.name)
	}
	if n.def == byArrayHeader {
		n = n.items[len(n.items)-1]
	}
	return n, nil
}

var errTooDeep = fmt.Errorf("tables and arrays nested more than %d levels deep", maxDepth)

func (b *treeBuilder) header(root *node, e *unstable.Node) (*node, error) {
	parts := b.keyParts(e.Key())
	if len(parts) == 0 {
		return nil, errors.New("empty table header")
	}
	t := root
	for _, k := range parts[:len(parts)-1] {
		var err error
		if t, err = child(t, k, byPath, byHeader, byPath, byDottedKey, byArrayHeader); err != nil {
			return nil, err
		}
	}
	last := parts[len(parts)-1]
	n := t.table.get(last.name)
	if e.Kind == unstable.Table {
		switch {
		case n == nil:
			return child(t, last, byHeader)
		case n.def == byPath:
			n.def, n.at, n.keyAt = byHeader, last.at, last.at
			return n, nil
		case n.def == byHeader:
			return nil, fmt.Errorf("table %s already exists", last.name)
		case n.def == byDottedKey:
			return nil, fmt.Errorf("table %s already exists as defined by a dotted key", last.name)
		case n.def == byArrayHeader:
			return nil, fmt.Errorf("table %s already exists as an array of tables", last.name)
		}
		return nil, fmt.Errorf("key %s should be a table, not a %s", last.name, n.def)
	}
	switch {
	case n == nil:
		if t.depth+1 >= maxDepth {
			return nil, errTooDeep
		}
		n = &node{kind: kindArray, at: last.at, keyAt: last.at, arrayOfTables: true, def: byArrayHeader, depth: t.depth + 1}
		t.table.set(last.name, n)
	case n.def != byArrayHeader:
		return nil, fmt.Errorf("key %s already exists as a %s, but should be an array table", last.name, n.def)
	}
	entry := newTable(last.at, byHeader, n.depth+1)
	n.items = append(n.items, entry)
	return entry, nil
}

// keyValue adds a key = value expression to t, a table or an inline table.
func (b *treeBuilder) keyValue(t *node, e *unstable.Node) error {
	parts := b.keyParts(e.Key())
	if len(parts) == 0 {
		return errors.New("empty key")
	}
	for _, k := range parts[:len(parts)-1] {
		var err error
		if t, err = child(t, k, byDottedKey, byDottedKey); err != nil {
			return err
		}
	}
	last := parts[len(parts)-1]
	if t.table.get(last.name) != nil {
		return fmt.Errorf("key %s is already defined", last.name)
	}
	v, err := b.value(e.Value(), last.at, t.depth+1)
	if err != nil {
		return err
	}
	v.keyAt = last.at
	t.table.set(last.name, v)
	return nil
}

func (b *treeBuilder) value(v *unstable.Node, keyAt pos, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	n := &node{keyAt: keyAt, at: keyAt, def: byValue, depth: depth}
	if v.Kind != unstable.Array {
		n.at = b.at(v)
	}
	switch v.Kind {
	case unstable.String:
		n.kind, n.str = kindString, string(v.Data)
	case unstable.Integer:
		n.kind = kindInteger
		if plainInt.Match(v.Data) {
			n.num, _ = strconv.ParseInt(string(v.Data), 10, 64)
			break
		}
		x, err := b.scalar(v)
		if err != nil {
			return nil, err
		}
		n.num = x.(int64)
	case unstable.Float:
		n.kind = kindFloat
		if _, err := b.scalar(v); err != nil {
			return nil, err
		}
	case unstable.Bool:
		n.kind, n.flag = kindBool, string(v.Data) == "true"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		n.kind = kindDateTime
		if _, err := b.scalar(v); err != nil {
			return nil, err
		}
	case unstable.Array:
		n.kind = kindArray
		first := true
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			item, err := b.value(c, keyAt, depth+1)
			if err != nil {
				return nil, err
			}
			if first {
				n.at, first = item.at, false
			}
			n.items = append(n.items, item)
		}
	case unstable.InlineTable:
		n.kind, n.table = kindTable, &table{vals: map[string]*node{}}
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind != unstable.KeyValue {
				continue
			}
			if err := b.keyValue(n, c); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unexpected TOML value of kind %s", v.Kind)
	}
	return n, nil
}
