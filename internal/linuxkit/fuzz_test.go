package linuxkit

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert feeds any bytes to the converter as a LinuxKit file: it
// reports problems or writes a spec that loads (Convert checks that), and
// never panics.
func FuzzConvert(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("services:\n  - <<: {name: x, image: alpine}\n    binds: [x:/y]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Convert([]Input{{Name: "fuzz.yml", Data: data}}, Options{WorkDir: dir, OutDir: dir})
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if res.TOML != nil && res.Has(Invalid) {
			t.Fatalf("a spec for an invalid file:\n%s", data)
		}
	})
}

// FuzzParseLabel feeds any bytes to the label reader: it returns an error
// or a configuration keel's spec rules take, and never panics.
func FuzzParseLabel(f *testing.F) {
	f.Add([]byte(`{"capabilities":["CAP_NET_ADMIN"],"binds":["/etc:/x:ro"],"readonly":true}`))
	f.Add([]byte(`{"runtime":{"interfaces":[{"name":"eth0","add":"veth","peer":"v0"}]},"net":"new"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseLabel("service", "fuzz", data)
		if err != nil {
			return
		}
		if msg := checkConfig("service", cfg); msg != "" {
			t.Fatalf("a configuration keel refuses (%s) from:\n%s", msg, data)
		}
	})
}
