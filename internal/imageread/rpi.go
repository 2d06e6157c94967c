package imageread

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/keelos/keel/internal/fat"
	"github.com/keelos/keel/internal/format"
)

// isRPi reports whether head (the first sector at least) is an MBR, not
// GPT-protective, whose first partition is FAT32 with LBA (type 0x0c), as
// keel's rpi images are.
func isRPi(head []byte) bool {
	return len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa && head[446+4] == 0x0c &&
		allZero(head[:440]) // no boot code: the Pi's boot ROM reads the table only
}

// rpi finds the root of a Raspberry Pi disk: initrd.img, which config.txt
// names, on the FAT32 boot partition.
func (im *Image) rpi(r io.ReaderAt, size int64) error {
	var mbr [512]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil {
		return fmt.Errorf("MBR: %w", err)
	}
	e := mbr[446:462]
	start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
	n := int64(binary.LittleEndian.Uint32(e[12:])) * 512
	if start <= 0 || n <= 0 || start+n > size {
		return fmt.Errorf("MBR: partition 1 (%d+%d) outside the %d-byte disk", start, n, size)
	}
	fsys, err := fat.Open(io.NewSectionReader(r, start, n), n)
	if err != nil {
		return err
	}
	const initrdPath = "initrd.img"
	initrd, err := fsys.ReadFile(initrdPath)
	if err != nil {
		return errors.Join(fmt.Errorf("FAT: no %s on the Raspberry Pi boot partition", initrdPath), err)
	}
	im.Format = format.RPi
	im.layer("MBR partition 1 (FAT32 LBA)")
	im.layer("FAT " + initrdPath)
	return im.initramfs(io.NewSectionReader(bytes.NewReader(initrd), 0, int64(len(initrd))), initrdPath)
}
