// Package erofs writes a file tree as an uncompressed EROFS image, the
// read-only file system Linux (5.4 and later) mounts from a disk
// partition with no decompression cost at all.
//
// The image is reproducible byte for byte: the tree's order decides
// where everything goes and every mtime is one fixed value (the
// superblock's build time, which compact inodes share). The layout is
// mkfs.erofs's uncompressed one: block 0 holds the superblock at 1 KiB,
// then the metadata area (inodes, each followed by its file's tail when
// it fits in the same 4 KiB block: FLAT_INLINE, else FLAT_PLAIN), then
// the data blocks, each file's whole blocks in a row. Directories are
// laid out the same way. Regular files with the same content and
// metadata become one inode with several names (hard links), as in
// keel's initramfs; files that only share content share their whole
// blocks. Extended attributes (user., trusted., security. and POSIX ACLs)
// are stored inline after each inode.
package erofs

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/keelos/keel/internal/fstree"
)

// Options tune Write.
type Options struct {
	// Epoch is every inode's mtime (seconds since 1970).
	Epoch int64
	// UUID is the file system's UUID (blkid shows it); derive it from
	// the content for reproducible images.
	UUID [16]byte
	// Label is the volume name, at most 16 bytes.
	Label string
}

const (
	blockSize   = 4096
	blockBits   = 12
	superOffset = 1024
	superSize   = 128
	magic       = 0xE0F5E1E2
	// nullAddr marks an inode with no data blocks, as mkfs.erofs does.
	nullAddr = 0xffffffff

	compatSBChecksum = 0x1
	compatMTime      = 0x2

	layoutFlatPlain  = 0
	layoutFlatInline = 2

	compactSize  = 32
	extendedSize = 64
	direntSize   = 12
)

// File types of directory entries.
const (
	ftReg     = 1
	ftDir     = 2
	ftChr     = 3
	ftBlk     = 4
	ftFifo    = 5
	ftSock    = 6
	ftSymlink = 7
)

type node struct {
	e        *fstree.Entry // nil for the root
	ft       int
	parent   *node
	children []dirent // directories: every name, "." and ".." included, sorted
	subdirs  uint32
	nlink    uint32

	size     int64    // bytes of data: file content, directory blocks, link target
	dirBlks  [][]int  // directories: the children indices held by each block
	isize    int      // 32 or 64
	xattrs   []byte   // the inline xattr area after the inode, or nil
	layout   int      // layoutFlatPlain or layoutFlatInline
	off      int64    // byte offset of the inode in the image
	nid      uint64   // (off - metadata start) / 32
	ino      uint32   // i_ino, for 32-bit stat
	blkaddr  uint32   // first data block, or nullAddr
	nblocks  uint32   // data blocks the node owns (0 when shared)
	inlineAt int64    // where the inline tail goes (layoutFlatInline)
	blocks   [][]byte // directories: the content, by block (filled once nids are known)
}

type dirent struct {
	name string
	n    *node
}

type linkKey struct {
	digest   string
	mode     fs.FileMode
	uid, gid int
	xattrs   string
}

// Write writes src as an EROFS image through w, from w's offset 0, and
// returns its size (a multiple of 4 KiB).
func Write(w io.WriterAt, src fstree.Source, opts Options) (int64, error) {
	if len(opts.Label) > 16 {
		return 0, fmt.Errorf("erofs: label %q is longer than 16 bytes", opts.Label)
	}
	nodes, err := buildTree(src.Entries())
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if err := n.measure(); err != nil {
			return 0, err
		}
	}
	metaEnd := layoutMeta(nodes)
	dataStart := uint32((metaEnd + blockSize - 1) / blockSize)
	next := dataStart
	owners := map[string]*node{} // content digest → the inode that owns its blocks
	for _, n := range nodes {
		full := uint32(n.size / blockSize)
		own := full
		if n.layout == layoutFlatPlain && n.size%blockSize != 0 {
			own++
		}
		if own == 0 {
			n.blkaddr = nullAddr
			continue
		}
		if n.ft == ftReg && n.e.Digest != "" {
			if o, ok := owners[n.e.Digest]; ok && (n.layout == layoutFlatInline || o.nblocks == own) {
				n.blkaddr = o.blkaddr // the same whole blocks (and tail block)
				continue
			}
			if _, ok := owners[n.e.Digest]; !ok {
				owners[n.e.Digest] = n
			}
		}
		n.blkaddr, n.nblocks = next, own
		next += own
	}
	total := next

	meta := make([]byte, int64(dataStart)*blockSize-superOffset-superSize)
	metaAt := func(off int64) []byte { return meta[off-superOffset-superSize:] }
	for _, n := range nodes {
		if n.ft == ftDir {
			n.fillDir()
		}
	}
	for _, n := range nodes {
		n.writeInode(metaAt(n.off), opts.Epoch)
		if err := n.writeData(w, src, metaAt, owners); err != nil {
			return 0, err
		}
	}

	sb := make([]byte, superSize)
	le := binary.LittleEndian
	le.PutUint32(sb[0:], magic)
	le.PutUint32(sb[8:], compatSBChecksum|compatMTime)
	sb[12] = blockBits
	root := nodes[0]
	if root.nid > 0xffff {
		return 0, errors.New("erofs: root inode beyond nid 65535")
	}
	le.PutUint16(sb[14:], uint16(root.nid))
	le.PutUint64(sb[16:], uint64(len(nodes)))
	le.PutUint64(sb[24:], uint64(opts.Epoch))
	le.PutUint32(sb[36:], total)
	le.PutUint32(sb[40:], 0) // meta_blkaddr: nids count from the image's start
	le.PutUint32(sb[44:], 0) // no shared xattrs
	copy(sb[48:64], opts.UUID[:])
	copy(sb[64:80], opts.Label)
	// The checksum covers the rest of block 0 (superblock and the first
	// inodes) with the checksum field zeroed: Linux's crc32c with seed
	// ~0 and no final inversion, which is Go's Castagnoli CRC inverted.
	first := append(append([]byte{}, sb...), meta[:blockSize-superOffset-superSize]...)
	le.PutUint32(sb[4:], ^crc32.Checksum(first, crc32.MakeTable(crc32.Castagnoli)))

	if _, err := w.WriteAt(sb, superOffset); err != nil {
		return 0, fmt.Errorf("erofs: superblock: %w", err)
	}
	if _, err := w.WriteAt(meta, superOffset+superSize); err != nil {
		return 0, fmt.Errorf("erofs: metadata: %w", err)
	}
	if _, err := w.WriteAt(make([]byte, superOffset), 0); err != nil {
		return 0, fmt.Errorf("erofs: %w", err)
	}
	return int64(total) * blockSize, nil
}

// buildTree turns the entry list into inodes, the root first and then in
// the order of the entries (parents before children).
func buildTree(entries []*fstree.Entry) ([]*node, error) {
	root := &node{ft: ftDir, nlink: 2}
	root.parent = root
	nodes := []*node{root}
	dirs := map[string]*node{"": root}
	links := map[linkKey]*node{}
	for _, e := range entries {
		dir, name := path.Split(e.Path)
		dir = strings.TrimSuffix(dir, "/")
		parent, ok := dirs[dir]
		if !ok || name == "" {
			return nil, fmt.Errorf("erofs: %s: parent directory is not in the tree before it", e.Path)
		}
		if len(name) > 255 {
			return nil, fmt.Errorf("erofs: %s: name longer than 255 bytes", e.Path)
		}
		n := &node{e: e, nlink: 1}
		switch t := e.Mode.Type(); t {
		case fs.ModeDir:
			n.ft, n.parent = ftDir, parent
			dirs[e.Path] = n
			parent.subdirs++
		case 0:
			k := linkKey{e.Digest, e.Mode, e.UID, e.GID, fstree.XattrKey(e.Xattrs)}
			if l, ok := links[k]; ok && e.Digest != "" {
				l.nlink++
				parent.children = append(parent.children, dirent{name, l})
				continue
			}
			links[k] = n
			n.ft = ftReg
		case fs.ModeSymlink:
			n.ft = ftSymlink
			if len(e.Linkname) >= blockSize {
				return nil, fmt.Errorf("erofs: %s: link target longer than %d bytes", e.Path, blockSize-1)
			}
		case fs.ModeDevice:
			n.ft = ftBlk
		case fs.ModeDevice | fs.ModeCharDevice:
			n.ft = ftChr
		case fs.ModeNamedPipe:
			n.ft = ftFifo
		case fs.ModeSocket:
			n.ft = ftSock
		default:
			return nil, fmt.Errorf("erofs: %s: unsupported file type %v", e.Path, t)
		}
		parent.children = append(parent.children, dirent{name, n})
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if n.ft != ftDir {
			continue
		}
		n.nlink = 2 + n.subdirs
		n.children = append(n.children, dirent{".", n}, dirent{"..", n.parent})
		// The kernel looks names up by binary search over the blocks and
		// within each: every name of the directory in byte order.
		sort.SliceStable(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		for i := 1; i < len(n.children); i++ {
			if n.children[i].name == n.children[i-1].name {
				return nil, fmt.Errorf("erofs: %s: duplicate name %q", entryPath(n), n.children[i].name)
			}
		}
	}
	for i, n := range nodes {
		n.ino = uint32(i + 1)
	}
	return nodes, nil
}

func entryPath(n *node) string {
	if n.e == nil {
		return "/"
	}
	return n.e.Path
}

// measure computes the node's data size (for a directory, by packing its
// entries into blocks) and its inode format.
func (n *node) measure() error {
	n.isize = compactSize
	uid, gid := 0, 0
	if n.e != nil {
		uid, gid = n.e.UID, n.e.GID
	}
	if uid < 0 || gid < 0 || int64(uid) > 0xffffffff || int64(gid) > 0xffffffff {
		return fmt.Errorf("erofs: %s: owner %d:%d out of range", entryPath(n), uid, gid)
	}
	switch n.ft {
	case ftReg:
		n.size = n.e.Size
	case ftSymlink:
		n.size = int64(len(n.e.Linkname))
	case ftDir:
		var blk []int
		used := 0
		for i, c := range n.children {
			need := direntSize + len(c.name)
			if used+need > blockSize {
				n.dirBlks = append(n.dirBlks, blk)
				n.size += blockSize
				blk, used = nil, 0
			}
			blk = append(blk, i)
			used += need
		}
		n.dirBlks = append(n.dirBlks, blk)
		n.size += int64(used)
	}
	if uid > 0xffff || gid > 0xffff || n.nlink > 0xffff || n.size > 0xffffffff {
		n.isize = extendedSize
	}
	if n.e != nil {
		x, err := encodeXattrs(n.e.Xattrs)
		if err != nil {
			return fmt.Errorf("erofs: %s: %w", n.e.Path, err)
		}
		if n.isize+len(x) > blockSize/2 {
			return fmt.Errorf("erofs: %s: %d bytes of extended attributes, more than this writer keeps inline", n.e.Path, len(x))
		}
		n.xattrs = x
	}
	return nil
}

// xattrPrefixes are EROFS's name indexes: a name is stored as its index
// and the rest of the name (nothing, for the ACLs).
var xattrPrefixes = []struct {
	prefix string
	index  byte
}{
	{"user.", 1},
	{"system.posix_acl_access", 2},
	{"system.posix_acl_default", 3},
	{"trusted.", 4},
	{"security.", 6},
}

// encodeXattrs lays out the inline xattr area: a 12-byte header (no
// shared xattrs), then each entry (name length, name index, value size,
// name, value) padded to 4 bytes, in name order.
func encodeXattrs(x map[string]string) ([]byte, error) {
	if len(x) == 0 {
		return nil, nil
	}
	b := make([]byte, 12)
	for _, name := range slices.Sorted(maps.Keys(x)) {
		var idx byte
		var suffix string
		for _, p := range xattrPrefixes {
			rest, ok := strings.CutPrefix(name, p.prefix)
			// An ACL's whole name is its prefix; the others need more.
			if ok && (rest == "") == strings.HasPrefix(p.prefix, "system.") {
				idx, suffix = p.index, rest
				break
			}
		}
		v := x[name]
		switch {
		case idx == 0:
			return nil, fmt.Errorf("extended attribute %q: EROFS stores only user., trusted., security. and POSIX ACLs", name)
		case len(suffix) > 255 || len(v) > 0xffff:
			return nil, fmt.Errorf("extended attribute %q: name or value too long", name)
		}
		b = append(b, byte(len(suffix)), idx, 0, 0)
		binary.LittleEndian.PutUint16(b[len(b)-2:], uint16(len(v)))
		b = append(b, suffix...)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b, nil
}

// layoutMeta places the inodes after the superblock, each at a 32-byte
// boundary, and decides which tails are inline: a tail goes right after
// its inode when both fit in one block, even at the cost of skipping to
// the next block, when that wastes less than a data block would. It
// returns the end of the metadata.
func layoutMeta(nodes []*node) int64 {
	off := int64(superOffset + superSize)
	for _, n := range nodes {
		off = alignUp(off, compactSize)
		tail := n.size % blockSize
		inBlock := off % blockSize
		head := int64(n.isize + len(n.xattrs)) // the inode and its xattrs
		if inBlock+head > blockSize {
			off, inBlock = alignUp(off, blockSize), 0 // an inode never crosses a block
		}
		n.layout = layoutFlatPlain
		if tail > 0 && n.ft != ftChr && n.ft != ftBlk && n.ft != ftFifo && n.ft != ftSock {
			switch {
			case inBlock+head+tail <= blockSize:
				n.layout = layoutFlatInline
			case head+tail <= blockSize && blockSize-inBlock < blockSize-tail:
				off = alignUp(off, blockSize)
				n.layout = layoutFlatInline
			}
		}
		n.off = off
		n.nid = uint64(off / compactSize)
		off += head
		if n.layout == layoutFlatInline {
			n.inlineAt = off
			off += tail
		}
	}
	return off
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }

// fillDir writes the directory's blocks, now that every nid is known.
func (n *node) fillDir() {
	le := binary.LittleEndian
	for bi, idx := range n.dirBlks {
		size := blockSize
		if bi == len(n.dirBlks)-1 {
			size = int(n.size - int64(bi)*blockSize)
		}
		b := make([]byte, size)
		nameOff := direntSize * len(idx)
		for k, i := range idx {
			c := n.children[i]
			d := b[k*direntSize:]
			le.PutUint64(d[0:], c.n.nid)
			le.PutUint16(d[8:], uint16(nameOff))
			d[10] = byte(c.n.ft)
			nameOff += copy(b[nameOff:], c.name)
		}
		n.blocks = append(n.blocks, b)
	}
}

// mode is the inode's st_mode: EROFS stores the type bits too.
func (n *node) mode() uint16 {
	if n.e == nil {
		return 0o040755
	}
	u := uint16(fstree.UnixPerm(n.e.Mode))
	switch n.ft {
	case ftDir:
		u |= 0o040000
	case ftReg:
		u |= 0o100000
	case ftSymlink:
		u |= 0o120000
	case ftBlk:
		u |= 0o060000
	case ftChr:
		u |= 0o020000
	case ftFifo:
		u |= 0o010000
	case ftSock:
		u |= 0o140000
	}
	return u
}

func (n *node) writeInode(b []byte, epoch int64) {
	le := binary.LittleEndian
	u := n.blkaddr
	uid, gid := 0, 0
	if n.e != nil {
		uid, gid = n.e.UID, n.e.GID
		if n.ft == ftChr || n.ft == ftBlk {
			// The kernel's new_encode_dev.
			u = n.e.Devminor&0xff | n.e.Devmajor<<8 | (n.e.Devminor&^0xff)<<12
		}
	}
	if len(n.xattrs) > 0 {
		le.PutUint16(b[2:], uint16((len(n.xattrs)-12)/4+1)) // i_xattr_icount
		copy(b[n.isize:], n.xattrs)
	}
	if n.isize == compactSize {
		le.PutUint16(b[0:], uint16(n.layout<<1))
		le.PutUint16(b[4:], n.mode())
		le.PutUint16(b[6:], uint16(n.nlink))
		le.PutUint32(b[8:], uint32(n.size))
		le.PutUint32(b[16:], u)
		le.PutUint32(b[20:], n.ino)
		le.PutUint16(b[24:], uint16(uid))
		le.PutUint16(b[26:], uint16(gid))
		return
	}
	le.PutUint16(b[0:], uint16(n.layout<<1|1))
	le.PutUint16(b[4:], n.mode())
	le.PutUint64(b[8:], uint64(n.size))
	le.PutUint32(b[16:], u)
	le.PutUint32(b[20:], n.ino)
	le.PutUint32(b[24:], uint32(uid))
	le.PutUint32(b[28:], uint32(gid))
	le.PutUint64(b[32:], uint64(epoch))
	le.PutUint32(b[44:], n.nlink)
}

// writeData writes the node's whole blocks (unless another inode with
// the same content owns them), and its tail: inline after the inode, or
// in a block of its own.
func (n *node) writeData(w io.WriterAt, src fstree.Source, metaAt func(int64) []byte, owners map[string]*node) error {
	if n.size == 0 {
		return nil
	}
	tail := n.size % blockSize
	inline := n.layout == layoutFlatInline
	switch n.ft {
	case ftSymlink:
		return n.place(w, []byte(n.e.Linkname), 0, inline, metaAt)
	case ftDir:
		for i, b := range n.blocks {
			if err := n.place(w, b, i, inline && i == len(n.blocks)-1, metaAt); err != nil {
				return err
			}
		}
		return nil
	case ftReg:
	default:
		return nil
	}
	owner := n.nblocks > 0
	if !owner && !inline {
		return nil // all of it is in another inode's blocks
	}
	rc, err := src.Open(n.e)
	if err != nil {
		return fmt.Errorf("erofs: open %s: %w", n.e.Path, err)
	}
	defer rc.Close()
	h := sha256.New()
	r := io.TeeReader(rc, h)
	full := n.size - tail
	if owner {
		if _, err := io.CopyN(io.NewOffsetWriter(w, int64(n.blkaddr)*blockSize), r, full); err != nil {
			return fmt.Errorf("erofs: %s: %w", n.e.Path, err)
		}
	} else if _, err := io.CopyN(io.Discard, r, full); err != nil {
		return fmt.Errorf("erofs: %s: %w", n.e.Path, err)
	}
	if tail > 0 {
		b := make([]byte, tail)
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("erofs: %s: %w", n.e.Path, err)
		}
		if err := n.place(w, b, int(full/blockSize), inline, metaAt); err != nil {
			return err
		}
	}
	// The file must end where the entry says and hold what its digest
	// names: a changed store would silently corrupt the image.
	if k, _ := rc.Read(make([]byte, 1)); k != 0 {
		return fmt.Errorf("erofs: %s: longer than its entry's %d bytes", n.e.Path, n.size)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != n.e.Digest {
		return fmt.Errorf("erofs: %s: content hashes to %s, entry says %s", n.e.Path, got, n.e.Digest)
	}
	return nil
}

// place writes one block's worth of the node's data: inline after the
// inode, or as block i of its data (padded with zeros to the block).
func (n *node) place(w io.WriterAt, b []byte, i int, inline bool, metaAt func(int64) []byte) error {
	if inline {
		copy(metaAt(n.inlineAt), b)
		return nil
	}
	blk := make([]byte, blockSize)
	copy(blk, b)
	if _, err := w.WriteAt(blk, (int64(n.blkaddr)+int64(i))*blockSize); err != nil {
		return fmt.Errorf("erofs: %s: %w", entryPath(n), err)
	}
	return nil
}
