package spec

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// keyPath names a value twice: key is unique (entries by index) and finds its
// position; disp is what the user reads (entries by name).
type keyPath struct{ key, disp string }

func (p keyPath) field(name string) keyPath {
	if p.key == "" {
		return keyPath{key: name, disp: name}
	}
	return keyPath{key: p.key + "." + name, disp: p.disp + "." + name}
}

// elem is an element of a list of values: it has its own position but is
// shown as the list's key.
func (p keyPath) elem(i int) keyPath {
	return keyPath{key: p.key + "#" + strconv.Itoa(i), disp: p.disp}
}

// entry is a table in an array of tables, shown by its name when it has one.
func (p keyPath) entry(i int, name string) keyPath {
	if name == "" {
		name = strconv.Itoa(i)
	}
	return keyPath{key: p.key + "#" + strconv.Itoa(i), disp: p.disp + "[" + name + "]"}
}

// located records where each value of a file was written.
type located struct {
	file string
	at   map[string]pos // by path.key: the value
	errs Errors
	// reported holds the values already found wrong: one error per value
	// is enough (a name of the wrong type is not also a malformed name).
	reported map[string]bool
	// rootKeys are the document's top-level keys, to explain one written
	// under a table by mistake.
	rootKeys []string
	// structs caches the keys of each struct type decoded: a file may
	// hold many entries of one type.
	structs map[reflect.Type]structKeys
}

// structKeys are the TOML keys of a struct.
type structKeys struct {
	fields []field
	names  []string
}

func newLocated(file string) *located {
	return &located{file: file, at: map[string]pos{}, reported: map[string]bool{}, structs: map[reflect.Type]structKeys{}}
}

func (l *located) keysOf(t reflect.Type) structKeys {
	k, ok := l.structs[t]
	if !ok {
		k.fields = fieldsOf(t)
		k.names = fieldNames(k.fields)
		l.structs[t] = k
	}
	return k
}

func (l *located) has(p keyPath) bool { _, ok := l.at[p.key]; return ok }

// lookup finds the position of p, or of its nearest recorded parent.
func (l *located) lookup(p keyPath) pos {
	k := p.key
	for {
		if at, ok := l.at[k]; ok {
			return at
		}
		i := strings.LastIndexAny(k, ".#")
		if i < 0 {
			return pos{1, 1}
		}
		k = k[:i]
	}
}

func (l *located) add(at pos, p keyPath, hint, format string, args ...any) {
	if l.reported[p.key] {
		return
	}
	l.reported[p.key] = true
	l.errs = append(l.errs, &Error{File: l.file, Line: at.line, Col: at.col, Path: p.disp, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// errorf reports a bad value at the value's position.
func (l *located) errorf(p keyPath, format string, args ...any) {
	l.add(l.lookup(p), p, "", format, args...)
}

// hintf reports a bad value with a suggested replacement.
func (l *located) hintf(p keyPath, hint, format string, args ...any) {
	l.add(l.lookup(p), p, hint, format, args...)
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
)

// isText reports whether values of t are written as one string and decoded
// by their own UnmarshalText: an image reference, a size, a mode and the
// other typed values of values.go.
func isText(t reflect.Type) bool {
	return t.Kind() != reflect.Pointer && t.Implements(textMarshalerType) && reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// field is one TOML key of a struct.
type field struct {
	name      string
	index     []int
	omitempty bool
}

// fieldsOf lists a struct's keys, flattening untagged embedded structs
// (Container embeds Config) as go-toml does.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("toml")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
			for _, f := range fieldsOf(sf.Type) {
				f.index = append([]int{i}, f.index...)
				fs = append(fs, f)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		fs = append(fs, field{name: name, index: []int{i}, omitempty: strings.Contains(opts, "omitempty")})
	}
	return fs
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

// decode fills v from n, recording positions and reporting every mismatch.
// It returns false when n could not be stored in v.
func (l *located) decode(n *node, v reflect.Value, p keyPath) bool {
	if p.key == "" && v.Kind() == reflect.Struct {
		l.rootKeys = l.keysOf(v.Type()).names
	}
	l.at[p.key] = n.at
	t := v.Type()
	if isText(t) {
		return l.decodeText(n, v, p)
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		ok := l.decode(n, e.Elem(), p)
		// A partly decoded table is kept so its other values are checked.
		if ok || isRecord(t.Elem()) {
			v.Set(e)
		}
		return ok
	case reflect.String:
		if n.kind != kindString {
			return l.wrongType(n, p, "string")
		}
		v.SetString(n.str)
	case reflect.Bool:
		if n.kind != kindBool {
			return l.wrongType(n, p, "boolean")
		}
		v.SetBool(n.flag)
	case reflect.Int, reflect.Int64:
		if n.kind != kindInteger {
			return l.wrongType(n, p, "integer")
		}
		if n.numErr != nil || v.OverflowInt(n.num) {
			l.errorf(p, "integer out of range")
			return false
		}
		v.SetInt(n.num)
	case reflect.Uint32:
		if n.kind != kindInteger {
			return l.wrongType(n, p, "integer")
		}
		if n.numErr != nil || n.num < 0 || n.num > math.MaxUint32 {
			l.errorf(p, "integer out of range (0 to %d)", uint32(math.MaxUint32))
			return false
		}
		v.SetUint(uint64(n.num))
	case reflect.Slice:
		if n.kind != kindArray {
			return l.wrongType(n, p, "array")
		}
		s := reflect.MakeSlice(t, 0, len(n.items))
		ok := true
		for i, item := range n.items {
			ep := p.elem(i)
			if isRecord(t.Elem()) {
				ep = p.entry(i, entryName(item))
			}
			// A partly decoded entry is kept so that its other values
			// are still checked and reported in the same run.
			e := reflect.New(t.Elem()).Elem()
			if l.decode(item, e, ep) || isRecord(t.Elem()) {
				s = reflect.Append(s, e)
			} else {
				ok = false
			}
		}
		v.Set(s)
		return ok
	case reflect.Map:
		if n.kind != kindTable {
			return l.wrongType(n, p, "table")
		}
		m := reflect.MakeMapWithSize(t, len(n.table.keys))
		ok := l.decodeStringMap(n, m, p, "")
		v.Set(m)
		return ok
	case reflect.Struct:
		if n.kind != kindTable {
			return l.wrongType(n, p, "table")
		}
		return l.decodeStruct(n, v, p)
	default:
		panic(fmt.Sprintf("spec: no decoder for %s", t))
	}
	return true
}

// isRecord reports whether t is a struct of keys (a table), not a value
// written as a string.
func isRecord(t reflect.Type) bool { return t.Kind() == reflect.Struct && !isText(t) }

// decodeText fills a value written as a string that has its own syntax,
// reporting a bad one as the value's own error.
func (l *located) decodeText(n *node, v reflect.Value, p keyPath) bool {
	if n.kind != kindString {
		return l.wrongType(n, p, "string")
	}
	err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.str))
	var he *hintError
	switch {
	case err == nil:
		return true
	case errors.As(err, &he):
		l.hintf(p, he.hint, "%s", he.msg)
	default:
		l.errorf(p, "%v", err)
	}
	return false
}

// decodeStringMap fills a map[string]string (sysctl). Nested tables, as
// unquoted dotted keys make them, are flattened back to dotted names, and
// integers and booleans are accepted as their decimal or true/false text.
func (l *located) decodeStringMap(n *node, m reflect.Value, p keyPath, prefix string) bool {
	ok := true
	for _, k := range n.table.keys {
		c := n.table.get(k)
		name := prefix + k
		cp := keyPath{key: p.key + "." + name, disp: p.disp + "." + name}
		l.at[cp.key] = c.at
		switch c.kind {
		case kindTable:
			ok = l.decodeStringMap(c, m, p, name+".") && ok
		case kindString:
			m.SetMapIndex(reflect.ValueOf(name), reflect.ValueOf(c.str))
		case kindInteger:
			if c.numErr != nil {
				l.errorf(cp, "integer out of range")
				ok = false
				continue
			}
			m.SetMapIndex(reflect.ValueOf(name), reflect.ValueOf(strconv.FormatInt(c.num, 10)))
		case kindBool:
			m.SetMapIndex(reflect.ValueOf(name), reflect.ValueOf(strconv.FormatBool(c.flag)))
		default:
			ok = l.wrongType(c, cp, "string") && ok
		}
	}
	return ok
}

func (l *located) decodeStruct(n *node, v reflect.Value, p keyPath) bool {
	keys := l.keysOf(v.Type())
	fs := keys.fields
	ok := true
	for _, k := range n.table.keys {
		c := n.table.get(k)
		i := -1
		for j := range fs {
			if fs[j].name == k {
				i = j
				break
			}
		}
		kp := p.field(k)
		if i < 0 {
			if p.key != "" && slices.Contains(l.rootKeys, k) {
				l.add(c.keyAt, kp, "", "unknown key (top-level keys go before the first [table])")
				ok = false
				continue
			}
			l.add(c.keyAt, kp, suggest(k, keys.names), "unknown key")
			ok = false
			continue
		}
		ok = l.decode(c, v.FieldByIndex(fs[i].index), kp) && ok
	}
	return ok
}

func (l *located) wrongType(n *node, p keyPath, want string) bool {
	l.errorf(p, "expected %s, got %s", want, describe(n))
	return false
}

func describe(n *node) string {
	if n.kind == kindArray && n.arrayOfTables {
		return "array of tables"
	}
	return n.kind.String()
}

// entryName is the value that identifies a table in an array of tables
// (its name, path or destination), used to show which entry an error
// belongs to. Validation names entries by the same keys.
func entryName(n *node) string {
	if n.kind != kindTable {
		return ""
	}
	for _, k := range []string{"name", "path", "dest", "destination"} {
		if c := n.table.get(k); c != nil && c.kind == kindString && c.str != "" {
			return c.str
		}
	}
	return ""
}
