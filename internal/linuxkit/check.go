package linuxkit

import (
	"errors"
	"reflect"
	"strings"

	"github.com/keelos/keel/internal/spec"
)

// keel's own validation decides what it accepts: a translated value is
// written into a one-entry spec and parsed back with internal/spec, so
// the converter never keeps rules of its own that could drift from the
// spec's.

// specErrors parses s as keel would and returns its problems.
func specErrors(s *spec.Spec) spec.Errors {
	data, err := spec.Marshal(s)
	if err != nil {
		return spec.Errors{{Msg: err.Error()}}
	}
	_, err = spec.Parse("check.toml", data)
	var es spec.Errors
	if errors.As(err, &es) {
		return es
	}
	if err != nil {
		return spec.Errors{{Msg: err.Error()}}
	}
	return nil
}

// containerSpec is a spec holding only c, in the list of its kind.
func containerSpec(kind string, c spec.Container) *spec.Spec {
	s := &spec.Spec{}
	switch kind {
	case "onboot":
		s.Onboot = []spec.Container{c}
	case "onshutdown":
		s.Onshutdown = []spec.Container{c}
	default:
		s.Services = []spec.Container{c}
	}
	return s
}

// checkConfig returns why keel refuses a container configuration, "" when
// it takes it. The entry's name and image are stand-ins: only cfg is
// judged.
func checkConfig(kind string, cfg spec.Config) string {
	es := specErrors(containerSpec(kind, spec.Container{Name: "x", Image: spec.ImageRef{Ref: "x"}, Config: cfg}))
	if len(es) == 0 {
		return ""
	}
	return message(es[0])
}

// checkFile returns why keel refuses a [[file]] entry, "" when it takes it.
func checkFile(f spec.File) string {
	es := specErrors(&spec.Spec{Files: []spec.File{f}})
	if len(es) == 0 {
		return ""
	}
	return message(es[0])
}

// message is a spec error without its position and key path, which name
// the check's stand-in spec rather than the user's file.
func message(e *spec.Error) string {
	if e.Hint != "" {
		return e.Msg + "; did you mean \"" + e.Hint + "\"?"
	}
	return e.Msg
}

// configKey is the part of a spec error's key path below the container
// entry: service[x].sysctl.net.ipv4.ip_forward → sysctl.net.ipv4.ip_forward.
func configKey(p string) string {
	if i := strings.Index(p, "]."); i >= 0 {
		return p[i+2:]
	}
	return ""
}

// removeKey unsets the value a config key path names: a field (by its
// TOML name), a field of a table, or a key of a map (sysctl names hold
// dots: the rest of the path is the map key).
func removeKey(cfg *spec.Config, key string) bool {
	v := reflect.ValueOf(cfg).Elem()
	parts := strings.Split(key, ".")
	for i, part := range parts {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return false
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Map:
			k := reflect.ValueOf(strings.Join(parts[i:], "."))
			if !v.MapIndex(k).IsValid() {
				return false
			}
			v.SetMapIndex(k, reflect.Value{})
			return true
		case reflect.Struct:
			f, ok := fieldByTOML(v, part)
			if !ok {
				return false
			}
			if i == len(parts)-1 {
				f.SetZero()
				return true
			}
			v = f
		default:
			return false
		}
	}
	return false
}

// fieldByTOML finds a struct field (or a field of an embedded struct) by
// its TOML key.
func fieldByTOML(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			if f, ok := fieldByTOML(v.Field(i), key); ok {
				return f, true
			}
			continue
		}
		if tag, _, _ := strings.Cut(sf.Tag.Get("toml"), ","); tag == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
