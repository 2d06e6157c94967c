package linuxkit

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxExpanded bounds the nodes a document holds once its aliases are
// expanded: a few aliases of aliases can otherwise stand for billions.
const maxExpanded = 1 << 16

// value is a YAML node of one input file.
type value struct {
	file string
	n    *yaml.Node
}

// node is the value's node with aliases followed.
func (v value) node() *yaml.Node {
	n := v.n
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func (v value) isNull() bool {
	n := v.node()
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names a node's kind for "want a string, not …" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

// expandedSize counts the nodes under n with aliases expanded, up to
// limit; ok is false past the limit or on an alias that contains itself.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int, open map[*yaml.Node]bool, limit int) (int, bool) {
	if s, ok := memo[n]; ok {
		return s, true
	}
	if open[n] {
		return 0, false
	}
	open[n] = true
	defer delete(open, n)
	size := 1
	kids := n.Content
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		kids = []*yaml.Node{n.Alias}
	}
	for _, k := range kids {
		s, ok := expandedSize(k, memo, open, limit)
		if !ok {
			return 0, false
		}
		size += s
		if size > limit {
			return 0, false
		}
	}
	memo[n] = size
	return size, true
}

// field is one key of a mapping.
type field struct {
	key   string
	keyAt value
	val   value
}

// fields lists a mapping's keys in order, with YAML merge keys (<<)
// expanded. A null is an empty mapping.
func (c *converter) fields(v value, path string) ([]field, bool) {
	if v.isNull() {
		return nil, true
	}
	n := v.node()
	if n.Kind != yaml.MappingNode {
		c.invalid(v, path, "want a mapping, not %s", describe(n))
		return nil, false
	}
	var out []field
	seen := map[string]bool{}
	var merges []value
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := value{v.file, n.Content[i]}
		kn := k.node()
		val := value{v.file, n.Content[i+1]}
		if kn.Kind != yaml.ScalarNode {
			c.invalid(k, path, "a key must be a string, not %s", describe(kn))
			continue
		}
		if kn.Tag == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if seen[kn.Value] {
			c.invalid(k, join(path, kn.Value), "key given twice")
			continue
		}
		seen[kn.Value] = true
		out = append(out, field{key: kn.Value, keyAt: k, val: val})
	}
	// Keys written in the mapping win over merged ones, and an earlier
	// merged mapping over a later one (YAML's merge key rules).
	for _, m := range merges {
		srcs := []value{m}
		if mn := m.node(); mn.Kind == yaml.SequenceNode {
			srcs = nil
			for _, s := range mn.Content {
				srcs = append(srcs, value{m.file, s})
			}
		}
		for _, s := range srcs {
			sub, ok := c.fields(s, path)
			if !ok {
				continue
			}
			for _, f := range sub {
				if !seen[f.key] {
					seen[f.key] = true
					out = append(out, f)
				}
			}
		}
	}
	return out, true
}

// list is a sequence's items. A null is an empty list.
func (c *converter) list(v value, path string) ([]value, bool) {
	if v.isNull() {
		return nil, true
	}
	n := v.node()
	if n.Kind != yaml.SequenceNode {
		c.invalid(v, path, "want a list, not %s", describe(n))
		return nil, false
	}
	out := make([]value, len(n.Content))
	for i, x := range n.Content {
		out[i] = value{v.file, x}
	}
	return out, true
}

// entryAt is an item of a list of mappings, with its key path and keys.
type entryAt struct {
	at     value
	path   string
	fields []field
}

// mappings reads a list of mappings; an item that is not one is reported
// and left out.
func (c *converter) mappings(v value, path string) ([]entryAt, bool) {
	items, ok := c.list(v, path)
	if !ok {
		return nil, false
	}
	var out []entryAt
	for i, it := range items {
		p := index(path, i)
		if fs, ok := c.fields(it, p); ok {
			out = append(out, entryAt{it, p, fs})
		}
	}
	return out, true
}

// str is a scalar's text. LinuxKit's YAML parser makes numbers and
// booleans of some unquoted scalars, and its schema then refuses them
// where it wants a string; keel takes the text as written.
func (c *converter) str(v value, path string) (string, bool) {
	n := v.node()
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		c.invalid(v, path, "want a string, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// strAt is a string with where it was written.
type strAt struct {
	s  string
	at value
}

func (c *converter) strs(v value, path string) ([]strAt, bool) {
	items, ok := c.list(v, path)
	if !ok {
		return nil, false
	}
	out := make([]strAt, 0, len(items))
	for i, it := range items {
		s, ok := c.str(it, index(path, i))
		if !ok {
			return nil, false
		}
		out = append(out, strAt{s, it})
	}
	return out, true
}

// yaml11Bools are the booleans of YAML 1.1, which LinuxKit's parser
// (gopkg.in/yaml.v2) reads.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"true": true, "True": true, "TRUE": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
	"false": false, "False": false, "FALSE": false,
}

func (c *converter) boolean(v value, path string) (bool, bool) {
	n := v.node()
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
		if b, ok := yaml11Bools[n.Value]; ok {
			return b, true
		}
	}
	c.invalid(v, path, "want true or false, not %s", describe(n))
	return false, false
}

// integer reads an unquoted integer as YAML 1.1 does: decimal, 0x hex,
// 0b binary, and a leading 0 for octal.
func (c *converter) integer(v value, path string) (int64, bool) {
	n := v.node()
	if n.Kind == yaml.ScalarNode && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i, true
		}
	}
	c.invalid(v, path, "want an integer, not %s", describe(n))
	return 0, false
}

// isInteger says whether a scalar is an unquoted integer (a uid given as
// a number rather than a container's name).
func isInteger(v value) bool {
	n := v.node()
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		return false
	}
	_, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	return err == nil
}

// join and index build the key paths problems are reported under.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func named(path, name string) string { return path + "[" + name + "]" }
