// Package blockdev reads what a block device (or an image file) holds by
// its magic numbers and labels, and lists the machine's block devices from
// sysfs. It reads the bytes itself so the packages that use it need no
// blkid and no libraries.
package blockdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Kind names what was found at the start of a device.
type Kind string

const (
	Empty    Kind = ""         // all zeros in the probed area
	Ext4     Kind = "ext4"     // ext2/3/4 (one superblock format)
	XFS      Kind = "xfs"      //
	Btrfs    Kind = "btrfs"    //
	VFAT     Kind = "vfat"     //
	ISO9660  Kind = "iso9660"  //
	GPT      Kind = "gpt"      // a GUID partition table
	MBR      Kind = "mbr"      // a DOS partition table (0x55AA and partition entries)
	Squashfs Kind = "squashfs" //
	Swap     Kind = "swap"     //
	Unknown  Kind = "unknown"  // non-zero data of no known format
)

// ProbeSize is how much of a device Probe reads: enough for every
// superblock it knows (btrfs sits at 64 KiB, ISO 9660 at 32 KiB), and the
// whole area where leftovers of an old layout would hint at data.
const ProbeSize = 1 << 20

// Result is what Probe found.
type Result struct {
	Kind  Kind
	Label string
}

// ProbeFile opens path read-only and probes it.
func ProbeFile(path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("probe: %w", err)
	}
	defer f.Close()
	return Probe(f)
}

// Probe reads the first ProbeSize bytes of r (less if the device is
// smaller) and reports the filesystem or partition table they hold.
func Probe(r io.ReaderAt) (Result, error) {
	buf := make([]byte, ProbeSize)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, fmt.Errorf("probe: read: %w", err)
	}
	return ProbeBytes(buf[:n]), nil
}

// ProbeBytes is Probe on bytes already read from offset 0.
func ProbeBytes(b []byte) Result {
	at := func(off int, magic []byte) bool {
		return len(b) >= off+len(magic) && bytes.Equal(b[off:off+len(magic)], magic)
	}
	switch {
	case at(512, []byte("EFI PART")) || at(4096, []byte("EFI PART")):
		return Result{Kind: GPT}
	case at(1024+0x38, []byte{0x53, 0xEF}):
		return Result{Kind: Ext4, Label: cstring(b[1024+120 : 1024+136])}
	case at(0, []byte("XFSB")):
		return Result{Kind: XFS, Label: cstring(b[108:120])}
	case at(0x10040, []byte("_BHRfS_M")):
		return Result{Kind: Btrfs, Label: cstring(b[0x1012B : 0x1012B+256])}
	case at(0x8001, []byte("CD001")):
		return Result{Kind: ISO9660, Label: strings.TrimRight(string(b[0x8028:0x8048]), " ")}
	case at(0, []byte("hsqs")):
		return Result{Kind: Squashfs}
	case at(4086, []byte("SWAPSPACE2")):
		return Result{Kind: Swap}
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA {
		switch {
		case at(0x52, []byte("FAT32   ")):
			return Result{Kind: VFAT, Label: fatLabel(b[0x47:0x52])}
		case at(0x36, []byte("FAT1")): // FAT12, FAT16
			return Result{Kind: VFAT, Label: fatLabel(b[0x2B:0x36])}
		case hasMBRPartition(b):
			return Result{Kind: MBR}
		}
	}
	for _, c := range b {
		if c != 0 {
			return Result{Kind: Unknown}
		}
	}
	return Result{Kind: Empty}
}

// hasMBRPartition reports whether one of the four primary entries is used.
func hasMBRPartition(b []byte) bool {
	for i := range 4 {
		e := b[446+16*i : 446+16*(i+1)]
		if e[4] != 0 && binary.LittleEndian.Uint32(e[12:]) != 0 {
			return true
		}
	}
	return false
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// fatLabel trims the space padding; "NO NAME" is mkfs.vfat's "no label".
func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " ")
	if l == "NO NAME" {
		return ""
	}
	return l
}
