package blockdev

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// image makes a sparse file of size bytes and runs the real tool on it.
func image(t *testing.T, size int64, name string, args ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	if name != "" {
		args = append(args, p)
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	return p
}

func probe(t *testing.T, p string) Result {
	t.Helper()
	r, err := ProbeFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestProbeFindsRealFilesystems(t *testing.T) {
	for _, c := range []struct {
		name  string
		size  int64
		tool  string
		args  []string
		kind  Kind
		label string
	}{
		{"zeros", 8 << 20, "", nil, Empty, ""},
		{"ext4", 16 << 20, "mkfs.ext4", []string{"-q", "-F", "-L", "data"}, Ext4, "data"},
		{"fat16", 16 << 20, "mkfs.vfat", []string{"-n", "CIDATA"}, VFAT, "CIDATA"},
		{"fat32", 40 << 20, "mkfs.vfat", []string{"-F", "32", "-n", "CIDATA"}, VFAT, "CIDATA"},
		{"fat-nolabel", 16 << 20, "mkfs.vfat", nil, VFAT, ""},
		{"swap", 8 << 20, "mkswap", nil, Swap, ""},
		{"gpt", 8 << 20, "sgdisk", []string{"-n", "1:2048:+1M"}, GPT, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := probe(t, image(t, c.size, c.tool, c.args...))
			if r.Kind != c.kind || r.Label != c.label {
				t.Errorf("got %q label %q, want %q label %q", r.Kind, r.Label, c.kind, c.label)
			}
		})
	}
}

func TestProbeMBRAndISO(t *testing.T) {
	p := image(t, 8<<20, "")
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = strings.NewReader("label: dos\n,4M,L\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if r := probe(t, p); r.Kind != MBR {
		t.Errorf("sfdisk dos label: got %q", r.Kind)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user-data"), []byte("#cloud-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "seed.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", iso, dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	if r := probe(t, iso); r.Kind != ISO9660 || r.Label != "cidata" {
		t.Errorf("iso: got %+v", r)
	}
}

func TestProbeStrayDataIsNotEmpty(t *testing.T) {
	b := make([]byte, ProbeSize)
	b[ProbeSize-1] = 1
	if r := ProbeBytes(b); r.Kind != Unknown {
		t.Errorf("got %q, want unknown", r.Kind)
	}
	// A boot signature alone, without partitions or a FAT header, is data too.
	b = make([]byte, 4096)
	b[510], b[511] = 0x55, 0xAA
	if r := ProbeBytes(b); r.Kind != Unknown {
		t.Errorf("got %q, want unknown", r.Kind)
	}
}

func TestListReadsSysfs(t *testing.T) {
	sys := t.TempDir()
	mk := func(rel, size string, partition bool) {
		d := filepath.Join(sys, "class", "block", rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "size"), []byte(size+"\n"), 0o644)
		if partition {
			os.WriteFile(filepath.Join(d, "partition"), []byte("1\n"), 0o644)
		}
	}
	mk("vdb", "2048", false)
	mk("vda", "4096", false)
	mk("vda/vda1", "2000", true)
	mk("sr0", "0", false)
	// sysfs lists partitions beside their disk too.
	if err := os.Symlink("vda/vda1", filepath.Join(sys, "class", "block", "vda1")); err != nil {
		t.Fatal(err)
	}
	devs, err := List(sys, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, d.Name+":"+d.Path)
	}
	if strings.Join(got, " ") != "vda:/dev/vda vda1:/dev/vda1 vdb:/dev/vdb" {
		t.Fatalf("got %v", got)
	}
	if devs[0].Partitions != 1 || !devs[1].Partition || devs[2].Partitions != 0 || devs[2].Size != 2048*512 {
		t.Errorf("got %+v", devs)
	}
}
