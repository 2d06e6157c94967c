package spec

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Marshal writes a spec as TOML: keys in the order of the types, map keys
// sorted, so the same spec always gives the same bytes. Unlike a plain
// go-toml encoding, a list or table that is set but empty is kept
// (`capabilities = []` overrides a package's default and must survive a
// round trip); unset (nil) values are left out. Dir fields are not
// written.
func Marshal(s *Spec) ([]byte, error) {
	return marshal(reflect.ValueOf(s).Elem())
}

// MarshalPackage writes a package description as TOML, as Marshal does.
func MarshalPackage(p *Package) ([]byte, error) {
	return marshal(reflect.ValueOf(p).Elem())
}

func marshal(v reflect.Value) (out []byte, err error) {
	var e encoder
	e.table(nil, v)
	return e.buf.Bytes(), nil
}

type encoder struct{ buf bytes.Buffer }

// isTable reports whether a value is written as a [table] or [[array]]
// rather than inline.
func isTable(v reflect.Value) bool {
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && v.Len() > 0 {
		t = t.Elem()
	}
	return isRecord(t)
}

// text is the string a value written as one (isText) encodes as.
func text(v reflect.Value) string {
	b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		panic(fmt.Sprintf("spec: encoding %s: %v", v.Type(), err)) // the values of values.go do not fail
	}
	return string(b)
}

func omit(f field, v reflect.Value) bool {
	if isText(v.Type()) {
		// An unset value is absent, not "": "" is not what it was read from.
		return text(v) == ""
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return v.IsNil()
	}
	return f.omitempty && v.IsZero()
}

func (e *encoder) table(prefix []string, v reflect.Value) {
	fs := fieldsOf(v.Type())
	for _, f := range fs {
		fv := v.FieldByIndex(f.index)
		if omit(f, fv) || isTable(fv) {
			continue
		}
		e.buf.WriteString(tomlKey(f.name))
		e.buf.WriteString(" = ")
		e.inline(fv)
		e.buf.WriteByte('\n')
	}
	for _, f := range fs {
		fv := v.FieldByIndex(f.index)
		if omit(f, fv) || !isTable(fv) {
			continue
		}
		p := append(slices.Clone(prefix), f.name)
		header := joinKeys(p)
		switch fv.Kind() {
		case reflect.Slice:
			for i := range fv.Len() {
				fmt.Fprintf(&e.buf, "\n[[%s]]\n", header)
				e.table(p, fv.Index(i))
			}
		case reflect.Pointer:
			fmt.Fprintf(&e.buf, "\n[%s]\n", header)
			e.table(p, fv.Elem())
		default:
			fmt.Fprintf(&e.buf, "\n[%s]\n", header)
			e.table(p, fv)
		}
	}
}

func (e *encoder) inline(v reflect.Value) {
	if isText(v.Type()) {
		e.buf.WriteString(quote(text(v)))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		e.inline(v.Elem())
	case reflect.String:
		e.buf.WriteString(quote(v.String()))
	case reflect.Bool:
		e.buf.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		e.buf.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint32:
		e.buf.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Slice:
		e.buf.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				e.buf.WriteString(", ")
			}
			e.inline(v.Index(i))
		}
		e.buf.WriteByte(']')
	case reflect.Map:
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		e.buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.buf.WriteString(" " + quote(k) + " = ")
			e.inline(v.MapIndex(reflect.ValueOf(k)))
		}
		if len(keys) > 0 {
			e.buf.WriteByte(' ')
		}
		e.buf.WriteByte('}')
	case reflect.Struct:
		// Only reached for an element of an empty-but-set list of tables,
		// which has no elements; an inline table is written for safety.
		e.buf.WriteByte('{')
		for i, f := range fieldsOf(v.Type()) {
			if i > 0 {
				e.buf.WriteByte(',')
			}
			e.buf.WriteString(" " + tomlKey(f.name) + " = ")
			e.inline(v.FieldByIndex(f.index))
		}
		e.buf.WriteString(" }")
	default:
		panic(fmt.Sprintf("spec: cannot encode %s", v.Type()))
	}
}

var bareKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKeyRE.MatchString(k) {
		return k
	}
	return quote(k)
}

func joinKeys(ks []string) string {
	q := make([]string, len(ks))
	for i, k := range ks {
		q[i] = tomlKey(k)
	}
	return strings.Join(q, ".")
}

// quote writes a TOML basic string. Control characters are escaped; the
// text is otherwise kept as is (TOML documents are UTF-8, and invalid
// bytes are replaced so the output always parses).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
