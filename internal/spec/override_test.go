package spec

import (
	"reflect"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestConfigOverride(t *testing.T) {
	base := Config{
		Command:      []string{"/usr/sbin/sshd", "-D"},
		Capabilities: []Capability{MustParse[Capability]("CAP_NET_BIND_SERVICE")},
		Net:          ptr("host"),
		Readonly:     ptr(true),
		Sysctl:       map[string]string{"a.b": "1"},
		Restart:      ptr("always"),
	}
	over := Config{
		Capabilities: []Capability{}, // set but empty: drops the defaults
		Net:          ptr("new"),
		Readonly:     ptr(false),
		UID:          ptr(uint32(5)),
	}
	got := base.Override(over)
	want := Config{
		Command:      []string{"/usr/sbin/sshd", "-D"},
		Capabilities: []Capability{},
		Net:          ptr("new"),
		Readonly:     ptr(false),
		UID:          ptr(uint32(5)),
		Sysctl:       map[string]string{"a.b": "1"},
		Restart:      ptr("always"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(base.Override(Config{}), base) {
		t.Fatal("an empty override changed the config")
	}
}

// TestConfigOverrideCoversEveryField guards against a field added to
// Config but forgotten in Override.
func TestConfigOverrideCoversEveryField(t *testing.T) {
	var over Config
	v := reflect.ValueOf(&over).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 0, 0))
		case reflect.Map:
			f.Set(reflect.MakeMap(f.Type()))
		default:
			t.Fatalf("field %s: not a pointer, slice or map, so it cannot be unset", v.Type().Field(i).Name)
		}
	}
	if got := (Config{}).Override(over); !reflect.DeepEqual(got, over) {
		t.Fatalf("fields not overridden: %+v", got)
	}
}
