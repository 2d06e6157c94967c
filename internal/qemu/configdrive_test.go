package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigDriveReadByMtools checks the drive with mtools, an
// independent FAT reader: label, names and contents.
func TestConfigDriveReadByMtools(t *testing.T) {
	dir := t.TempDir()
	ud := filepath.Join(dir, "my-user-data")
	want := "#cloud-config\nhostname: probe\n"
	if err := os.WriteFile(ud, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "cidata.img")
	if err := writeConfigDrive(ud, img); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mlabel", "-s", "-i", img, "::").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CIDATA") {
		t.Errorf("mlabel: %v: %s", err, out)
	}
	for name, body := range map[string]string{"user-data": want, "meta-data": "instance-id: keel-qemu\n"} {
		out, err := exec.Command("mtype", "-i", img, "::"+name).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), body) {
			t.Errorf("mtype %s: %v: %q, want %q", name, err, out, body)
		}
	}
	if err := writeConfigDrive(dir, filepath.Join(dir, "x.img")); err == nil {
		t.Error("a directory as user-data was accepted")
	}
}
