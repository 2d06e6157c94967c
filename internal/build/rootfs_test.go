package build

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/fstree"
	"github.com/keelos/keel/internal/spec"
)

func TestCheckRootRefusesFormatsWithoutADisk(t *testing.T) {
	s := &spec.Spec{Output: spec.Output{Root: "squashfs", Formats: []string{"raw-efi", "iso-efi", "kernel+initrd"}}}
	err := checkFormats(s)
	if err == nil {
		t.Fatal("no error for iso-efi and kernel+initrd with a squashfs root")
	}
	for _, want := range []string{`"squashfs"`, "iso-efi, kernel+initrd cannot carry", "raw-efi", `root = "initrd"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, ok := range []*spec.Spec{
		{Output: spec.Output{Root: "erofs", Formats: []string{"raw-efi", "qcow2-efi", "tar", "gce", "aws", "vmdk"}}},
		{Output: spec.Output{Root: "initrd", Formats: []string{"iso", "kernel+initrd"}}},
	} {
		if err := checkFormats(ok); err != nil {
			t.Errorf("%+v: %v", ok.Output, err)
		}
	}
}

// moduleELF is a minimal ELF64 object holding only a .modinfo section,
// all that kmod.Parse reads.
func moduleELF(modinfo string) []byte {
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	var b bytes.Buffer
	le := binary.LittleEndian
	infoOff := int64(64)
	strOff := infoOff + int64(len(modinfo))
	shOff := strOff + int64(len(shstr))
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{uint16(1), uint16(62), uint32(1), uint64(0), uint64(0), uint64(shOff), uint32(0),
		uint16(64), uint16(0), uint16(0), uint16(64), uint16(3), uint16(2)} {
		binary.Write(&b, le, v)
	}
	b.WriteString(modinfo)
	b.WriteString(shstr)
	for _, s := range [][3]int64{{0, 0, 0}, {1, infoOff, int64(len(modinfo))}, {10, strOff, int64(len(shstr))}} {
		typ := uint32(0)
		switch s[0] {
		case 1:
			typ = 1
		case 10:
			typ = 3
		}
		for _, v := range []any{uint32(s[0]), typ, uint64(0), uint64(0), uint64(s[1]), uint64(s[2]), uint32(0), uint32(0), uint64(1), uint64(0)} {
			binary.Write(&b, le, v)
		}
	}
	return b.Bytes()
}

// TestInitrdForDiskRootKeepsRootModules: the initramfs of a root on disk
// holds init and, of the image's modules, those that find and mount the
// root with their dependencies, in the image's load order.
func TestInitrdForDiskRootKeepsRootModules(t *testing.T) {
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := fstree.New(store)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const dir = "lib/modules/6.1.0/kernel/"
	mods := []struct{ path, name, deps string }{
		{"drivers/virtio/virtio.ko", "virtio", ""},
		{"drivers/virtio/virtio_ring.ko", "virtio_ring", ""},
		{"net/core/failover.ko", "failover", ""},
		{"drivers/net/net_failover.ko", "net_failover", "failover"},
		{"drivers/net/virtio_net.ko", "virtio_net", "net_failover,virtio,virtio_ring"},
		{"drivers/block/virtio_blk.ko", "virtio_blk", "virtio,virtio_ring"},
		{"drivers/block/xen-blkfront.ko", "xen_blkfront", ""}, // a spec's addition: a disk driver
		{"fs/squashfs/squashfs.ko", "squashfs", ""},
		{"drivers/input/evdev.ko", "evdev", ""},
		{"drivers/input/mousedev.ko", "mousedev", ""},
	}
	var list strings.Builder
	for _, m := range mods {
		info := "name=" + m.name + "\x00depends=" + m.deps + "\x00"
		must(root.AddFile(dir+m.path, 0o644, 0, 0, bytes.NewReader(moduleELF(info))))
		list.WriteString("/" + dir + m.path + "\n")
	}
	must(root.AddFile("etc/keel/modules", 0o644, 0, 0, strings.NewReader(list.String())))
	must(root.AddFile("init", 0o755, 0, 0, strings.NewReader("init binary")))
	must(root.AddFile("etc/keel/build.toml", 0o644, 0, 0, strings.NewReader("name = \"x\"\n")))
	must(root.AddFile("containers/services/sshd/config.json", 0o644, 0, 0, strings.NewReader("{}")))

	boot, err := initrdForDiskRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range boot.Entries() {
		paths = append(paths, e.Path)
	}
	got := strings.Join(paths, "\n")
	for _, want := range []string{"init", "dev/console", "proc", "sys", "etc/keel/modules", "etc/keel/build.toml",
		dir + "drivers/virtio/virtio.ko", dir + "drivers/block/virtio_blk.ko", dir + "drivers/block/xen-blkfront.ko", dir + "fs/squashfs/squashfs.ko"} {
		if !strings.Contains("\n"+got+"\n", "\n"+want+"\n") {
			t.Errorf("initramfs lacks %s:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"virtio_net", "failover", "mousedev", "containers"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("initramfs holds %s, which mounting the root does not need:\n%s", unwanted, got)
		}
	}
	e, _ := boot.Get("etc/keel/modules")
	data, err := readEntry(boot, e)
	if err != nil {
		t.Fatal(err)
	}
	want := "/" + dir + "drivers/virtio/virtio.ko\n/" + dir + "drivers/virtio/virtio_ring.ko\n/" + dir + "drivers/block/virtio_blk.ko\n/" +
		dir + "drivers/block/xen-blkfront.ko\n/" + dir + "fs/squashfs/squashfs.ko\n/" + dir + "drivers/input/evdev.ko\n"
	if string(data) != want {
		t.Errorf("initramfs /etc/keel/modules:\n%s\nwant (the image's order, dependencies first):\n%s", data, want)
	}
	if c, ok := boot.Get("dev/console"); !ok || c.Mode.Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Error("no /dev/console character device")
	}
}

func TestCheckInitrdSize(t *testing.T) {
	store, err := fstree.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := fstree.New(store)
	if err := root.AddFile("big", 0o644, 0, 0, bytes.NewReader(make([]byte, 600<<10))); err != nil {
		t.Fatal(err)
	}
	sys := &system{root: root}
	check := func(o spec.Output) error {
		b := &builder{spec: &spec.Spec{Output: o}}
		return b.checkInitrdSize(sys, 100<<10)
	}
	err = check(spec.Output{Root: "initrd", Memory: spec.MustParse[spec.Size]("1MiB")})
	if err == nil {
		t.Fatal("no error for 700 KiB of initrd root on a 1 MiB machine")
	}
	for _, want := range []string{"700.0 KiB", "600.0 KiB unpacked", "100.0 KiB compressed", "50%", "1.0 MiB", `root = "squashfs"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, o := range []spec.Output{
		{Root: "initrd"}, // 1 GiB by default
		{Root: "initrd", Memory: spec.MustParse[spec.Size]("1MiB"), InitrdMaxPercent: 80},
		{Root: "squashfs", Memory: spec.MustParse[spec.Size]("1MiB")}, // the root is not in RAM
	} {
		if err := check(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
