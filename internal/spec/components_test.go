package spec

import (
	"reflect"
	"strings"
	"testing"
)

// TestPackageDebianComponents reads [debian] components and refuses a
// value that cannot be an archive component, naming the key.
func TestPackageDebianComponents(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "package.toml", `name = "fw"

[debian]
suite = "trixie"
components = ["main", "non-free-firmware"]
packages = ["raspi-firmware"]
`)
	pk, err := LoadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"main", "non-free-firmware"}; !reflect.DeepEqual(pk.Debian.Components, want) {
		t.Errorf("components = %q, want %q", pk.Debian.Components, want)
	}

	bad := t.TempDir()
	write(t, bad, "package.toml", `name = "fw"

[debian]
components = ["main", "non-free/firmware", ""]
packages = ["raspi-firmware"]
`)
	_, err = LoadPackage(bad)
	if err == nil || !strings.Contains(err.Error(), `"non-free/firmware" is not an archive component`) ||
		!strings.Contains(err.Error(), `"" is not an archive component`) || !strings.Contains(err.Error(), "components") {
		t.Errorf("bad components: err = %v", err)
	}
}
