// Package vmdk writes a raw disk image as a stream-optimized VMDK, the
// compressed sparse format that vSphere imports and OVA packages carry
// (VMware's "Virtual Disk Format 5.0", createType streamOptimized), and
// reads such images back.
//
// The writer makes one sequential pass and never seeks, so w may be a pipe
// or a tar entry: the header and embedded descriptor come first, then each
// non-zero 64 KiB grain deflated behind a grain marker, each grain table
// behind its marker as soon as its 512 grains are out, and at the end the
// grain directory, a footer and the end-of-stream marker. The header cannot
// know where the grain directory will land, so it says GD_AT_END and the
// footer, a copy of the header, carries the real offset.
//
// Grains are compressed on several goroutines but always written in disk
// order, each with its own zlib stream, so the bytes depend only on the
// input and on compress/flate: the same source gives the same file for a
// given Go release.
package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
)

const (
	sectorSize   = 512
	grainSectors = 128 // 64 KiB, VMware's default and the only grain size qemu writes
	grainSize    = grainSectors * sectorSize
	gtEntries    = 512 // VMware's disklib supports no other grain table size
	gtSectors    = gtEntries * 4 / sectorSize

	// overHead: the header and descriptor fill the first grain, so grain
	// markers start grain-aligned; readers only check that the file is at
	// least this long.
	overHead = grainSectors

	magic          = 0x564d444b // "KDMV" on disk
	version        = 3          // version 3 is what carries compressed grains
	flagNewline    = 1 << 0     // the four line-ending bytes below are valid
	flagZeroGrain  = 1 << 2     // a grain table entry of 1 means a zero grain
	flagCompressed = 1 << 16
	flagMarkers    = 1 << 17
	deflate        = 1 // compressAlgorithm: RFC 1950 zlib streams in practice
	gdAtEnd        = ^uint64(0)

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3

	grainMarkerLen = 12 // uint64 LBA, uint32 compressed length

	// Grain and table entries are 32-bit sector offsets into the file.
	maxFileSectors = 1<<32 - 1

	// maxSize is vSphere's largest virtual disk, 62 TiB; it also bounds
	// the grain directory held in memory to 8 MiB.
	maxSize = 62 << 40

	// level trades size for time. On the benchmark's mixed disk, zlib's
	// default level 6 (qemu's choice) gives output 9% smaller than
	// BestSpeed at a fifth of the speed; a build spends that time on every
	// image, while the bytes matter only once per download.
	level = zlib.BestSpeed
)

// Options are the choices a caller makes for the descriptor.
type Options struct {
	// CID is the descriptor's content id. The caller derives it from the
	// content (a hash of the raw image, say) so that the file is
	// reproducible; it is never randomised here. 0xffffffff and 0xfffffffe
	// are refused: VMware's tools read them as "no parent" and "all zeros".
	CID uint32

	// FileName is the base name the file will be stored under, which the
	// descriptor's extent line repeats; "disk.vmdk" when empty. VMware and
	// qemu read a monolithic file whatever its name, but libvmdk opens the
	// extent by that name, so it should match.
	FileName string
}

// header is the part of a SparseExtentHeader that varies between images.
type header struct {
	capacity    uint64 // virtual size in sectors
	descSectors uint64
	gdOffset    uint64 // in sectors, or gdAtEnd
}

func (h header) encode() []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], version)
	le.PutUint32(b[8:], flagNewline|flagCompressed|flagMarkers)
	le.PutUint64(b[12:], h.capacity)
	le.PutUint64(b[20:], grainSectors)
	le.PutUint64(b[28:], 1) // descriptor right after the header
	le.PutUint64(b[36:], h.descSectors)
	le.PutUint32(b[44:], gtEntries)
	// rgdOffset (48) stays 0: a stream has no redundant grain directory.
	le.PutUint64(b[56:], h.gdOffset)
	le.PutUint64(b[64:], overHead)
	// uncleanShutdown (72) stays 0.
	b[73], b[74], b[75], b[76] = '\n', ' ', '\r', '\n'
	le.PutUint16(b[77:], deflate)
	return b
}

// descriptor is the embedded text descriptor, with what VMware's own
// stream writer (open-vmdk) puts there. The adapter type only picks the
// geometry convention, 255 heads of 63 sectors for SCSI; the virtual
// controller is the OVF's to declare, and VMware writes "lsilogic" for
// PVSCSI disks too. virtualHWVersion is obsolete (read by ESX 3 and older)
// but expected; "4" is what qemu and open-vmdk write. No uuid or
// longContentID, which would have to be random, and no toolsVersion, which
// would claim guest tools the image may not have.
func descriptor(capacity uint64, cid uint32, name string) string {
	cylinders := min(ceilDiv(capacity, 255*63), 65535)
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=ffffffff
createType="streamOptimized"

# Extent description
RW %d SPARSE "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.virtualHWVersion = "4"
`, cid, capacity, name, cylinders)
}

func ceilDiv[T int64 | uint64](a, b T) T { return (a + b - 1) / b }

// WriteStreamOptimized writes the size bytes of src as a monolithic
// stream-optimized sparse VMDK on w. The virtual capacity is size rounded
// up to whole sectors, as qemu and VMware's open-vmdk do, so a raw image of
// whole sectors keeps its exact size. Grains that are all zeros, and grain
// tables with no grain, are left out.
func WriteStreamOptimized(w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	if size <= 0 {
		// Capacity 0 would also make qemu take the file for a bare
		// descriptor and refuse it.
		return fmt.Errorf("vmdk: disk size %d: must be positive", size)
	}
	if size > maxSize {
		return fmt.Errorf("vmdk: disk size %d: larger than vSphere's 62 TiB limit", size)
	}
	if opts.CID == 0xffffffff || opts.CID == 0xfffffffe {
		return fmt.Errorf("vmdk: CID %08x is reserved", opts.CID)
	}
	name := opts.FileName
	if name == "" {
		name = "disk.vmdk"
	}
	if strings.ContainsAny(name, "\"/\\\x00\r\n") {
		return fmt.Errorf("vmdk: file name %q: must be a base name without quotes or line breaks", name)
	}
	capacity := ceilDiv(uint64(size), sectorSize)
	grains := int64(ceilDiv(capacity, grainSectors))
	desc := descriptor(capacity, opts.CID, name)
	descSectors := ceilDiv(uint64(len(desc)), sectorSize)

	s := &sink{w: w}
	head := make([]byte, overHead*sectorSize)
	copy(head, header{capacity: capacity, descSectors: descSectors, gdOffset: gdAtEnd}.encode())
	copy(head[sectorSize:], desc)
	if err := s.write(head, "header"); err != nil {
		return err
	}

	gd := make([]byte, ceilDiv(uint64(ceilDiv(grains, gtEntries))*4, sectorSize)*sectorSize)
	gt := make([]byte, gtSectors*sectorSize)
	gtUsed := false
	err := compressGrains(src, size, grains, func(g int64, data []byte) error {
		if data != nil {
			sector, err := s.sector()
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint32(gt[g%gtEntries*4:], sector)
			gtUsed = true
			if err := s.write(data, "grain"); err != nil {
				return err
			}
		}
		if (g+1)%gtEntries != 0 && g != grains-1 {
			return nil
		}
		if !gtUsed {
			return nil // the grain directory entry stays 0: no table
		}
		if err := s.write(marker(gtSectors, markerGT), "grain table marker"); err != nil {
			return err
		}
		sector, err := s.sector()
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(gd[g/gtEntries*4:], sector)
		if err := s.write(gt, "grain table"); err != nil {
			return err
		}
		clear(gt)
		gtUsed = false
		return nil
	})
	if err != nil {
		return err
	}

	if err := s.write(marker(uint64(len(gd)/sectorSize), markerGD), "grain directory marker"); err != nil {
		return err
	}
	gdOffset, err := s.sector()
	if err != nil {
		return err
	}
	if err := s.write(gd, "grain directory"); err != nil {
		return err
	}
	if err := s.write(marker(1, markerFooter), "footer marker"); err != nil {
		return err
	}
	footer := header{capacity: capacity, descSectors: descSectors, gdOffset: uint64(gdOffset)}
	if err := s.write(footer.encode(), "footer"); err != nil {
		return err
	}
	return s.write(marker(0, markerEOS), "end-of-stream marker")
}

// marker is a metadata marker sector: how many sectors of metadata follow,
// a zero size (which tells it from a grain marker) and the type.
func marker(sectors uint64, typ uint32) []byte {
	b := make([]byte, sectorSize)
	binary.LittleEndian.PutUint64(b[0:], sectors)
	binary.LittleEndian.PutUint32(b[12:], typ)
	return b
}

// sink counts what has been written so that tables can point at it.
type sink struct {
	w   io.Writer
	off int64
}

func (s *sink) write(p []byte, what string) error {
	n, err := s.w.Write(p)
	s.off += int64(n)
	if err != nil {
		return fmt.Errorf("vmdk: write %s: %w", what, err)
	}
	return nil
}

// sector is the sector the next write lands on, as a table entry.
func (s *sink) sector() (uint32, error) {
	sec := s.off / sectorSize
	if sec > maxFileSectors {
		return 0, fmt.Errorf("vmdk: image passes 2 TiB, beyond 32-bit sector offsets")
	}
	return uint32(sec), nil
}

// grain is one slot of the compression pipeline.
type grain struct {
	index int64
	raw   []byte
	out   bytes.Buffer // grain marker, zlib stream, padding to a sector
	zero  bool
	done  chan error
}

// compressGrains reads and compresses grains 0..grains-1 on GOMAXPROCS
// workers and hands each to emit in order, with nil data for a zero grain.
// A bounded ring of slots keeps memory at a few MiB whatever the disk size.
func compressGrains(src io.ReaderAt, size, grains int64, emit func(g int64, data []byte) error) error {
	workers := runtime.GOMAXPROCS(0)
	slots := make([]*grain, min(int64(4*workers), grains))
	for i := range slots {
		slots[i] = &grain{raw: make([]byte, grainSize), done: make(chan error, 1)}
	}
	work := make(chan *grain)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var zw *zlib.Writer
			for g := range work {
				if zw == nil {
					zw, _ = zlib.NewWriterLevel(nil, level)
				}
				g.done <- g.fill(src, size, zw)
			}
		})
	}
	// On an early return the grains in flight still finish into their
	// buffered done channels, so the workers never block.
	defer func() {
		close(work)
		wg.Wait()
	}()

	n := int64(len(slots))
	for i := int64(0); i < grains+n; i++ {
		if i >= n {
			g := slots[(i-n)%n]
			if err := <-g.done; err != nil {
				return err
			}
			var data []byte
			if !g.zero {
				data = g.out.Bytes()
			}
			if err := emit(g.index, data); err != nil {
				return err
			}
		}
		if i < grains {
			g := slots[i%n]
			g.index = i
			work <- g
		}
	}
	return nil
}

var zeroGrain = make([]byte, grainSize)

// fill reads grain g.index (zero-padded past size) and, unless it is all
// zeros, compresses the whole grain: a full 64 KiB even for the last one,
// which every reader accepts, where a short last grain is refused by some.
func (g *grain) fill(src io.ReaderAt, size int64, zw *zlib.Writer) error {
	off := g.index * grainSize
	n := min(grainSize, size-off)
	if err := readFull(src, g.raw[:n], off); err != nil {
		return err
	}
	clear(g.raw[n:])
	g.zero = bytes.Equal(g.raw, zeroGrain)
	if g.zero {
		return nil
	}
	g.out.Reset()
	var m [grainMarkerLen]byte
	binary.LittleEndian.PutUint64(m[:], uint64(g.index*grainSectors))
	g.out.Write(m[:])
	zw.Reset(&g.out)
	if _, err := zw.Write(g.raw); err != nil {
		return fmt.Errorf("vmdk: compress grain %d: %w", g.index, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("vmdk: compress grain %d: %w", g.index, err)
	}
	b := g.out.Bytes()
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-grainMarkerLen))
	g.out.Write(zeroGrain[:(sectorSize-len(b)%sectorSize)%sectorSize])
	return nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	got, err := r.ReadAt(p, off)
	if got == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("vmdk: read source at %d: %w", off, err)
}
