package kmod

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// moduleELF builds a minimal ELF64 relocatable object holding only a
// .modinfo section, as the kernel's module loader and depmod read it.
func moduleELF(t testing.TB, modinfo string) []byte {
	t.Helper()
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	var b bytes.Buffer
	le := binary.LittleEndian
	const ehsize, shentsize = 64, 64
	infoOff := int64(ehsize)
	strOff := infoOff + int64(len(modinfo))
	shOff := strOff + int64(len(shstr))
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, uint64(shOff))
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(0))
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.WriteString(modinfo)
	b.WriteString(shstr)
	section := func(name uint32, typ uint32, off, size int64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, uint64(off))
		binary.Write(&b, le, uint64(size))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint64(1))
		binary.Write(&b, le, uint64(0))
	}
	section(0, 0, 0, 0)
	section(1, 1, infoOff, int64(len(modinfo))) // .modinfo, PROGBITS
	section(10, 3, strOff, int64(len(shstr)))   // .shstrtab, STRTAB
	return b.Bytes()
}

func TestParseReadsNameAndDepends(t *testing.T) {
	data := moduleELF(t, "license=GPL\x00depends=virtio_ring,virtio\x00name=virtio_net\x00vermagic=6.1\x00")
	m, err := Parse("kernel/drivers/net/virtio_net.ko", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "virtio_net" || !slices.Equal(m.Depends, []string{"virtio", "virtio_ring"}) {
		t.Fatalf("got %+v", m)
	}
}

func TestParseCompressedModules(t *testing.T) {
	data := moduleELF(t, "depends=\x00name=virtio-rng\x00")
	var xzBuf, zstBuf bytes.Buffer
	xw, _ := xz.NewWriter(&xzBuf)
	xw.Write(data)
	xw.Close()
	zw, _ := zstd.NewWriter(&zstBuf)
	zw.Write(data)
	zw.Close()
	for name, raw := range map[string][]byte{"virtio-rng.ko.xz": xzBuf.Bytes(), "virtio-rng.ko.zst": zstBuf.Bytes()} {
		m, err := Parse("kernel/drivers/char/hw_random/"+name, bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Name != "virtio_rng" || len(m.Depends) != 0 {
			t.Fatalf("%s: got %+v", name, m)
		}
	}
}

func TestOrderPutsDependenciesFirst(t *testing.T) {
	s := Set{
		Modules: map[string]Module{
			"virtio_net":   {Name: "virtio_net", Depends: []string{"net_failover", "virtio", "virtio_ring"}},
			"net_failover": {Name: "net_failover", Depends: []string{"failover"}},
			"failover":     {Name: "failover"},
			"virtio":       {Name: "virtio"},
			"virtio_ring":  {Name: "virtio_ring"},
			"overlay":      {Name: "overlay"},
		},
		Builtin: map[string]bool{"ext4": true},
	}
	order, err := s.Order([]string{"virtio-net", "ext4"}, []string{"overlay", "not_in_this_kernel"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range order {
		names = append(names, m.Name)
	}
	want := []string{"failover", "net_failover", "virtio", "virtio_ring", "virtio_net", "overlay"}
	if !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}

func TestOrderRejectsMissingRequiredModule(t *testing.T) {
	s := Set{Modules: map[string]Module{"a": {Name: "a", Depends: []string{"gone"}}}}
	if _, err := s.Order([]string{"nosuch"}, nil); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("missing module: err = %v", err)
	}
	if _, err := s.Order([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), "needed by a") {
		t.Fatalf("missing dependency: err = %v", err)
	}
}

func TestOrderRejectsCycles(t *testing.T) {
	s := Set{Modules: map[string]Module{
		"a": {Name: "a", Depends: []string{"b"}},
		"b": {Name: "b", Depends: []string{"a"}},
	}}
	if _, err := s.Order([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err = %v", err)
	}
}
