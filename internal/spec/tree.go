package spec

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// go-toml stops decoding at the first error and does not say which entry
// of an array of tables a key belongs to. To report every problem of a
// file with its line and column, the document is first checked for TOML
// validity by go-toml, then rebuilt from go-toml's parser as a tree of
// values that remember where they were written, and decoded from that tree
// by keel's own schema walk (decode.go).

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
	kind   nodeKind
	at     pos // the value (or the table header)
	keyAt  pos // the key that names it
	str    string
	num    int64
	numErr error // an integer that does not fit in 64 bits
	flag   bool
	table  *table
	items  []*node
	// arrayOfTables marks arrays made by [[headers]].
	arrayOfTables bool
}

// table keeps its keys in document order.
type table struct {
	keys []string
	vals map[string]*node
}

func newTable(at pos) *node {
	return &node{kind: kindTable, at: at, keyAt: at, table: &table{vals: map[string]*node{}}}
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
	var generic map[string]any
	if err := toml.Unmarshal(data, &generic); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &Error{File: file, Line: line, Col: col, Path: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	b := &treeBuilder{lines: newLineIndex(data)}
	root := newTable(pos{1, 1})
	cur := root
	b.p.Reset(data)
	for b.p.NextExpression() {
		e := b.p.Expression()
		var err error
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur, err = b.header(root, e)
		case unstable.KeyValue:
			err = b.keyValue(cur.table, e)
		}
		if err != nil {
			return nil, &Error{File: file, Msg: err.Error()}
		}
	}
	if err := b.p.Error(); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return root, nil
}

type treeBuilder struct {
	p     unstable.Parser
	lines lineIndex
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

// descend returns the table a dotted key names below t, creating tables
// on the way; an array of tables stands for its last entry.
func descend(t *node, k keyPart) (*node, error) {
	n := t.table.get(k.name)
	if n == nil {
		n = newTable(k.at)
		t.table.set(k.name, n)
	}
	if n.kind == kindArray && len(n.items) > 0 && n.items[len(n.items)-1].kind == kindTable {
		n = n.items[len(n.items)-1]
	}
	if n.kind != kindTable {
		return nil, fmt.Errorf("key %q is not a table", k.name)
	}
	return n, nil
}

func (b *treeBuilder) header(root *node, e *unstable.Node) (*node, error) {
	parts := b.keyParts(e.Key())
	if len(parts) == 0 {
		return nil, errors.New("empty table header")
	}
	t := root
	for _, k := range parts[:len(parts)-1] {
		var err error
		if t, err = descend(t, k); err != nil {
			return nil, err
		}
	}
	last := parts[len(parts)-1]
	if e.Kind == unstable.Table {
		n, err := descend(t, last)
		if err != nil {
			return nil, err
		}
		n.at, n.keyAt = last.at, last.at
		return n, nil
	}
	arr := t.table.get(last.name)
	if arr == nil {
		arr = &node{kind: kindArray, at: last.at, keyAt: last.at, arrayOfTables: true}
		t.table.set(last.name, arr)
	}
	if arr.kind != kindArray {
		return nil, fmt.Errorf("key %q is not an array of tables", last.name)
	}
	entry := newTable(last.at)
	arr.items = append(arr.items, entry)
	return entry, nil
}

func (b *treeBuilder) keyValue(t *table, e *unstable.Node) error {
	parts := b.keyParts(e.Key())
	if len(parts) == 0 {
		return errors.New("empty key")
	}
	holder := &node{kind: kindTable, table: t}
	for _, k := range parts[:len(parts)-1] {
		var err error
		if holder, err = descend(holder, k); err != nil {
			return err
		}
	}
	last := parts[len(parts)-1]
	v, err := b.value(e.Value(), last.at)
	if err != nil {
		return err
	}
	v.keyAt = last.at
	holder.table.set(last.name, v)
	return nil
}

func (b *treeBuilder) value(v *unstable.Node, keyAt pos) (*node, error) {
	n := &node{keyAt: keyAt, at: keyAt}
	if v.Kind != unstable.Array {
		n.at = b.at(v)
	}
	switch v.Kind {
	case unstable.String:
		n.kind, n.str = kindString, string(v.Data)
	case unstable.Integer:
		n.kind = kindInteger
		n.num, n.numErr = strconv.ParseInt(strings.ReplaceAll(string(v.Data), "_", ""), 0, 64)
	case unstable.Float:
		n.kind = kindFloat
	case unstable.Bool:
		n.kind, n.flag = kindBool, string(v.Data) == "true"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		n.kind = kindDateTime
	case unstable.Array:
		n.kind = kindArray
		first := true
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			item, err := b.value(c, keyAt)
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
			if err := b.keyValue(n.table, c); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("unexpected TOML value of kind %s", v.Kind)
	}
	return n, nil
}
