package disk

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/keelos/keel/internal/fuzzpatch"
)

func written(t testing.TB, o EFIOptions) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	err = WriteEFI(f, o)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadGPTFindsWhatWriteEFIPlanned reads back each partition's number,
// type, name and extent.
func TestReadGPTFindsWhatWriteEFIPlanned(t *testing.T) {
	o := opts()
	o.Partitions = append(o.Partitions, Partition{Name: "BIOS boot partition", Type: TypeBIOSBoot, Size: 1 << 20})
	img := written(t, o)
	l, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := ReadGPT(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	want := Table{
		{Number: 1, Type: TypeESP, Name: "EFI System Partition", Extent: l.Partitions[0]},
		{Number: 2, Type: TypeLinuxRootX86_64, Name: "root", Extent: l.Partitions[1]},
		{Number: 3, Type: TypeBIOSBoot, Name: "BIOS boot partition", Extent: l.Partitions[2]},
	}
	if len(parts) != len(want) {
		t.Fatalf("%d partitions, want %d: %+v", len(parts), len(want), parts)
	}
	for i, p := range parts {
		if p != want[i] {
			t.Errorf("partition %d: %+v, want %+v", i+1, p, want[i])
		}
	}
	if p, ok := parts.ByType(TypeLinuxRootX86_64); !ok || p.Number != 2 {
		t.Errorf("ByType: %+v %v", p, ok)
	}
	if p, ok := parts.ByName("root"); !ok || !bytes.HasPrefix(img[p.Start:], []byte("ROOTROOT")) {
		t.Errorf("ByName: %+v %v", p, ok)
	}
	if _, ok := parts.ByType(TypeXBOOTLDR); ok {
		t.Error("ByType found a type the disk lacks")
	}
}

// FuzzReadGPT mutates the protective MBR, the GPT header and the first
// entries: every partition read lies inside the disk, and the table read
// is bounded by the input.
func FuzzReadGPT(f *testing.F) {
	o := opts()
	o.ESPFiles, o.Partitions = nil, []Partition{{Name: "root", Type: TypeLinuxRootX86_64, Size: 1}}
	img := written(f, o)
	rs := fuzzpatch.Regions(446, 66, 512, 92, 1024, 256)
	f.Add(fuzzpatch.Seed(img, rs), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		disk := fuzzpatch.Apply(img, rs, data, cut)
		parts, err := ReadGPT(disk, disk.Size())
		if err != nil {
			return
		}
		for _, p := range parts {
			if p.Start <= 0 || p.Size <= 0 || p.Start+p.Size > disk.Size() {
				t.Fatalf("partition %+v outside the %d-byte disk", p, disk.Size())
			}
		}
	})
}
