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
	// The meta-data names no host name: the image keeps its own.
	for name, body := range map[string]string{"user-data": want, "meta-data": "instance-id: keel-qemu\n"} {
		if got := mtype(t, img, name); got != body {
			t.Errorf("mtype %s: %q, want %q", name, got, body)
		}
	}
}

func mtype(t *testing.T, img, name string) string {
	t.Helper()
	out, err := exec.Command("mtype", "-i", img, "::"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("mtype %s: %v: %s", name, err, out)
	}
	return string(out)
}

// TestConfigDriveFromSeedDirectory checks a NoCloud seed directory: its
// user-data and meta-data are served as they are.
func TestConfigDriveFromSeedDirectory(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := "instance-id: i-1\nlocal-hostname: from-meta\n"
	if err := os.WriteFile(filepath.Join(seed, "meta-data"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "cidata.img")
	if err := writeConfigDrive(seed, img); err != nil {
		t.Fatal(err)
	}
	if got := mtype(t, img, "meta-data"); got != meta {
		t.Errorf("meta-data %q, want %q", got, meta)
	}
	if out, err := exec.Command("mdir", "-b", "-i", img, "::").CombinedOutput(); err != nil || strings.Contains(string(out), "user-data") {
		t.Errorf("mdir: %v: %s (no user-data was given)", err, out)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeConfigDrive(empty, filepath.Join(dir, "x.img")); err == nil || !strings.Contains(err.Error(), "holds neither user-data nor meta-data") {
		t.Errorf("an empty seed directory: %v", err)
	}
	if err := os.Mkdir(filepath.Join(empty, "user-data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeConfigDrive(empty, filepath.Join(dir, "x.img")); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("a directory named user-data: %v", err)
	}
}
