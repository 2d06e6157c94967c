package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// LabelMaxSize bounds an org.keel.config label: a package's whole
// [config] takes a few hundred bytes.
const LabelMaxSize = 1 << 20

// labelMaxDepth bounds the nesting of a label; Config nests 4 deep.
const labelMaxDepth = 16

// ParseLabel decodes an image's org.keel.config label, the JSON of a
// Config, as strictly as a spec entry is read: an unknown key, a value of
// the wrong type, a duplicate key, null, trailing data or more than
// LabelMaxSize bytes is refused, and every value is checked by the
// spec's rules. origin names the image and the label in errors
// ("image reg.example/x:1 label org.keel.config"), which locate each
// problem by line, column and key path (sysctl.kernel.core_pattern).
// An empty list or table is returned as unset: under a spec entry it
// means the same. A problem is returned as Errors.
func ParseLabel(origin string, data []byte) (Config, error) {
	if len(data) > LabelMaxSize {
		return Config{}, Errors{{File: origin, Msg: fmt.Sprintf("%d bytes, more than the %d a label may hold", len(data), LabelMaxSize)}}
	}
	tree, perr := parseJSONTree(origin, data)
	if perr != nil {
		return Config{}, Errors{perr}
	}
	l := newLocated(origin)
	var c Config
	// decodeStruct, not decode: a label has no TOML tables whose keys
	// could have been meant for the top level.
	l.decodeStruct(tree, reflect.ValueOf(&c).Elem(), keyPath{})
	l.checkConfig(keyPath{}, &c)
	if len(l.errs) > 0 {
		sortErrors(l.errs, []string{origin})
		return Config{}, l.errs
	}
	dropEmpty(reflect.ValueOf(&c).Elem())
	return c, nil
}

// dropEmpty sets every empty list and table below v to nil.
func dropEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			dropEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				dropEmpty(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				dropEmpty(v.Index(i))
			}
		}
	}
}

// jsonTree builds the same tree of located values as a TOML document
// gives (tree.go), from JSON, so that a label goes through the spec's
// decoder and checks.
type jsonTree struct {
	dec   *json.Decoder
	data  []byte
	lines lineIndex
}

// posError is a problem at a place of the document.
type posError struct {
	at  pos
	msg string
}

func (e *posError) Error() string { return e.msg }

func parseJSONTree(file string, data []byte) (*node, *Error) {
	j := &jsonTree{dec: json.NewDecoder(bytes.NewReader(data)), data: data, lines: newLineIndex(data)}
	j.dec.UseNumber()
	root, err := j.value(0)
	if err == nil && root.kind != kindTable {
		err = &posError{root.at, fmt.Sprintf("a label is a JSON object, not %s", describe(root))}
	}
	if err == nil {
		at := j.here()
		if _, terr := j.dec.Token(); terr != io.EOF {
			err = &posError{at, "data after the JSON object"}
		}
	}
	if err == nil {
		return root, nil
	}
	at := j.lines.pos(len(data))
	var pe *posError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &pe):
		at = pe.at
	case errors.As(err, &se):
		at = j.lines.pos(max(0, min(int(se.Offset), len(data))))
	}
	return nil, &Error{File: file, Line: at.line, Col: at.col, Msg: "invalid label: " + err.Error()}
}

// here is the position of the next token: the decoder's offset is the
// end of the last one.
func (j *jsonTree) here() pos {
	off := int(j.dec.InputOffset())
	for off < len(j.data) && strings.IndexByte(" \t\r\n,:", j.data[off]) >= 0 {
		off++
	}
	return j.lines.pos(off)
}

// token reads the next token of a value: the document may not end here.
func (j *jsonTree) token() (json.Token, error) {
	tok, err := j.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return tok, err
}

func (j *jsonTree) value(depth int) (*node, error) {
	at := j.here()
	tok, err := j.token()
	if err != nil {
		return nil, err
	}
	n := &node{at: at, keyAt: at}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= labelMaxDepth {
			return nil, &posError{at, fmt.Sprintf("nested more than %d deep", labelMaxDepth)}
		}
		if t == '{' {
			n.kind, n.table = kindTable, &table{vals: map[string]*node{}}
		} else {
			n.kind = kindArray
		}
		for j.dec.More() {
			if n.kind == kindArray {
				item, err := j.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, item)
				continue
			}
			keyAt := j.here()
			ktok, err := j.token()
			if err != nil {
				return nil, err
			}
			k, _ := ktok.(string) // the decoder allows only strings as keys
			if n.table.get(k) != nil {
				return nil, &posError{keyAt, fmt.Sprintf("duplicate key %q", k)}
			}
			v, err := j.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.keyAt = keyAt
			n.table.set(k, v)
		}
		if _, err := j.token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.kind, n.str = kindString, t
	case bool:
		n.kind, n.flag = kindBool, t
	case json.Number:
		s := string(t)
		if strings.Trim(strings.TrimPrefix(s, "-"), "0123456789") != "" {
			n.kind = kindFloat
			break
		}
		n.kind = kindInteger
		n.num, n.numErr = strconv.ParseInt(s, 10, 64)
	case nil:
		return nil, &posError{at, "null is not a value: leave the key out"}
	}
	return n, nil
}
