// Package iso9660 writes ISO 9660 images with El Torito boot entries, in one
// sequential pass, and reads their directories and boot catalogs back.
//
// Everything but file contents is laid out before the first byte is written,
// so the writer streams. Names are ISO 9660 level 2 (upper case, digits, '_'
// and one '.', at most 30 characters, longer names shortened with a hash,
// ";1" versions); there is no Rock Ridge
// or Joliet. All timestamps are Options.Epoch. The first 32 KiB (the system
// area) are zero unless Options.SystemArea fills them, e.g. with an
// isohybrid MBR.
package iso9660

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/keelos/keel/internal/fstree"
)

// SectorSize is the ISO 9660 logical block size.
const SectorSize = 2048

// Options describe the image.
type Options struct {
	VolumeID string // d-characters, up to 32
	// Files are the regular files and directories of the image.
	Files fstree.Source
	// EFIBootImage is the path of a file in Files holding a FAT image: it
	// becomes a no-emulation El Torito entry for platform 0xEF.
	EFIBootImage string
	// BIOSBootImage is the path of a no-emulation x86 boot file (isolinux.bin).
	BIOSBootImage string
	// BootInfoTable patches the El Torito boot info table into the BIOS
	// boot file, as isolinux expects (mkisofs -boot-info-table).
	BootInfoTable bool
	// BIOSLoadSectors is how many 512-byte sectors the BIOS loads; 0 means 4.
	BIOSLoadSectors uint16
	// SystemArea fills the first bytes of the image (up to 32 KiB).
	SystemArea []byte
	// Hybrid, when set, replaces SystemArea with an isohybrid MBR so the
	// image also boots as a disk (a USB stick), and pads it to a MiB.
	Hybrid *Hybrid
	Epoch  time.Time
}

// Hybrid describes the isohybrid MBR, as syslinux's isohybrid writes it:
// BIOSes run the MBR code, which loads the BIOS boot file (it must be an
// isohybrid-capable isolinux.bin); EFI firmware finds the EFI boot image
// through an MBR partition of type 0xEF.
type Hybrid struct {
	MBR []byte // syslinux's isohdpfx.bin: up to 432 bytes of boot code
	ID  uint32 // the MBR disk signature; derive it from the content
}

const (
	systemAreaSectors = 16
	maxName           = 30
)

// dir is one directory of the image.
type dir struct {
	isoName  string // ISO identifier; "" for the root
	parent   *dir
	num      int // path table number, 1-based
	dirs     []*dir
	files    []*file
	lba      uint32
	size     uint32 // bytes, whole sectors
	children map[string]bool
}

type file struct {
	e       *fstree.Entry
	Path    string // cleaned
	Size    int64
	isoName string
	lba     uint32
}

type image struct {
	opts       Options
	root       *dir
	dirs       []*dir // path table order
	files      []*file
	byPath     map[string]*file
	bootCat    uint32
	pathL      uint32
	pathM      uint32
	pathSize   uint32
	total      uint32
	efi, bios  *file
	biosData   []byte
	descriptor int // sectors of volume descriptors
}

// Write writes the image described by opts on w.
func Write(w io.Writer, opts Options) error {
	img, err := plan(opts)
	if err != nil {
		return err
	}
	return img.write(w)
}

func mapName(name string, isDir bool) (string, error) {
	up := strings.ToUpper(name)
	var b strings.Builder
	dot := -1
	if !isDir {
		dot = strings.LastIndexByte(up, '.')
	}
	for i, r := range up {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case i == dot:
			b.WriteByte('.')
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > maxName {
		// Shorten deterministically, keeping the extension and a hash of
		// the full name so that long siblings stay apart.
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i >= 0 && !isDir && len(s)-i <= 10 {
			ext = s[i:]
		}
		sum := sha256.Sum256([]byte(name))
		s = fmt.Sprintf("%s_%X%s", s[:maxName-len(ext)-7], sum[:3], ext)
	}
	if !isDir {
		if dot < 0 {
			s += "."
		}
		s += ";1"
	}
	return s, nil
}

func plan(opts Options) (*image, error) {
	if len(opts.VolumeID) > 32 {
		return nil, fmt.Errorf("iso9660: volume id %q longer than 32 characters", opts.VolumeID)
	}
	if len(opts.SystemArea) > systemAreaSectors*SectorSize {
		return nil, fmt.Errorf("iso9660: system area of %d bytes exceeds 32 KiB", len(opts.SystemArea))
	}
	if opts.Epoch.IsZero() {
		opts.Epoch = time.Unix(0, 0)
	}
	if y := opts.Epoch.UTC().Year(); y < 1970 || y > 2155 {
		return nil, fmt.Errorf("iso9660: epoch year %d outside what directory records hold", y)
	}
	img := &image{opts: opts, byPath: map[string]*file{}}
	img.root = &dir{children: map[string]bool{}}
	dirsByPath := map[string]*dir{"": img.root}
	var mkdir func(p string) (*dir, error)
	mkdir = func(p string) (*dir, error) {
		if d, ok := dirsByPath[p]; ok {
			return d, nil
		}
		parentPath := path.Dir(p)
		if parentPath == "." {
			parentPath = ""
		}
		parent, err := mkdir(parentPath)
		if err != nil {
			return nil, err
		}
		name, err := mapName(path.Base(p), true)
		if err != nil {
			return nil, err
		}
		if parent.children[name] {
			return nil, fmt.Errorf("iso9660: %s clashes with another name as %s", p, name)
		}
		parent.children[name] = true
		d := &dir{isoName: name, parent: parent, children: map[string]bool{}}
		parent.dirs = append(parent.dirs, d)
		dirsByPath[p] = d
		return d, nil
	}
	var entries []*fstree.Entry
	if opts.Files != nil {
		entries = opts.Files.Entries()
	}
	for _, f := range entries {
		p := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("iso9660: empty file path")
		}
		if f.Mode.IsDir() {
			if _, err := mkdir(p); err != nil {
				return nil, err
			}
			continue
		}
		if !f.Mode.IsRegular() {
			return nil, fmt.Errorf("iso9660: %s: a %v, but the image holds only files and directories", p, f.Mode.Type())
		}
		if f.Size < 0 || f.Size > 0xffffffff {
			return nil, fmt.Errorf("iso9660: %s: size %d needs multi-extent files, not supported", p, f.Size)
		}
		dp := path.Dir(p)
		if dp == "." {
			dp = ""
		}
		d, err := mkdir(dp)
		if err != nil {
			return nil, err
		}
		name, err := mapName(path.Base(p), false)
		if err != nil {
			return nil, err
		}
		if d.children[name] {
			return nil, fmt.Errorf("iso9660: %s clashes with another name as %s", p, name)
		}
		d.children[name] = true
		fl := &file{e: f, Path: p, Size: f.Size, isoName: name}
		d.files = append(d.files, fl)
		img.byPath[p] = fl
	}

	// Path table order: breadth first, children by name.
	img.dirs = []*dir{img.root}
	for i := 0; i < len(img.dirs); i++ {
		d := img.dirs[i]
		d.num = i + 1
		slices.SortFunc(d.dirs, func(a, b *dir) int { return strings.Compare(a.isoName, b.isoName) })
		slices.SortFunc(d.files, func(a, b *file) int { return strings.Compare(a.isoName, b.isoName) })
		img.dirs = append(img.dirs, d.dirs...)
		img.files = append(img.files, d.files...)
	}
	if len(img.dirs) > 0xffff {
		return nil, fmt.Errorf("iso9660: %d directories exceed the path table's limit", len(img.dirs))
	}

	var err error
	if opts.EFIBootImage != "" {
		if img.efi, err = img.lookup(opts.EFIBootImage); err != nil {
			return nil, err
		}
	}
	if opts.BIOSBootImage != "" {
		if img.bios, err = img.lookup(opts.BIOSBootImage); err != nil {
			return nil, err
		}
	}
	boot := img.efi != nil || img.bios != nil

	lba := uint32(systemAreaSectors)
	img.descriptor = 2 // primary + terminator
	if boot {
		img.descriptor++
	}
	lba += uint32(img.descriptor)
	if boot {
		img.bootCat = lba
		lba++
	}
	for _, d := range img.dirs {
		img.pathSize += uint32(8 + len(d.ident()) + len(d.ident())%2)
	}
	img.pathL = lba
	lba += sectors(int64(img.pathSize))
	img.pathM = lba
	lba += sectors(int64(img.pathSize))
	for _, d := range img.dirs {
		d.lba = lba
		d.size = d.extentSize()
		lba += d.size / SectorSize
	}
	for _, f := range img.files {
		if f.Size == 0 {
			continue
		}
		f.lba = lba
		lba += sectors(f.Size)
	}
	img.total = lba
	if opts.Hybrid != nil {
		if len(opts.Hybrid.MBR) == 0 || len(opts.Hybrid.MBR) > 432 {
			return nil, fmt.Errorf("iso9660: hybrid MBR code of %d bytes: want 1 to 432", len(opts.Hybrid.MBR))
		}
		if img.bios == nil {
			return nil, fmt.Errorf("iso9660: a hybrid image needs a BIOS boot file")
		}
		// Whole MiB: the MBR's partition ends on a cylinder of 64 heads
		// and 32 sectors, as isohybrid lays it out.
		img.total = (img.total + hybridCylinder/SectorSize - 1) / (hybridCylinder / SectorSize) * (hybridCylinder / SectorSize)
	}
	return img, nil
}

const (
	hybridHeads    = 64
	hybridSectors  = 32
	hybridCylinder = hybridHeads * hybridSectors * 512
)

// hybridMBR is the isohybrid MBR: boot code, the boot file's address in
// 512-byte sectors at 432 (where isohdpfx.bin's code reads it), the disk
// signature, a bootable entry over the whole image and, with an EFI boot
// image, a type 0xEF entry over it. The whole-image entry has type 0, as
// xorriso writes it: UEFI firmware rejects overlapping MBR partitions but
// skips empty ones, and the BIOS code does not look at types.
func (img *image) hybridMBR() []byte {
	h := img.opts.Hybrid
	mbr := make([]byte, 512)
	copy(mbr, h.MBR)
	le := binary.LittleEndian
	le.PutUint32(mbr[432:], img.bios.lba*4)
	le.PutUint32(mbr[440:], h.ID)
	sectors := img.total * (SectorSize / 512)
	cylinders := sectors * 512 / hybridCylinder
	e := mbr[446:]
	e[0] = 0x80
	e[1], e[2], e[3] = 0, 1, 0 // CHS of LBA 0
	e[4] = 0x00
	e[5] = hybridHeads - 1
	e[6] = byte(hybridSectors | ((cylinders-1)&0x300)>>2)
	e[7] = byte(cylinders - 1)
	le.PutUint32(e[8:], 0)
	le.PutUint32(e[12:], sectors)
	if img.efi != nil {
		e := mbr[462:]
		e[4] = 0xef
		// CHS is meaningless this far in; the LBA fields are what count.
		e[1], e[2], e[3], e[5], e[6], e[7] = 0xfe, 0xff, 0xff, 0xfe, 0xff, 0xff
		le.PutUint32(e[8:], img.efi.lba*4)
		le.PutUint32(e[12:], uint32((img.efi.Size+511)/512))
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	return mbr
}

func (img *image) lookup(p string) (*file, error) {
	f, ok := img.byPath[strings.TrimPrefix(path.Clean("/"+p), "/")]
	if !ok {
		return nil, fmt.Errorf("iso9660: boot image %s is not among the files", p)
	}
	if f.Size == 0 {
		return nil, fmt.Errorf("iso9660: boot image %s is empty", p)
	}
	return f, nil
}

func sectors(n int64) uint32 { return uint32((n + SectorSize - 1) / SectorSize) }

func (d *dir) ident() string {
	if d.parent == nil {
		return "\x00"
	}
	return d.isoName
}

func recordLen(name string) int {
	n := 33 + len(name)
	return n + n%2
}

// extentSize lays the records out: a record never crosses a sector.
func (d *dir) extentSize() uint32 {
	off := 0
	add := func(n int) {
		if off%SectorSize+n > SectorSize {
			off = (off/SectorSize + 1) * SectorSize
		}
		off += n
	}
	add(34)
	add(34)
	for _, c := range d.dirs {
		add(recordLen(c.isoName))
	}
	for _, f := range d.files {
		add(recordLen(f.isoName))
	}
	return sectors(int64(off)) * SectorSize
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func (img *image) recTime() [7]byte {
	t := img.opts.Epoch.UTC()
	return [7]byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

func (img *image) record(name string, lba, size uint32, isDir bool) []byte {
	r := make([]byte, recordLen(name))
	r[0] = byte(len(r))
	both32(r[2:], lba)
	both32(r[10:], size)
	t := img.recTime()
	copy(r[18:25], t[:])
	if isDir {
		r[25] = 2
	}
	both16(r[28:], 1)
	r[32] = byte(len(name))
	copy(r[33:], name)
	return r
}

func (img *image) dirExtent(d *dir) []byte {
	buf := make([]byte, d.size)
	off := 0
	put := func(r []byte) {
		if off%SectorSize+len(r) > SectorSize {
			off = (off/SectorSize + 1) * SectorSize
		}
		copy(buf[off:], r)
		off += len(r)
	}
	parent := d.parent
	if parent == nil {
		parent = d
	}
	put(img.record("\x00", d.lba, d.size, true))
	put(img.record("\x01", parent.lba, parent.size, true))
	for _, c := range d.dirs {
		put(img.record(c.isoName, c.lba, c.size, true))
	}
	for _, f := range d.files {
		put(img.record(f.isoName, f.lba, uint32(f.Size), false))
	}
	return buf
}

func (img *image) pathTable(bigEndian bool) []byte {
	buf := make([]byte, sectors(int64(img.pathSize))*SectorSize)
	off := 0
	for _, d := range img.dirs {
		id := d.ident()
		buf[off] = byte(len(id))
		parent := 1
		if d.parent != nil {
			parent = d.parent.num
		}
		if bigEndian {
			binary.BigEndian.PutUint32(buf[off+2:], d.lba)
			binary.BigEndian.PutUint16(buf[off+6:], uint16(parent))
		} else {
			binary.LittleEndian.PutUint32(buf[off+2:], d.lba)
			binary.LittleEndian.PutUint16(buf[off+6:], uint16(parent))
		}
		copy(buf[off+8:], id)
		off += 8 + len(id) + len(id)%2
	}
	return buf
}

func padded(s string, n int) []byte {
	b := bytes.Repeat([]byte{' '}, n)
	copy(b, s)
	return b
}

func (img *image) decTime() []byte {
	t := img.opts.Epoch.UTC()
	b := []byte(fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	return append(b, 0)
}

func (img *image) primary() []byte {
	b := make([]byte, SectorSize)
	b[0] = 1
	copy(b[1:], "CD001")
	b[6] = 1
	copy(b[8:40], padded("LINUX", 32))
	copy(b[40:72], padded(strings.ToUpper(img.opts.VolumeID), 32))
	both32(b[80:], img.total)
	both16(b[120:], 1)
	both16(b[124:], 1)
	both16(b[128:], SectorSize)
	both32(b[132:], img.pathSize)
	binary.LittleEndian.PutUint32(b[140:], img.pathL)
	binary.BigEndian.PutUint32(b[148:], img.pathM)
	copy(b[156:190], img.record("\x00", img.root.lba, img.root.size, true))
	copy(b[190:318], padded("", 128))
	copy(b[318:446], padded("", 128))
	copy(b[446:574], padded("", 128))
	copy(b[574:702], padded("KEEL", 128))
	copy(b[702:813], padded("", 111))
	dt := img.decTime()
	copy(b[813:], dt)
	copy(b[830:], dt)
	never := append(bytes.Repeat([]byte{'0'}, 16), 0)
	copy(b[847:], never)
	copy(b[864:], dt)
	b[881] = 1
	return b
}

func (img *image) bootRecord() []byte {
	b := make([]byte, SectorSize)
	copy(b[1:], "CD001")
	b[6] = 1
	copy(b[7:], "EL TORITO SPECIFICATION")
	binary.LittleEndian.PutUint32(b[71:], img.bootCat)
	return b
}

func terminator() []byte {
	b := make([]byte, SectorSize)
	b[0] = 255
	copy(b[1:], "CD001")
	b[6] = 1
	return b
}

const (
	platformX86 = 0
	platformEFI = 0xef
)

// bootEntry is a bootable, no-emulation initial or section entry.
func bootEntry(b []byte, f *file, count uint16) {
	b[0] = 0x88
	binary.LittleEndian.PutUint16(b[6:], count)
	binary.LittleEndian.PutUint32(b[8:], f.lba)
}

// efiSectors is the 512-byte sector count of the EFI image; images over
// 32 MiB do not fit the 16-bit field, and 0 tells the firmware (EDK2) to
// read up to the end of the medium.
func efiSectors(f *file) uint16 {
	n := (f.Size + 511) / 512
	if n > 0xffff {
		return 0
	}
	return uint16(n)
}

func (img *image) catalog() []byte {
	b := make([]byte, SectorSize)
	b[0] = 1
	if img.bios != nil {
		b[1] = platformX86
	} else {
		b[1] = platformEFI
	}
	b[30], b[31] = 0x55, 0xaa
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(b[i:])
	}
	binary.LittleEndian.PutUint16(b[28:], -sum)
	if img.bios == nil {
		bootEntry(b[32:], img.efi, efiSectors(img.efi))
		return b
	}
	load := img.opts.BIOSLoadSectors
	if load == 0 {
		load = 4
	}
	bootEntry(b[32:], img.bios, load)
	if img.efi != nil {
		b[64] = 0x91 // final section header
		b[65] = platformEFI
		binary.LittleEndian.PutUint16(b[66:], 1)
		bootEntry(b[96:], img.efi, efiSectors(img.efi))
	}
	return b
}

// patchBootInfo writes the boot info table at offset 8 of a BIOS boot file.
func (img *image) patchBootInfo(data []byte) error {
	if len(data) < 64 {
		return fmt.Errorf("iso9660: BIOS boot image of %d bytes is too small for a boot info table", len(data))
	}
	var sum uint32
	for i := 64; i+4 <= len(data); i += 4 {
		sum += binary.LittleEndian.Uint32(data[i:])
	}
	if r := len(data) % 4; r != 0 {
		var last [4]byte
		copy(last[:], data[len(data)-r:])
		sum += binary.LittleEndian.Uint32(last[:])
	}
	le := binary.LittleEndian
	le.PutUint32(data[8:], systemAreaSectors)
	le.PutUint32(data[12:], img.bios.lba)
	le.PutUint32(data[16:], uint32(len(data)))
	le.PutUint32(data[20:], sum)
	clear(data[24:64])
	return nil
}

type countingWriter struct {
	w   io.Writer
	off int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.off += int64(n)
	return n, err
}

func (c *countingWriter) padTo(lba uint32) error {
	want := int64(lba) * SectorSize
	if c.off > want {
		return fmt.Errorf("iso9660: layout overrun at %d, expected %d", c.off, want)
	}
	_, err := io.CopyN(c, zeroReader{}, want-c.off)
	return err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func (img *image) write(w io.Writer) error {
	cw := &countingWriter{w: w}
	if img.bios != nil && img.opts.BootInfoTable {
		rc, err := img.opts.Files.Open(img.bios.e)
		if err != nil {
			return fmt.Errorf("iso9660: open %s: %w", img.bios.Path, err)
		}
		img.biosData, err = io.ReadAll(io.LimitReader(rc, img.bios.Size+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("iso9660: read %s: %w", img.bios.Path, err)
		}
		if int64(len(img.biosData)) != img.bios.Size {
			return fmt.Errorf("iso9660: %s: got %d bytes, expected %d", img.bios.Path, len(img.biosData), img.bios.Size)
		}
		if err := img.patchBootInfo(img.biosData); err != nil {
			return err
		}
	}
	systemArea := img.opts.SystemArea
	if img.opts.Hybrid != nil {
		systemArea = img.hybridMBR()
	}
	if err := cw.write(systemArea); err != nil {
		return err
	}
	if err := cw.padTo(systemAreaSectors); err != nil {
		return wrap(err)
	}
	meta := [][]byte{img.primary()}
	if img.bootCat != 0 {
		meta = append(meta, img.bootRecord())
	}
	meta = append(meta, terminator())
	if img.bootCat != 0 {
		meta = append(meta, img.catalog())
	}
	meta = append(meta, img.pathTable(false), img.pathTable(true))
	for _, d := range img.dirs {
		meta = append(meta, img.dirExtent(d))
	}
	for _, m := range meta {
		if err := cw.write(m); err != nil {
			return err
		}
	}
	for _, f := range img.files {
		if f.Size == 0 {
			continue
		}
		if err := cw.padTo(f.lba); err != nil {
			return wrap(err)
		}
		if err := img.copyFile(cw, f); err != nil {
			return err
		}
	}
	return wrap(cw.padTo(img.total))
}

func wrap(err error) error {
	if err != nil {
		return fmt.Errorf("iso9660: write: %w", err)
	}
	return nil
}

func (c *countingWriter) write(b []byte) error {
	_, err := c.Write(b)
	return wrap(err)
}

func (img *image) copyFile(cw *countingWriter, f *file) error {
	if f == img.bios && img.biosData != nil {
		return cw.write(img.biosData)
	}
	rc, err := img.opts.Files.Open(f.e)
	if err != nil {
		return fmt.Errorf("iso9660: open %s: %w", f.Path, err)
	}
	defer rc.Close()
	n, err := io.Copy(cw, io.LimitReader(rc, f.Size))
	if err != nil {
		return fmt.Errorf("iso9660: copy %s: %w", f.Path, err)
	}
	if n != f.Size {
		return fmt.Errorf("iso9660: %s: got %d bytes, expected %d", f.Path, n, f.Size)
	}
	return nil
}
