package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloudFormatsPassExternalChecks checks the VM and cloud formats of
// the reference image with tools keel did not write: qemu-img reads each
// one back as exactly the raw disk, tar reads the OVA and the GCE
// archive, and sgdisk finds the whole-GiB cloud disks sound.
//
// Not parallel, like the other output checks, so it runs before the boot
// tests take the CPU.
func TestCloudFormatsPassExternalChecks(t *testing.T) {
	dir := referenceImages(t, "amd64", amd64Formats...)
	raw := filepath.Join(dir, "host-amd64.raw") // the disk for every machine
	rawInfo, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ file, format string }{
		{"host-amd64.vhd", "vpc"},
		{"host-amd64-dynamic.vhd", "vpc"},
		{"host-amd64.vhdx", "vhdx"},
		{"host-amd64.vmdk", "vmdk"},
	} {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join(dir, c.file)
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal([]byte(tool(t, "qemu-img", "info", "--output=json", "-f", c.format, p)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != c.format || info.VirtualSize != rawInfo.Size() {
				t.Errorf("qemu-img info: %s of %d bytes, want %s of %d", info.Format, info.VirtualSize, c.format, rawInfo.Size())
			}
			if c.format != "vpc" { // qemu-img has no check for VHD
				if out := tool(t, "qemu-img", "check", "-f", c.format, p); !strings.Contains(out, "No errors were found") {
					t.Errorf("qemu-img check: %s", out)
				}
			}
			tool(t, "qemu-img", "compare", "-f", "raw", "-F", c.format, raw, p)
		})
	}

	t.Run("ova", func(t *testing.T) {
		ova := filepath.Join(dir, "host-amd64.ova")
		names := strings.Fields(tool(t, "tar", "-tf", ova))
		want := []string{"host-amd64.ovf", "host-amd64.mf", "host-amd64-disk1.vmdk"}
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Fatalf("tar -tf: %v, want %v (the OVF first)", names, want)
		}
		tmp := t.TempDir()
		tool(t, "tar", "-xf", ova, "-C", tmp)
		vmdk := filepath.Join(tmp, want[2])
		tool(t, "qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, vmdk)
		// The manifest's digests are those of the files.
		cmd := exec.Command("sh", "-c", `sed 's/^SHA256(\(.*\))= \(.*\)$/\2  \1/' host-amd64.mf | sha256sum -c`)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("manifest: %v\n%s", err, out)
		}
	})

	t.Run("gce and aws", func(t *testing.T) {
		tgz := filepath.Join(dir, "host-amd64-gce.tar.gz")
		if list := tool(t, "tar", "-tzvf", tgz); !strings.Contains(list, " disk.raw") || strings.Count(list, "\n") != 1 {
			t.Fatalf("tar -tzvf: want disk.raw alone:\n%s", list)
		}
		tmp := t.TempDir()
		tool(t, "tar", "-xzf", tgz, "-C", tmp)
		disk := filepath.Join(tmp, "disk.raw")
		aws := filepath.Join(dir, "host-amd64-aws.raw")
		for _, p := range []string{disk, aws} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size()%(1<<30) != 0 {
				t.Errorf("%s: %d bytes, not a whole GiB", filepath.Base(p), st.Size())
			}
			if out := tool(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v %s: %s", filepath.Base(p), out)
			}
		}
		tool(t, "cmp", disk, aws)
	})
}
