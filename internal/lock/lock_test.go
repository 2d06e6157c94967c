package lock

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sample() File {
	return File{
		Images: []Image{
			{Ref: "./pkg/sshd", Arch: "arm64", Digest: "sha256:bb"},
			{Ref: "./pkg/sshd", Arch: "amd64", Digest: "sha256:aa"},
			{Ref: "./pkg/sshd", Arch: "amd64", Digest: "sha256:aa"},
		},
		Debs: []Deb{
			{Name: "zlib1g", Version: "1:1.2.13", Arch: "amd64", SHA256: "22"},
			{Name: "busybox-static", Version: "1:1.35.0-4", Arch: "amd64", SHA256: "11"},
		},
	}
}

func TestWriteReadRoundTripIsSortedAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := Write(p, sample()); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p)
	f, err := Read(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Images) != 2 || f.Images[0].Arch != "amd64" || f.Debs[0].Name != "busybox-static" {
		t.Fatalf("not sorted/deduplicated: %+v", f)
	}
	// Shuffled input must give the same bytes.
	s := sample()
	slices.Reverse(s.Images)
	slices.Reverse(s.Debs)
	if err := Write(p, s); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(p)
	if string(first) != string(second) {
		t.Fatalf("not deterministic:\n%s\n---\n%s", first, second)
	}
	if !strings.Contains(string(first), "[[image]]") || !strings.Contains(string(first), "[[deb]]") {
		t.Fatalf("unexpected format:\n%s", first)
	}
	if d, ok := f.Image("./pkg/sshd", "arm64"); !ok || d != "sha256:bb" {
		t.Fatalf("Image lookup = %q %v", d, ok)
	}
}

func TestReadRejectsUnknownKeysAndReportsMissing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if _, err := Read(context.Background(), p); err == nil || !strings.Contains(err.Error(), "no lock file") {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(p, []byte("[[image]]\nref = \"x\"\ndigets = \"y\"\n"), 0o644)
	if _, err := Read(context.Background(), p); err == nil || !strings.Contains(err.Error(), "digets") {
		t.Fatalf("unknown key accepted: %v", err)
	}
}

func TestDiffNamesEveryDifference(t *testing.T) {
	locked := sample()
	if d := Diff(locked, sample()); len(d) != 0 {
		t.Fatalf("equal files differ: %v", d)
	}
	res := File{
		Images: []Image{
			{Ref: "./pkg/sshd", Arch: "amd64", Digest: "sha256:cc"},
			{Ref: "reg/x:1", Arch: "amd64", Digest: "sha256:dd"},
		},
		Debs: []Deb{
			{Name: "busybox-static", Version: "1:1.36.0-1", Arch: "amd64", SHA256: "33"},
			{Name: "zlib1g", Version: "1:1.2.13", Arch: "amd64", SHA256: "44"},
		},
	}
	got := strings.Join(Diff(locked, res), "\n")
	for _, want := range []string{
		"image ./pkg/sshd (amd64): locked sha256:aa, resolved sha256:cc",
		"image reg/x:1 (amd64): not in the lock file",
		"image ./pkg/sshd (arm64): locked but no longer used",
		"deb busybox-static (amd64): locked version 1:1.35.0-4, resolved 1:1.36.0-1",
		"deb zlib1g (amd64) 1:1.2.13: locked sha256 22, resolved 44",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

func pinnedSet() DebianSet {
	return DebianSet{Suite: "bookworm", Arch: "amd64", Packages: []string{"openssh-server", "busybox-static"},
		Debs: []PinnedDeb{
			{Name: "zlib1g", Version: "1:1.2.13", Arch: "amd64", Filename: "pool/main/z/zlib/zlib1g.deb", Size: 10, SHA256: strings.Repeat("2", 64)},
			{Name: "busybox-static", Version: "1:1.35.0-4", Arch: "amd64", Source: "busybox", Filename: "pool/main/b/busybox/busybox-static.deb", Size: 20, SHA256: strings.Repeat("1", 64)},
		}}
}

func TestDebianPinsRoundTripAndLookUpInAnyOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	f := sample()
	f.Debian = []DebianSet{pinnedSet()}
	if err := Write(p, f); err != nil {
		t.Fatal(err)
	}
	got, err := Read(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	set, ok := got.DebianPins(DebianSet{Suite: "bookworm", Arch: "amd64", Packages: []string{"busybox-static", "openssh-server"}})
	if !ok || len(set.Debs) != 2 || set.Debs[0].Name != "busybox-static" || set.Debs[0].Source != "busybox" {
		t.Fatalf("DebianPins = %+v, %v", set, ok)
	}
	if _, ok := got.DebianPins(DebianSet{Suite: "bookworm", Arch: "arm64", Packages: []string{"busybox-static", "openssh-server"}}); ok {
		t.Error("a set of another architecture was found")
	}
	if d := Diff(got, got); len(d) != 0 {
		t.Errorf("Diff of a file with itself: %v", d)
	}
	changed := got
	changed.Debian = []DebianSet{pinnedSet()}
	changed.Debian[0].Debs[0].SHA256 = strings.Repeat("3", 64)
	if d := Diff(got, changed); len(d) != 1 || !strings.Contains(d[0], "other packages than the lock file pins") {
		t.Errorf("Diff of a changed set: %v", d)
	}
}

func TestReadRefusesPinsOutsideTheMirror(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	f := File{Debian: []DebianSet{pinnedSet()}}
	f.Debian[0].Debs[0].Filename = "../../etc/passwd.deb"
	if err := Write(p, f); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(context.Background(), p); err == nil || !strings.Contains(err.Error(), "not a .deb path inside the mirror") {
		t.Fatalf("Read accepted a filename outside the mirror: %v", err)
	}
}
