package dmverity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/squashfs"
	"github.com/keelos/keel/internal/testenv"
	"github.com/keelos/keel/internal/verity"
)

// TestFixedParametersMatchTheWriter: the block size, hash and tree start
// init assumes are the ones internal/verity writes (init cannot import
// the builder's package, so each states them).
func TestFixedParametersMatchTheWriter(t *testing.T) {
	if BlockSize != verity.BlockSize || Algorithm != verity.Algorithm || HashStart != verity.HashStart {
		t.Errorf("init opens %d-byte blocks, %s, tree at block %d; the writer writes %d, %s, %d",
			BlockSize, Algorithm, HashStart, verity.BlockSize, verity.Algorithm, verity.HashStart)
	}
}

var (
	testRoot = strings.Repeat("ab", 32)
	testSalt = strings.Repeat("cd", 32)
)

func TestTableLine(t *testing.T) {
	root, _ := hex.DecodeString(testRoot)
	salt, _ := hex.DecodeString(testSalt)
	base := "1 254:2 254:3 4096 4096 1000 1 sha256 " + testRoot + " "
	for _, c := range []struct {
		policy Policy
		salt   []byte
		want   string
	}{
		{Log, salt, base + testSalt},
		{Restart, salt, base + testSalt + " 1 restart_on_corruption"},
		{Panic, salt, base + testSalt + " 1 panic_on_corruption"},
		{"", salt, base + testSalt + " 1 restart_on_corruption"},
		{Log, nil, base + "-"},
	} {
		tg := Target{DataBlocks: 1000, HashStart: 1, RootHash: root, Salt: c.salt, OnCorruption: c.policy}
		if got := tg.table("254:2", "254:3"); got != c.want {
			t.Errorf("policy %q: table\n%s\nwant\n%s", c.policy, got, c.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	root, _ := hex.DecodeString(testRoot)
	salt, _ := hex.DecodeString(testSalt)
	full := "console=ttyS0 keel.root=PARTLABEL=keel-root-1 keel.verity.roothash=" + testRoot +
		" keel.verity.hash=PARTLABEL=keel-verity-1 keel.verity.salt=" + testSalt + " keel.verity.datablocks=1234"
	c, err := ParseCmdline(full + " keel.verity.corruption=panic")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.RootHash, root) || !bytes.Equal(c.Salt, salt) || c.Hash != "PARTLABEL=keel-verity-1" || c.DataBlocks != 1234 || c.OnCorruption != Panic {
		t.Errorf("ParseCmdline: %+v", c)
	}
	tg := c.Target("/dev/vda2", "/dev/vda3")
	if tg.Data != "/dev/vda2" || tg.Hash != "/dev/vda3" || tg.HashStart != HashStart || tg.DataBlocks != 1234 {
		t.Errorf("Target: %+v", tg)
	}
	if c, err := ParseCmdline(full); err != nil || c.OnCorruption != DefaultPolicy {
		t.Errorf("without keel.verity.corruption: %+v, %v; want the default policy %s", c, err, DefaultPolicy)
	}
	if c, err := ParseCmdline(strings.Replace(full, "salt="+testSalt, "salt=-", 1)); err != nil || c.Salt != nil {
		t.Errorf("keel.verity.salt=-: %+v, %v", c, err)
	}
	if _, err := ParseCmdline("console=ttyS0 keel.root=PARTLABEL=x"); !errors.Is(err, ErrNoVerity) {
		t.Errorf("no verity keys: %v, want ErrNoVerity", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"roothash=" + testRoot, "roothash=abc", "keel.verity.roothash=abc"},
		{"roothash=" + testRoot, "roothash=" + testRoot[:62], "want 64 hex digits"},
		{"hash=PARTLABEL=keel-verity-1", "hash=vda3", "keel.verity.hash=vda3"},
		{" keel.verity.hash=PARTLABEL=keel-verity-1", "", "keel.verity.hash="},
		{" keel.verity.salt=" + testSalt, "", "keel.verity.salt= is missing"},
		{"salt=" + testSalt, "salt=xyz", "keel.verity.salt=xyz"},
		{"datablocks=1234", "datablocks=0", "keel.verity.datablocks=0"},
		{"datablocks=1234", "datablocks=-1", "keel.verity.datablocks=-1"},
		{" keel.verity.datablocks=1234", "", "keel.verity.datablocks="},
		{"datablocks=1234", "datablocks=1234 keel.verity.corruption=reboot", "keel.verity.corruption=reboot"},
	} {
		line := strings.Replace(full, c.from, c.to, 1)
		if _, err := ParseCmdline(line); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", line, err, c.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Log, Restart, Panic} {
		if got, err := ParsePolicy(string(p)); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParsePolicy("ignore"); err == nil || !strings.Contains(err.Error(), "restart, panic or log") {
		t.Errorf("ParsePolicy(ignore): %v", err)
	}
}

func TestOpenRejectsBadTargets(t *testing.T) {
	root := make([]byte, 32)
	for _, c := range []struct {
		name string
		tg   Target
		want string
	}{
		{"ok", Target{RootHash: root[:31], DataBlocks: 1}, "root hash of 31 bytes"},
		{"ok", Target{RootHash: root, DataBlocks: 0}, "0 data blocks"},
		{"ok", Target{RootHash: root, DataBlocks: 1, OnCorruption: "reboot"}, `corruption policy "reboot"`},
		{"a/b", Target{RootHash: root, DataBlocks: 1}, "without /"},
		{"ok", Target{RootHash: root, DataBlocks: 1, Data: "/dev/null", Hash: "/dev/null"}, "/dev/null is not a block device"},
	} {
		if _, err := Open(c.name, c.tg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q, %+v): %v, want an error with %q", c.name, c.tg, err, c.want)
		}
	}
}

// TestOpenVerityInGuestSlow opens verity devices with this package over a
// squashfs image written by keel's own writer and a tree written by
// internal/verity, in a QEMU guest running Debian's cloud kernel (the
// kernel keel's images boot; the guest's /init is testdata/verityinit).
// Through the device, the image as built reads back byte for byte; with
// one byte of /payload flipped on the data disk, reading /payload fails
// with EIO, the kernel names the corrupt block, and /hello, whose blocks
// are intact, still reads; both devices are then removed. Under the
// restart and panic policies the same read restarts the machine or
// panics the kernel instead, and the guest never gets past it.
func TestOpenVerityInGuestSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	dir := t.TempDir()
	payload := make([]byte, 1<<20)
	var seed [32]byte
	for off := 0; off < len(payload); off += len(seed) {
		seed = sha256.Sum256(seed[:]) // incompressible: squashfs stores it as is
		copy(payload[off:], seed[:])
	}
	hello := []byte("hello through dm-verity\n")

	store, err := fstree.NewStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	tree := fstree.New(store)
	for name, data := range map[string][]byte{"hello": hello, "payload": payload} {
		if err := tree.AddFile(name, 0o644, 0, 0, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(dir, "good.squashfs")
	f, err := os.Create(good)
	if err != nil {
		t.Fatal(err)
	}
	size, err := squashfs.Write(f, tree, squashfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hashPath := filepath.Join(dir, "hash")
	hf, err := os.Create(hashPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload) // any content digest makes a salt
	p, err := verity.Write(hf, f, size, verity.Salt(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	hf.Close()

	img, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	mark := payload[len(payload)/2 : len(payload)/2+64]
	at := bytes.Index(img, mark)
	if at < 0 || bytes.Index(img[at+1:], mark) >= 0 {
		t.Fatal("the middle of /payload is not stored once, as is, in the squashfs image")
	}
	img[at] ^= 0x01
	bad := filepath.Join(dir, "bad.squashfs")
	if err := os.WriteFile(bad, img, 0o644); err != nil {
		t.Fatal(err)
	}

	kernel := buildGuest(t, filepath.Join(dir, "out"))
	hashes := func(name string, b []byte) string {
		return fmt.Sprintf("verity-test: %s: %d bytes, sha256 %x", name, len(b), sha256.Sum256(b))
	}
	// The kernel names the device and the block: dm-verity's own message.
	corrupt := regexp.MustCompile(fmt.Sprintf(`device-mapper: verity: \d+:\d+: data block %d is corrupted`, at/verity.BlockSize))
	for _, c := range []struct {
		policy Policy
		want   []string // console lines, in order
		then   string   // what ends the boot: the policy's action
		never  []string // lines that must not appear
	}{
		{Log, []string{
			hashes("good: /hello", hello), hashes("good: /payload", payload), "verity-test: good: closed",
			hashes("bad: /hello", hello), "verity-test: bad: /payload: read /mnt/bad/payload: input/output error",
			"verity-test: bad: closed", "verity-test: done",
		}, "", nil},
		{Restart, []string{
			hashes("good: /payload", payload), hashes("bad: /hello", hello),
		}, "reboot: Restarting system with command 'dm-verity device corrupted'", []string{"verity-test: bad: /payload", "verity-test: done"}},
		{Panic, []string{
			hashes("good: /payload", payload), hashes("bad: /hello", hello),
		}, "Kernel panic - not syncing: dm-verity device corrupted", []string{"verity-test: bad: /payload", "verity-test: done"}},
	} {
		t.Run(string(c.policy), func(t *testing.T) {
			cmdline := fmt.Sprintf("keel.verity.roothash=%x keel.verity.hash=/dev/vdc keel.verity.salt=%x keel.verity.datablocks=%d keel.verity.corruption=%s",
				p.RootHash, p.Salt, p.DataBlocks, c.policy)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			m, err := qemu.Start(ctx, qemu.Options{
				Image:   kernel,
				Mem:     512,
				Cmdline: cmdline,
				Disks:   []qemu.Disk{{Path: good}, {Path: bad}, {Path: hashPath}},
				Timeout: 9 * time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Kill()
			for _, w := range c.want {
				if _, err := m.Expect(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(w)+`$`), 8*time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if c.then != "" {
				if _, err := m.Expect(regexp.MustCompile(regexp.QuoteMeta(c.then)), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			err = m.Wait() // -no-reboot: a restart or panic ends QEMU too
			if c.policy == Log && err != nil {
				t.Errorf("the guest did not power off cleanly: %v", err)
			}
			console := m.Console()
			if !corrupt.MatchString(console) {
				t.Errorf("the console does not show dm-verity reporting data block %d corrupted (%s)", at/verity.BlockSize, corrupt)
			}
			for _, bad := range append(c.never, "verity-test: error:", "verity-test: module:") {
				if strings.Contains(console, bad) {
					t.Errorf("the console shows %q", bad)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", console)
			} else {
				t.Logf("guest:\n%s", strings.Join(regexp.MustCompile(`(?m)^.*(verity-test|verity:|reboot:|Kernel panic).*$`).FindAllString(console, -1), "\n"))
			}
		})
	}
}

// buildGuest builds the guest's kernel and initramfs with keel: Debian's
// cloud kernel, testdata/verityinit as /init, and the modules the test
// needs, and returns the kernel's path.
func buildGuest(t *testing.T, out string) string {
	t.Helper()
	testenv.NeedNetwork(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(wd, "..", "..", "..")
	spec := filepath.Join(t.TempDir(), "guest.toml")
	text := fmt.Sprintf(`name = "veritytest"
init = [%q]

[kernel]
image = %q
cmdline = "panic=-1"
modules = ["virtio_blk", "squashfs", "dm_verity"]

[output]
formats = ["kernel+initrd"]
`, filepath.Join(wd, "testdata", "verityinit"), filepath.Join(repo, "kernel", "debian-cloud"))
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := build.Run(context.Background(), build.Options{Specs: []string{spec}, Dir: out, Arch: []string{runtime.GOARCH}})
	if err != nil {
		t.Fatalf("building the guest: %v", err)
	}
	for _, o := range res.Outputs {
		if o.Format == "kernel+initrd" && strings.HasSuffix(o.Path, "-kernel") {
			return o.Path
		}
	}
	t.Fatalf("the build wrote no kernel: %+v", res.Outputs)
	return ""
}
