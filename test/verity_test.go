package test

// The dm-verity root: [output] verity = true with a root on disk, a
// signed UKI carrying the root hash, init opening the root through
// device-mapper, and a changed byte of a file detected when a service
// reads it.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/tooltest"
)

// veritySpec is the getty image with an erofs root (uncompressed: the
// test finds the probe file's bytes in the partition) and, when verity,
// a verified one whose corruption policy is log, so a failed read shows
// in the guest. The probe file is bound into the getty container.
const veritySpec = `name = "vr"
init = [%q]

[kernel]
image = %q
cmdline = "console=ttyS0 panic=-1"

[output]
root = "erofs"
%s
[[file]]
path = "/etc/verity-probe"
source = "verity-probe"

[[service]]
name = "getty"
image = %q
env = ["INSECURE=true"]

[[service.mounts]]
type = "bind"
source = "/etc/verity-probe"
destination = "/verity-probe"
options = ["rbind", "ro"]
`

// probeContents is 64 KiB of numbered lines: whole blocks of the erofs
// image, found by a line in the middle.
func probeContents() string {
	var b strings.Builder
	for i := 0; b.Len() < 64<<10; i++ {
		fmt.Fprintf(&b, "keel-verity-probe %05d\n", i)
	}
	return b.String()
}

// buildVerity builds veritySpec as raw-efi into dir, signed with keys,
// and returns the build's progress output.
func buildVerity(t *testing.T, keel, keys, dir string, verity bool) string {
	t.Helper()
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	output := ""
	if verity {
		output = "verity = true\nverity-corruption = \"log\"\n"
	}
	specDir := t.TempDir()
	spec := filepath.Join(specDir, "vr.toml")
	// A source file, not contents: the resolved spec in the image then
	// holds no copy of the probe's lines.
	writeFile(t, filepath.Join(specDir, "verity-probe"), []byte(probeContents()))
	writeFile(t, spec, []byte(fmt.Sprintf(veritySpec, abs("../init"), abs("../kernel/debian-cloud"), output, abs("../pkg/getty"))))
	out, err := exec.Command(keel, "build", "--arch", "amd64", "--format", "raw-efi", "--dir", dir,
		"--sign-key", filepath.Join(keys, "db.key"), "--sign-cert", filepath.Join(keys, "db.crt"), spec).CombinedOutput()
	if err != nil {
		t.Fatalf("keel build: %v\n%s", err, out)
	}
	return string(out)
}

// partition copies partition n of a GPT disk image to a file.
func partition(t *testing.T, image string, n int) string {
	t.Helper()
	out, err := exec.Command("sgdisk", "-i", strconv.Itoa(n), image).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -i %d: %v\n%s", n, err, out)
	}
	first := regexp.MustCompile(`First sector: (\d+)`).FindSubmatch(out)
	last := regexp.MustCompile(`Last sector: (\d+)`).FindSubmatch(out)
	if first == nil || last == nil {
		t.Fatalf("sgdisk -i %d: no sectors:\n%s", n, out)
	}
	a, _ := strconv.ParseInt(string(first[1]), 10, 64)
	z, _ := strconv.ParseInt(string(last[1]), 10, 64)
	img, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("part%d", n))
	writeFile(t, p, img[a*512:(z+1)*512])
	return p
}

func TestVerityRootSlow(t *testing.T) {
	testenv.NeedNetwork(t)
	testenv.NeedQEMU(t)
	tooltest.Need(t, "qemu-system-x86_64", "veritysetup", "sgdisk")
	keel := keelBinary(t)
	keys := filepath.Join(t.TempDir(), "keys")
	if out, err := exec.Command(keel, "keys", "generate", "--bits", "2048", keys).CombinedOutput(); err != nil {
		t.Fatalf("keel keys generate: %v\n%s", err, out)
	}
	dir, plainDir := t.TempDir(), t.TempDir()
	progress := buildVerity(t, keel, keys, dir, true)
	if m := regexp.MustCompile(`verity: [^\n]*`).FindString(progress); m != "" {
		t.Logf("build: %s", m)
	} else {
		t.Errorf("the build did not report the hash tree:\n%s", progress)
	}
	buildVerity(t, keel, keys, plainDir, false)
	image := filepath.Join(dir, "vr-amd64-efi.raw")
	img, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}

	// The root hash is on the UKI's command line; veritysetup checks the
	// tree keel wrote against the partition.
	root := regexp.MustCompile(`keel\.verity\.roothash=([0-9a-f]{64})`).FindSubmatch(img)
	if root == nil {
		t.Fatal("no keel.verity.roothash= in the image")
	}
	for _, want := range []string{"keel.verity.hash=PARTLABEL=keel-verity-", "keel.verity.corruption=log"} {
		if !bytes.Contains(img, []byte(want)) {
			t.Errorf("the command line lacks %s", want)
		}
	}
	data, hash := partition(t, image, 2), partition(t, image, 3)
	tooltest.Run(t, "veritysetup", "verify", data, hash, string(root[1]))
	if out, err := exec.Command("veritysetup", "dump", hash).CombinedOutput(); err == nil {
		t.Logf("veritysetup dump:\n%s", out)
	}

	marker := []byte("keel-verity-probe 01000\n")
	at := bytes.Index(img, marker)
	if at < 0 || bytes.Count(img, marker) != 1 {
		t.Fatalf("the probe file's line %q is not in the image once", marker)
	}
	corrupt := bytes.Clone(img)
	corrupt[at] ^= 1
	corruptImage := filepath.Join(t.TempDir(), "vr-amd64-efi.raw")
	writeFile(t, corruptImage, corrupt)
	cd := partition(t, corruptImage, 2)
	if out, err := exec.Command("veritysetup", "verify", cd, hash, string(root[1])).CombinedOutput(); err == nil {
		t.Errorf("veritysetup verify accepted the changed partition:\n%s", out)
	}

	boot := func(t *testing.T, image string) (*qemu.Machine, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		t.Cleanup(cancel)
		m, err := qemu.Start(ctx, qemu.Options{Image: image, Snapshot: true, Accel: "tcg"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Kill)
		begin := time.Now()
		// The whole number: Expect may see the line before its end.
		ms := mustExpect(t, m, regexp.MustCompile(`keel: milestone services-running ([0-9.]+)\n`), 15*time.Minute)
		return m, fmt.Sprintf("%ss in the guest, %v from QEMU's start", ms[1], time.Since(begin).Round(100*time.Millisecond))
	}
	var plain, verified []string
	t.Run("intact", func(t *testing.T) {
		m, secs := boot(t, image)
		verified = append(verified, secs)
		if !regexp.MustCompile(`keel: root PARTLABEL=keel-root-[0-9a-f]{16}: erofs /dev/dm-0 \(dm-verity over /dev/vda2, hashes on /dev/vda3`).MatchString(m.Console()) {
			t.Errorf("the console does not show the root mounted through dm-verity:\n%s", tail(m.Console(), 4000))
		}
		m.Send("\nwc -c < /verity-probe; echo probe=$?\n")
		got := mustExpect(t, m, regexp.MustCompile(`(\d+)\s+probe=(\d+)`), time.Minute)
		if got[1] != strconv.Itoa(len(probeContents())) || got[2] != "0" {
			t.Errorf("reading the probe file gave %s bytes, status %s", got[1], got[2])
		}
	})
	t.Run("changed byte", func(t *testing.T) {
		m, secs := boot(t, corruptImage)
		verified = append(verified, secs)
		m.Send("\ncat /verity-probe > /dev/null; echo probe=$?\n")
		if got := mustExpect(t, m, regexp.MustCompile(`probe=(\d+)`), time.Minute); got[1] == "0" {
			t.Error("reading the changed file succeeded")
		}
		// The kernel logs before the shell prints the status.
		line := regexp.MustCompile(`device-mapper: verity: [^\n]*data block \d+ is corrupted`).FindString(m.Console())
		if line == "" {
			t.Fatalf("the console shows no verity error:\n%s", tail(m.Console(), 3000))
		}
		t.Logf("console: %s", line)
	})
	t.Run("no verity", func(t *testing.T) {
		_, secs := boot(t, filepath.Join(plainDir, "vr-amd64-efi.raw"))
		plain = append(plain, secs)
	})
	t.Logf("services running: verity %q, without %q", verified, plain)
}

// TestVerifyReproducibleSignedVerityRoot_Network runs `keel build
// --verify-reproducible` on a signed build with a verity root: the second
// build, from an empty cache under another umask and time zone, must give
// the same disks (signed UKI, root and hash partitions), byte for byte.
func TestVerifyReproducibleSignedVerityRoot_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	t.Parallel()
	keel := keelBinary(t)
	keys := filepath.Join(t.TempDir(), "keys")
	if out, err := exec.Command(keel, "keys", "generate", "--bits", "2048", keys).CombinedOutput(); err != nil {
		t.Fatalf("keel keys generate: %v\n%s", err, out)
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	specDir := t.TempDir()
	spec := filepath.Join(specDir, "vr.toml")
	writeFile(t, filepath.Join(specDir, "verity-probe"), []byte(probeContents()))
	writeFile(t, spec, []byte(fmt.Sprintf(veritySpec, abs("../init"), abs("../kernel/debian-cloud"),
		"verity = true\n", abs("../pkg/getty"))))
	cmd := exec.Command(keel, "build", "--verify-reproducible", "--arch", "amd64", "--format", "raw-efi,qcow2-efi",
		"--dir", filepath.Join(t.TempDir(), "out"),
		"--sign-key", filepath.Join(keys, "db.key"), "--sign-cert", filepath.Join(keys, "db.crt"), spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keel build --verify-reproducible: %v\n%s", err, out)
	}
	for _, want := range []string{"verity:", "reproducible: 3 outputs bit-identical"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in the build's output:\n%s", want, out)
		}
	}
}
