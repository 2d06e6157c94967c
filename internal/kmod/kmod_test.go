package kmod

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/keelos/keel/internal/kmod/kmodtest"
)

func moduleELF(t testing.TB, modinfo string) []byte { return kmodtest.ModuleELF(t, modinfo) }

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
