package vhd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// VHDX layout ([MS-VHDX] 2.1): a 1 MiB header section, then regions and
// blocks, all at 1 MiB boundaries. The log and metadata regions have fixed
// sizes and come first, so the only variable-size region, the BAT, ends
// the metadata and the payload blocks follow it.
const (
	xHeaderSection = 64 << 10 // file identifier, each header and each region table get one
	xHeaderSize    = 4 << 10  // the part of a header the checksum covers
	xLogOffset     = 1 * mib
	xLogLength     = 1 * mib // the spec's minimum
	xMetaOffset    = 2 * mib
	xMetaLength    = 1 * mib
	xBATOffset     = 3 * mib
	xMetaItems     = 64 << 10 // metadata items start after the 64 KiB table

	// xBlockSize is the smallest payload block the spec allows. Linux file
	// systems spread metadata over the whole disk (ext4 block group
	// descriptors, inode tables), so larger blocks would store mostly-zero
	// blocks; Microsoft's guidance for Linux guests is 1 MB blocks for
	// the same reason. It also makes the virtual size, a whole MiB, a
	// whole number of blocks.
	xBlockSize = 1 * mib
	// The logical sector stays 512 bytes: the raw disk's partition table
	// was laid out for 512-byte LBAs. The physical sector size is a hint
	// for alignment; 4096 is Hyper-V's default for VHDX.
	xLogicalSector  = 512
	xPhysicalSector = 4096
	// xChunkRatio is how many payload blocks share one sector bitmap
	// block, whose BAT entry follows theirs ([MS-VHDX] 2.5).
	xChunkRatio = (1 << 23) * xLogicalSector / xBlockSize
	xMaxSize    = 64 << 40 // the format's maximum virtual size
	// xMaxBlockSize and xMaxMetaLength bound what the reader accepts: the
	// spec's largest block, and a metadata region far above the 1 MiB
	// writers make.
	xMaxBlockSize  = 256 * mib
	xMaxMetaLength = 16 * mib

	xBlockFullyPresent = 6
	// Absent blocks are PAYLOAD_BLOCK_ZERO, not NOT_PRESENT: the spec lets
	// a reader return arbitrary data for a NOT_PRESENT block of a dynamic
	// disk, while ZERO guarantees the zeros the raw disk had there.
	xBlockZero = 2

	xMetaIsVirtualDisk = 2
	xMetaIsRequired    = 4

	xCreator = "keel" // the file identifier's creator string, diagnostic only
)

var (
	xBATRegion      = msGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	xMetadataRegion = msGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	xFileParameters = msGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	xVirtualSize    = msGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	xPage83Data     = msGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	xLogicalSize    = msGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	xPhysicalSize   = msGUID("CDA348C7-445D-4471-9CC9-E9885251C556")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	le         = binary.LittleEndian
)

// WriteVHDX writes a dynamic VHDX (Hyper-V): header section, an empty log,
// the metadata region, the BAT, then only the 1 MiB blocks that hold
// non-zero data. VHDX has no timestamp, so opts.Mtime is unused; opts.UUID
// becomes the virtual disk id and seeds the file's other GUIDs.
func WriteVHDX(w io.Writer, src io.ReaderAt, size int64, opts Options) error {
	if size <= 0 {
		// A VHDX's BAT must locate the last payload block, and an empty
		// disk has none.
		return fmt.Errorf("vhdx: size %d: a VHDX must hold at least one block", size)
	}
	vsize := VirtualSize(size)
	if vsize > xMaxSize {
		return fmt.Errorf("vhdx: %d bytes exceed the format's 64 TiB", size)
	}
	data, err := nonZeroBlocks(src, size, xBlockSize)
	if err != nil {
		return err
	}

	blocks := vsize / xBlockSize
	entries := blocks + (blocks-1)/xChunkRatio
	batLen := ceilDiv(entries*8, mib) * mib
	dataOff := int64(xBATOffset) + batLen

	head := make([]byte, xBATOffset)
	xFileIdentifier(head[:xHeaderSection])
	// Two identical headers but for the sequence number: the higher one
	// is current, and a reader that finds one corrupt falls back to the
	// other. A zero log GUID says the log is empty, nothing to replay.
	fileWrite, dataWrite := derivedGUID(opts.UUID, "file-write"), derivedGUID(opts.UUID, "data-write")
	for i, seq := range []uint64{1, 2} {
		h := head[(1+i)*xHeaderSection:][:xHeaderSize]
		copy(h, "head")
		le.PutUint64(h[8:], seq)
		copy(h[16:], fileWrite[:])
		copy(h[32:], dataWrite[:])
		le.PutUint16(h[64:], 0) // log version
		le.PutUint16(h[66:], 1) // format version
		le.PutUint32(h[68:], xLogLength)
		le.PutUint64(h[72:], xLogOffset)
		le.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
	}
	for _, at := range []int{3 * xHeaderSection, 4 * xHeaderSection} {
		xRegionTable(head[at:][:xHeaderSection], batLen)
	}
	xMetadata(head[xMetaOffset:][:xMetaLength], vsize, msGUIDFromUUID(opts.UUID))

	bat := make([]byte, batLen)
	for i := int64(0); i < blocks; i++ {
		le.PutUint64(bat[xBATIndex(i)*8:], xBlockZero)
	}
	for n, b := range data {
		off := dataOff + int64(n)*xBlockSize
		le.PutUint64(bat[xBATIndex(b)*8:], uint64(off/mib)<<20|xBlockFullyPresent)
	}

	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("vhdx: write headers and metadata: %w", err)
	}
	if _, err := w.Write(bat); err != nil {
		return fmt.Errorf("vhdx: write BAT: %w", err)
	}
	buf := make([]byte, xBlockSize)
	for _, b := range data {
		if err := readBlock(src, size, b*xBlockSize, buf); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("vhdx: write block %d: %w", b, err)
		}
	}
	return nil
}

// xBATIndex is the BAT entry of payload block b: each chunk of
// xChunkRatio payload entries is followed by its sector bitmap entry,
// which a disk without a parent leaves zero (SB_BLOCK_NOT_PRESENT).
func xBATIndex(b int64) int64 { return b + b/xChunkRatio }

func xFileIdentifier(b []byte) {
	copy(b, "vhdxfile")
	for i, u := range utf16.Encode([]rune(xCreator)) {
		le.PutUint16(b[8+2*i:], u)
	}
}

func xRegionTable(b []byte, batLen int64) {
	copy(b, "regi")
	le.PutUint32(b[8:], 2) // entry count
	for i, r := range []struct {
		guid        [16]byte
		off, length uint64
	}{
		{xBATRegion, xBATOffset, uint64(batLen)},
		{xMetadataRegion, xMetaOffset, xMetaLength},
	} {
		e := b[16+32*i:]
		copy(e, r.guid[:])
		le.PutUint64(e[16:], r.off)
		le.PutUint32(e[24:], uint32(r.length))
		le.PutUint32(e[28:], 1) // required: a reader that lacks it must refuse the file
	}
	le.PutUint32(b[4:], crc32.Checksum(b, castagnoli))
}

// xMetadata fills the metadata region: the table, then the five items
// every VHDX must have, packed after it.
func xMetadata(b []byte, vsize int64, diskID [16]byte) {
	copy(b, "metadata")
	items := []struct {
		id    [16]byte
		flags uint32
		data  []byte
	}{
		// Block size, then flags: neither LeaveBlockAllocated (this is a
		// dynamic disk) nor HasParent. Not a property of the virtual disk,
		// so not IsVirtualDisk.
		{xFileParameters, xMetaIsRequired, le.AppendUint32(le.AppendUint32(nil, xBlockSize), 0)},
		{xVirtualSize, xMetaIsVirtualDisk | xMetaIsRequired, le.AppendUint64(nil, uint64(vsize))},
		{xPage83Data, xMetaIsVirtualDisk | xMetaIsRequired, diskID[:]},
		{xLogicalSize, xMetaIsVirtualDisk | xMetaIsRequired, le.AppendUint32(nil, xLogicalSector)},
		{xPhysicalSize, xMetaIsVirtualDisk | xMetaIsRequired, le.AppendUint32(nil, xPhysicalSector)},
	}
	le.PutUint16(b[10:], uint16(len(items)))
	off := xMetaItems
	for i, it := range items {
		e := b[32+32*i:]
		copy(e, it.id[:])
		le.PutUint32(e[16:], uint32(off))
		le.PutUint32(e[20:], uint32(len(it.data)))
		le.PutUint32(e[24:], it.flags)
		off += copy(b[off:], it.data)
	}
}

// msGUID encodes a GUID in its textual form the way VHDX stores GUIDs:
// the Windows GUID struct, whose first three fields are little-endian.
func msGUID(s string) [16]byte {
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		panic("vhd: bad GUID literal " + s)
	}
	return msGUIDFromUUID([16]byte(raw))
}

// msGUIDFromUUID converts a UUID in RFC 9562 byte order (the order
// Options.UUID and Go's uuid packages use) to the Windows layout, so
// Hyper-V shows the disk id as the same text.
func msGUIDFromUUID(u [16]byte) [16]byte {
	g := u
	g[0], g[1], g[2], g[3] = u[3], u[2], u[1], u[0]
	g[4], g[5] = u[5], u[4]
	g[6], g[7] = u[7], u[6]
	return g
}

// derivedGUID is a GUID that follows from the disk id, for the fields the
// spec wants fresh on every file write: a version 8 (custom) UUID from a
// hash, so two files from the same image agree and differ from others.
func derivedGUID(id [16]byte, label string) [16]byte {
	h := sha256.Sum256(append([]byte("keel-vhdx\x00"+label+"\x00"), id[:]...))
	var u [16]byte
	copy(u[:], h[:])
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return msGUIDFromUUID(u)
}
