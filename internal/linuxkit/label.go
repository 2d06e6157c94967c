package linuxkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keelos/keel/internal/spec"
)

// labelMaxDepth bounds the nesting of a label, as keel's own label's;
// LinuxKit's keys nest 4 deep (runtime.interfaces[0].name).
const labelMaxDepth = 16

// ParseLabel decodes an image's org.mobyproject.config label, the JSON of
// a LinuxKit image entry's settings (capabilities, binds, readonly, net,
// …) that LinuxKit's package builder writes, into keel's configuration,
// key by key as `keel convert linuxkit` translates the same keys of a
// YAML entry. kind is the container's list (onboot, onshutdown,
// service). The label is hostile input: more than spec.LabelMaxSize
// bytes, text that is not one JSON value, a key LinuxKit does not have
// (name and image included: a label sets neither), a key given twice, or
// a value keel cannot carry over exactly is an error naming each cause,
// located by line, column and key path under where ("image
// reg.example/x:1 label org.mobyproject.config"). Only the keys the
// label sets are returned: LinuxKit's defaults for keys it leaves unset
// (the host's network, IPC and UTS namespaces) are not keel's, and an
// image cannot ask for them by saying nothing. Warnings of the
// translation (a CPU quota rounded) are not errors.
func ParseLabel(kind, where string, data []byte) (spec.Config, error) {
	if len(data) > spec.LabelMaxSize {
		return spec.Config{}, fmt.Errorf("%s: %d bytes, more than the %d a label may hold", where, len(data), spec.LabelMaxSize)
	}
	// LinuxKit reads the label with encoding/json: YAML that is not
	// JSON is not a label.
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return spec.Config{}, fmt.Errorf("%s: not JSON: %v", where, err)
	}
	if err := checkDepth(data); err != nil {
		return spec.Config{}, fmt.Errorf("%s: %w", where, err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return spec.Config{}, fmt.Errorf("%s: %v", where, err)
	}
	c := &converter{labels: map[string]*spec.Config{}, volumes: map[string]*volume{}}
	var cfg spec.Config
	if len(doc.Content) > 0 {
		top := value{where, doc.Content[0]}
		if n := top.node(); !top.isNull() && n.Kind != yaml.MappingNode {
			return spec.Config{}, fmt.Errorf("%s: want a JSON object, not %s", where, describe(n))
		}
		e := &entry{kind: kind, at: top}
		if fs, ok := c.fields(top, ""); ok {
			e.fields = fs
		}
		b := &builder{c: c, e: e, cfg: &cfg, from: map[string]origin{}, set: map[string]field{}}
		for _, f := range e.fields {
			switch {
			case f.key == "name" || f.key == "image":
				c.invalid(f.keyAt, f.key, "unknown key of a label (a label sets neither name nor image)")
			case f.val.isNull():
			case strings.HasSuffix(f.key, ".add"):
				// LinuxKit adds an entry's list to its image's label;
				// the label has nothing below it to add to.
				c.unsupported(f.keyAt, f.key, "a label has no list below it to add to: list them under %s", strings.TrimSuffix(f.key, ".add"))
			default:
				b.set[f.key] = f
				b.key(f, f.key)
			}
		}
		b.check()
	}
	var msgs []string
	for _, p := range c.problems {
		if p.Severity > Warning {
			msgs = append(msgs, p.String())
		}
	}
	if len(msgs) > 0 {
		return spec.Config{}, errors.New(strings.Join(msgs, "\n"))
	}
	return cfg, nil
}

// checkDepth refuses JSON nested deeper than labelMaxDepth before the
// YAML parser, which recurses, reads it.
func checkDepth(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or an error json.Valid reported already
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > labelMaxDepth {
				return fmt.Errorf("nested more than %d deep", labelMaxDepth)
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}
