package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keelos/keel/internal/pecoff"
	"github.com/keelos/keel/internal/testenv"
)

var (
	stubOnce sync.Once
	stubData []byte
	stubErr  error
)

// realStub fetches Debian's systemd-boot-efi with apt-get download (network:
// the Debian mirror of the host's apt configuration) and returns the amd64 stub.
func realStub(t *testing.T) []byte {
	t.Helper()
	stubOnce.Do(func() {
		dir, err := os.MkdirTemp("", "uki-stub")
		if err != nil {
			stubErr = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("sh", "-c", "apt-get download -q systemd-boot-efi:amd64 && dpkg-deb -x systemd-boot-efi_*.deb x")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			stubErr = &exec.Error{Name: string(out), Err: err}
			return
		}
		stubData, stubErr = os.ReadFile(filepath.Join(dir, "x/usr/lib/systemd/boot/efi/linuxx64.efi.stub"))
	})
	if stubErr != nil {
		t.Fatalf("get systemd-boot-efi: %v", stubErr)
	}
	return stubData
}

func TestChecksumMatchesStubsOwn_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	stub := realStub(t)
	f, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	want := f.OptionalHeader.(*pe.OptionalHeader64).CheckSum
	field := uint64(binary.LittleEndian.Uint32(stub[0x3c:])) + 4 + 20 + 64
	if got := pecoff.Checksum(stub, int(field)); got != want {
		t.Fatalf("checksum %#x, stub says %#x", got, want)
	}
}

func TestUKIRealStub_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	stub := realStub(t)
	kernel := bytes.Repeat([]byte("KERNEL"), 100001)
	initrd := bytes.Repeat([]byte("INITRD"), 33333)
	const cmdline = "console=ttyS0 panic=-1"
	const osrel = "ID=keel\nNAME=keel\n"
	var buf bytes.Buffer
	if err := Build(&buf, stub, kernel, initrd, cmdline, osrel); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()

	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := pe.NewFile(bytes.NewReader(stub))
	n := len(orig.Sections)
	if len(f.Sections) != n+4 {
		t.Fatalf("%d sections, want %d", len(f.Sections), n+4)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	want := []struct {
		name string
		data []byte
	}{{".osrel", []byte(osrel)}, {".cmdline", []byte(cmdline)}, {".linux", kernel}, {".initrd", initrd}}
	prevEnd := uint64(orig.Sections[n-1].VirtualAddress + orig.Sections[n-1].VirtualSize)
	prevOff := uint64(orig.Sections[n-1].Offset + orig.Sections[n-1].Size)
	for i, w := range want {
		s := f.Sections[n+i]
		if s.Name != w.name {
			t.Fatalf("section %d is %q, want %q", n+i, s.Name, w.name)
		}
		if s.VirtualAddress%4096 != 0 || uint64(s.VirtualAddress) < prevEnd || s.Offset%oh.FileAlignment != 0 || uint64(s.Offset) < prevOff {
			t.Errorf("%s at va %#x off %#x: misplaced", s.Name, s.VirtualAddress, s.Offset)
		}
		if s.VirtualSize != uint32(len(w.data)) || s.Characteristics != dataCharacteristics {
			t.Errorf("%s: vsize %d chars %#x", s.Name, s.VirtualSize, s.Characteristics)
		}
		got := out[s.Offset : s.Offset+s.VirtualSize]
		if !bytes.Equal(got, w.data) {
			t.Errorf("%s: content differs", s.Name)
		}
		prevEnd, prevOff = uint64(s.VirtualAddress+s.VirtualSize), uint64(s.Offset+s.Size)
	}
	last := f.Sections[len(f.Sections)-1]
	if oh.SizeOfImage < last.VirtualAddress+last.VirtualSize || oh.SizeOfImage%oh.SectionAlignment != 0 {
		t.Errorf("SizeOfImage %#x", oh.SizeOfImage)
	}
	if int(last.Offset+last.Size) != len(out) {
		t.Errorf("file is %d bytes, last section ends at %d", len(out), last.Offset+last.Size)
	}
	field := uint64(binary.LittleEndian.Uint32(out[0x3c:])) + 4 + 20 + 64
	if oh.CheckSum != pecoff.Checksum(out, int(field)) || oh.CheckSum == 0 {
		t.Errorf("checksum %#x", oh.CheckSum)
	}

	// objdump (binutils) reads the result as a PE image too.
	p := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	od, err := exec.Command("objdump", "-h", p).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, od)
	}
	for _, w := range want {
		if !strings.Contains(string(od), w.name) {
			t.Errorf("objdump -h lacks %s:\n%s", w.name, od)
		}
	}

	var again bytes.Buffer
	if err := Build(&again, stub, kernel, initrd, cmdline, osrel); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again.Bytes()) {
		t.Error("two builds differ")
	}
}

func TestNoHeaderRoom_Network(t *testing.T) {
	testenv.NeedNetwork(t)
	stub := realStub(t)
	secs := make([]Section, 20)
	for i := range secs {
		secs[i] = Section{".x", []byte{1}}
	}
	err := AddSections(&bytes.Buffer{}, stub, secs)
	if err == nil || !strings.Contains(err.Error(), "room") {
		t.Fatalf("err = %v", err)
	}
}

func TestSectionNamed(t *testing.T) {
	for _, c := range []struct {
		field string
		want  bool
	}{
		{".initrd", true},
		{".initrd\x1f", true}, // arm64 NOP padding left in the name field
		{".initrd2", false},
		{".initr", false},
		{".linux", false},
	} {
		if got := sectionNamed(c.field, ".initrd"); got != c.want {
			t.Errorf("%q: %v, want %v", c.field, got, c.want)
		}
	}
}
