// Package squashfs writes a file tree as a squashfs 4.0 image, the
// read-only root file system Linux mounts from a disk partition.
//
// The image is reproducible byte for byte: the tree's order decides where
// everything goes, every mtime is one fixed value, ids are numbered in the
// order they are first met, and compression runs on a fixed encoder
// configuration whatever the machine (blocks are compressed in parallel,
// but each one independently, so the result does not depend on the number
// of workers). File data streams from the Source to the output in 128 KiB
// blocks; only the inode and directory tables are held in memory.
//
// What is written: directories, regular files, symlinks, device nodes and
// fifos, with mode, uid and gid. Regular files with the same content and
// metadata become one inode with several names (hard links), as in keel's
// initramfs; files that only share content share their data blocks. All
// zero blocks are stored as holes. Extended attributes in the user.,
// trusted. and security. namespaces are kept (the only ones Linux's
// squashfs reads); identical sets are stored once. There are no fragment
// blocks (each file's tail is a block of its own: mksquashfs's fragments
// save 0.2% on keel's reference image) and no NFS export table. Long
// directories carry an index, as mksquashfs writes it, so lookups skip
// ahead instead of reading the listing from its start.
package squashfs

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/keelos/keel/internal/fstree"
)

// Compression selects the codec of data and metadata blocks.
type Compression int

const (
	// Zstd is the default: Linux has read zstd squashfs since 4.14, and it
	// unpacks several times faster than gzip, which matters most when the
	// machine runs under emulation.
	Zstd Compression = iota
	// Gzip is zlib, readable by every squashfs-capable kernel.
	Gzip
)

func (c Compression) String() string {
	switch c {
	case Zstd:
		return "zstd"
	case Gzip:
		return "gzip"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Options tune Write.
type Options struct {
	Compression Compression
	// BlockSize is the data block size, a power of two from 4 KiB to
	// 1 MiB; 0 means 128 KiB, mksquashfs's default.
	BlockSize int
	// Epoch is every inode's mtime and the image's creation time
	// (seconds since 1970).
	Epoch int64
	// Workers compress data blocks in parallel; 0 means GOMAXPROCS. The
	// bytes written do not depend on it.
	Workers int
}

const (
	magic        = 0x73717368
	metaSize     = 8192
	superSize    = 96
	invalidBlock = ^uint64(0)
	invalidFrag  = ^uint32(0)
	// padTo is the multiple the image is padded to, as mksquashfs does:
	// loop devices and most block devices work in 4 KiB units.
	padTo = 4096

	flagNoFragments = 0x0010
	flagDuplicates  = 0x0040
	flagNoXattrs    = 0x0200

	noXattr = ^uint32(0) // an extended inode's xattr index: none

	compZlib = 1
	compZstd = 6

	// dataUncompressed marks a data block size word of a block stored raw.
	dataUncompressed = 1 << 24
	// metaUncompressed marks a metadata block header of a block stored raw.
	metaUncompressed = 0x8000
)

// Inode types: basic ones, and the extended ones (basic+7) used when a
// basic inode cannot hold a value (hard links, large files, big dirs).
const (
	typeDir     = 1
	typeFile    = 2
	typeSymlink = 3
	typeBlock   = 4
	typeChar    = 5
	typeFifo    = 6
	typeSocket  = 7
	typeLDir    = 8
	typeLFile   = 9
	// typeLSymlink and the rest are the extended forms of the others,
	// which only an inode with xattrs needs.
	typeExtended = 7
)

// node is one inode of the image; names points at it from directories.
type node struct {
	e        *fstree.Entry // nil for the root
	typ      int           // basic type
	children []dirent      // directories, in name order
	parent   *node
	nlink    uint32
	ino      uint32
	ref      uint64 // inode table block << 16 | offset, once written
	written  bool
	subdirs  uint32
}

type dirent struct {
	name string
	n    *node
}

// linkKey groups files that become one inode: same content and metadata.
type linkKey struct {
	digest   string
	mode     fs.FileMode
	uid, gid int
	xattrs   string
}

// fileData is where a content's blocks went.
type fileData struct {
	start  uint64
	sizes  []uint32
	size   int64
	filled bool
}

// Write writes src as a squashfs image on w, starting at w's offset 0
// (the superblock is written last, with a seek back to the start). It
// returns the image size, a multiple of 4 KiB.
func Write(w io.WriteSeeker, src fstree.Source, opts Options) (int64, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = 128 << 10
	}
	if opts.BlockSize < 4096 || opts.BlockSize > 1<<20 || opts.BlockSize&(opts.BlockSize-1) != 0 {
		return 0, fmt.Errorf("squashfs: block size %d is not a power of two from 4 KiB to 1 MiB", opts.BlockSize)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	comp, err := newCompressor(opts.Compression, opts.BlockSize)
	if err != nil {
		return 0, err
	}
	root, files, count, err := buildTree(src.Entries())
	if err != nil {
		return 0, err
	}
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	ow := &offsetWriter{w: w}
	if err := ow.write(make([]byte, superSize)); err != nil {
		return 0, err
	}
	data, err := writeData(ow, src, files, comp, opts)
	if err != nil {
		return 0, err
	}

	t := &tables{
		inodes: newMetaWriter(comp),
		dirs:   newMetaWriter(comp),
		ids:    map[uint32]uint16{},
		xattrs: map[string]uint32{},
		data:   data,
		epoch:  uint32(opts.Epoch),
		block:  opts.BlockSize,
		total:  count,
	}
	number(root, new(uint32))
	if err := t.writeDir(root); err != nil {
		return 0, err
	}
	inodeTable, err := t.inodes.finish()
	if err != nil {
		return 0, err
	}
	dirTable, err := t.dirs.finish()
	if err != nil {
		return 0, err
	}
	sb := superblock{
		inodes:    count,
		mkfsTime:  uint32(opts.Epoch),
		blockSize: uint32(opts.BlockSize),
		comp:      comp.id,
		flags:     flagNoFragments | flagNoXattrs | flagDuplicates,
		noIDs:     uint16(len(t.idList)),
		rootInode: root.ref,
		xattrs:    invalidBlock,
		fragments: invalidBlock,
		lookup:    invalidBlock,
	}
	for sb.blockLog = 0; 1<<sb.blockLog < opts.BlockSize; sb.blockLog++ {
	}
	sb.inodeTable = ow.off
	if err := ow.write(inodeTable); err != nil {
		return 0, err
	}
	sb.dirTable = ow.off
	if err := ow.write(dirTable); err != nil {
		return 0, err
	}
	if sb.idTable, err = writeIDTable(ow, comp, t.idList); err != nil {
		return 0, err
	}
	if len(t.xattrSets) > 0 {
		sb.flags &^= flagNoXattrs
		if sb.xattrs, err = writeXattrTables(ow, comp, t.xattrSets); err != nil {
			return 0, err
		}
	}
	sb.bytesUsed = ow.off
	if r := ow.off % padTo; r != 0 {
		if err := ow.write(make([]byte, padTo-r)); err != nil {
			return 0, err
		}
	}
	size := ow.off
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	if _, err := w.Write(sb.bytes()); err != nil {
		return 0, fmt.Errorf("squashfs: superblock: %w", err)
	}
	if _, err := w.Seek(int64(size), io.SeekStart); err != nil {
		return 0, fmt.Errorf("squashfs: %w", err)
	}
	return int64(size), nil
}

// buildTree turns the entry list into inodes. It returns the root, the
// regular file inodes in the order their data is written (the order the
// directory walk meets them), and the number of inodes.
func buildTree(entries []*fstree.Entry) (*node, []*node, uint32, error) {
	root := &node{typ: typeDir}
	dirs := map[string]*node{"": root}
	links := map[linkKey]*node{}
	count := uint32(1)
	for _, e := range entries {
		dir, name := path.Split(e.Path)
		dir = strings.TrimSuffix(dir, "/")
		parent, ok := dirs[dir]
		if !ok || name == "" {
			return nil, nil, 0, fmt.Errorf("squashfs: %s: parent directory is not in the tree before it", e.Path)
		}
		if len(name) > 256 {
			return nil, nil, 0, fmt.Errorf("squashfs: %s: name longer than 256 bytes", e.Path)
		}
		var n *node
		switch t := e.Mode.Type(); {
		case t == fs.ModeDir:
			n = &node{e: e, typ: typeDir, parent: parent}
			dirs[e.Path] = n
			parent.subdirs++
		case t == 0:
			k := linkKey{e.Digest, e.Mode, e.UID, e.GID, fstree.XattrKey(e.Xattrs)}
			if l, ok := links[k]; ok && e.Digest != "" {
				l.nlink++
				parent.children = append(parent.children, dirent{name, l})
				continue
			}
			n = &node{e: e, typ: typeFile}
			links[k] = n
		case t == fs.ModeSymlink:
			n = &node{e: e, typ: typeSymlink}
		case t == fs.ModeDevice:
			n = &node{e: e, typ: typeBlock}
		case t == fs.ModeDevice|fs.ModeCharDevice:
			n = &node{e: e, typ: typeChar}
		case t == fs.ModeNamedPipe:
			n = &node{e: e, typ: typeFifo}
		case t == fs.ModeSocket:
			n = &node{e: e, typ: typeSocket}
		default:
			return nil, nil, 0, fmt.Errorf("squashfs: %s: unsupported file type %v", e.Path, t)
		}
		n.nlink = 1
		count++
		parent.children = append(parent.children, dirent{name, n})
	}
	var files []*node
	seen := map[*node]bool{}
	var walk func(d *node)
	walk = func(d *node) {
		// Names in byte order, as the kernel's lookup expects; Source
		// promises it, this makes sure.
		sort.SliceStable(d.children, func(i, j int) bool { return d.children[i].name < d.children[j].name })
		for _, c := range d.children {
			switch {
			case c.n.typ == typeDir:
				walk(c.n)
			case c.n.typ == typeFile && !seen[c.n]:
				seen[c.n] = true
				files = append(files, c.n)
			}
		}
	}
	walk(root)
	for _, d := range dirs {
		for i := 1; i < len(d.children); i++ {
			if d.children[i].name == d.children[i-1].name {
				return nil, nil, 0, fmt.Errorf("squashfs: %s: duplicate name in directory", path.Join(entryPath(d), d.children[i].name))
			}
		}
	}
	return root, files, count, nil
}

func entryPath(n *node) string {
	if n.e == nil {
		return "/"
	}
	return n.e.Path
}

// offsetWriter counts what it writes.
type offsetWriter struct {
	w   io.Writer
	off uint64
}

func (o *offsetWriter) write(b []byte) error {
	n, err := o.w.Write(b)
	o.off += uint64(n)
	if err != nil {
		return fmt.Errorf("squashfs: write: %w", err)
	}
	return nil
}

// job is one data block on its way through the compressors, in order.
type job struct {
	file int // index in files
	raw  []byte
	zero bool
	out  []byte
	done chan struct{}
	err  error
}

// writeData writes every distinct file content once, in the order of
// files, compressing blocks on opts.Workers goroutines while one writer
// keeps them in order. It returns where each content went, by digest.
func writeData(ow *offsetWriter, src fstree.Source, files []*node, comp *compressor, opts Options) (map[string]*fileData, error) {
	data := map[string]*fileData{}
	var unique []*node
	for _, f := range files {
		if _, ok := data[f.e.Digest]; ok || f.e.Size == 0 {
			continue
		}
		data[f.e.Digest] = &fileData{size: f.e.Size}
		unique = append(unique, f)
	}
	queue := make(chan *job, 4*opts.Workers)
	sem := make(chan struct{}, opts.Workers)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(queue)
		for i, f := range unique {
			if !readBlocks(src, f.e, i, opts.BlockSize, comp, queue, sem, stop) {
				return
			}
		}
	}()
	for j := range queue {
		<-j.done
		if j.err != nil {
			return nil, j.err
		}
		fd := data[unique[j.file].e.Digest]
		if !fd.filled {
			fd.filled, fd.start = true, ow.off
		}
		switch {
		case j.zero:
			fd.sizes = append(fd.sizes, 0)
		case j.out != nil:
			fd.sizes = append(fd.sizes, uint32(len(j.out)))
			if err := ow.write(j.out); err != nil {
				return nil, err
			}
		default:
			fd.sizes = append(fd.sizes, uint32(len(j.raw))|dataUncompressed)
			if err := ow.write(j.raw); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range unique {
		fd := data[f.e.Digest]
		if want := (f.e.Size + int64(opts.BlockSize) - 1) / int64(opts.BlockSize); int64(len(fd.sizes)) != want {
			return nil, fmt.Errorf("squashfs: %s: read %d blocks, expected %d", f.e.Path, len(fd.sizes), want)
		}
	}
	return data, nil
}

// readBlocks queues the blocks of one file, each compressed on its own
// goroutine (at most cap(sem) at once). It reports false when the writer
// has stopped or the file failed (the failure travels in a queued job).
func readBlocks(src fstree.Source, e *fstree.Entry, idx, blockSize int, comp *compressor, queue chan<- *job, sem chan struct{}, stop <-chan struct{}) bool {
	send := func(j *job) bool {
		select {
		case queue <- j:
			return true
		case <-stop:
			return false
		}
	}
	fail := func(err error) bool {
		j := &job{file: idx, err: err, done: make(chan struct{})}
		close(j.done)
		send(j)
		return false
	}
	rc, err := src.Open(e)
	if err != nil {
		return fail(fmt.Errorf("squashfs: open %s: %w", e.Path, err))
	}
	defer rc.Close()
	h := sha256.New()
	remaining := e.Size
	for remaining > 0 {
		n := int(min(remaining, int64(blockSize)))
		buf := make([]byte, n)
		if _, err := io.ReadFull(rc, buf); err != nil {
			return fail(fmt.Errorf("squashfs: read %s: %w", e.Path, err))
		}
		h.Write(buf)
		remaining -= int64(n)
		j := &job{file: idx, raw: buf, done: make(chan struct{})}
		if !send(j) {
			return false
		}
		select {
		case sem <- struct{}{}:
		case <-stop:
			return false
		}
		go func() {
			defer func() { <-sem; close(j.done) }()
			if allZero(j.raw) {
				j.zero = true
				return
			}
			out, err := comp.compress(j.raw)
			if err != nil {
				j.err = fmt.Errorf("squashfs: compress %s: %w", e.Path, err)
				return
			}
			if len(out) < len(j.raw) {
				j.out = out
			}
		}()
	}
	// The file must end where the entry says, and hold what its digest
	// names: a short or changed file would silently corrupt the image.
	if n, _ := rc.Read(make([]byte, 1)); n != 0 {
		return fail(fmt.Errorf("squashfs: %s: longer than its entry's %d bytes", e.Path, e.Size))
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); e.Digest != "" && got != e.Digest {
		return fail(fmt.Errorf("squashfs: %s: content hashes to %s, entry says %s", e.Path, got, e.Digest))
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tables builds the inode and directory tables.
type tables struct {
	inodes, dirs *metaWriter
	ids          map[uint32]uint16
	idList       []uint32
	xattrs       map[string]uint32 // xattr set (xattrKey) → index
	xattrSets    []map[string]string
	data         map[string]*fileData
	epoch        uint32
	block        int
	total        uint32
}

func (t *tables) id(v int) (uint16, error) {
	if v < 0 || int64(v) > 0xffffffff {
		return 0, fmt.Errorf("squashfs: id %d out of range", v)
	}
	if i, ok := t.ids[uint32(v)]; ok {
		return i, nil
	}
	if len(t.idList) >= 0xffff {
		return 0, errors.New("squashfs: more than 65535 distinct uids and gids")
	}
	i := uint16(len(t.idList))
	t.ids[uint32(v)] = i
	t.idList = append(t.idList, uint32(v))
	return i, nil
}

// xattr returns the index of n's xattr set (stored once per distinct
// set), or noXattr.
func (t *tables) xattr(n *node) (uint32, error) {
	if n.e == nil || len(n.e.Xattrs) == 0 {
		return noXattr, nil
	}
	for name := range n.e.Xattrs {
		if _, _, ok := xattrPrefix(name); !ok {
			return 0, fmt.Errorf("squashfs: %s: extended attribute %q: squashfs stores only user., trusted. and security. ones", n.e.Path, name)
		}
	}
	k := fstree.XattrKey(n.e.Xattrs)
	if i, ok := t.xattrs[k]; ok {
		return i, nil
	}
	i := uint32(len(t.xattrSets))
	t.xattrs[k] = i
	t.xattrSets = append(t.xattrSets, n.e.Xattrs)
	return i, nil
}

// number gives inode numbers from 1 in the order writeDir writes the
// inodes, so that a directory knows its parent's number before the
// parent is written.
func number(d *node, next *uint32) {
	for _, c := range d.children {
		switch {
		case c.n.ino != 0:
		case c.n.typ == typeDir:
			number(c.n, next)
		default:
			*next++
			c.n.ino = *next
		}
	}
	*next++
	d.ino = *next
}

// writeDir writes d's children's inodes (subdirectories first, depth
// first), then d's listing and d's own inode: a directory's listing needs
// where its children's inodes are, so children always come first.
func (t *tables) writeDir(d *node) error {
	for _, c := range d.children {
		if c.n.written {
			continue
		}
		if c.n.typ == typeDir {
			if err := t.writeDir(c.n); err != nil {
				return err
			}
			continue
		}
		if err := t.writeInode(c.n); err != nil {
			return err
		}
	}
	block, offset := t.dirs.pos()
	size, index, err := t.writeListing(d)
	if err != nil {
		return err
	}
	return t.writeDirInode(d, block, offset, size, index)
}

// dirIndex points into a long listing, so the kernel's lookup can skip
// to the part that may hold a name instead of reading from the start.
type dirIndex struct {
	offset int    // of a header, in the listing
	block  uint32 // the directory table block that holds it
	name   string // the header's first name
}

// writeListing writes d's directory entries and returns their size and
// index. Entries go under headers (at most 256 per header, inodes in one
// metadata block, inode numbers within ±32767 of the header's); as
// mksquashfs does, a new header with an index entry starts wherever the
// listing would run more than one metadata block past the last one.
func (t *tables) writeListing(d *node) (int, []dirIndex, error) {
	var buf []byte
	var index []dirIndex
	indexAt, hdr, count := 0, -1, 0
	var hdrBlock, hdrBase uint32
	for _, c := range d.children {
		entry := 8 + len(c.name)
		block := uint32(c.n.ref >> 16)
		delta := int64(c.n.ino) - int64(hdrBase)
		newIndex := len(buf)+entry-indexAt > metaSize
		if hdr < 0 || count == 256 || block != hdrBlock || delta < -32768 || delta > 32767 || newIndex {
			if hdr >= 0 {
				binary.LittleEndian.PutUint32(buf[hdr:], uint32(count-1))
			}
			if newIndex {
				index = append(index, dirIndex{offset: len(buf), name: c.name})
				indexAt = len(buf)
			}
			hdr, hdrBlock, hdrBase, count, delta = len(buf), block, c.n.ino, 0, 0
			buf = binary.LittleEndian.AppendUint32(buf, 0) // count, once known
			buf = binary.LittleEndian.AppendUint32(buf, block)
			buf = binary.LittleEndian.AppendUint32(buf, hdrBase)
		}
		buf = binary.LittleEndian.AppendUint16(buf, uint16(c.n.ref&0xffff))
		buf = binary.LittleEndian.AppendUint16(buf, uint16(int16(delta)))
		buf = binary.LittleEndian.AppendUint16(buf, uint16(c.n.typ))
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(c.name)-1))
		buf = append(buf, c.name...)
		count++
	}
	if hdr >= 0 {
		binary.LittleEndian.PutUint32(buf[hdr:], uint32(count-1))
	}
	// Written in pieces, to learn which table block each indexed header
	// lands in: that depends on how the blocks before it compressed.
	prev := 0
	for k := range index {
		if err := t.dirs.write(buf[prev:index[k].offset]); err != nil {
			return 0, nil, err
		}
		blk, _ := t.dirs.pos()
		if blk > 0xffffffff {
			return 0, nil, errors.New("squashfs: directory table larger than 4 GiB")
		}
		index[k].block, prev = uint32(blk), index[k].offset
	}
	if err := t.dirs.write(buf[prev:]); err != nil {
		return 0, nil, err
	}
	return len(buf), index, nil
}

// header is the part common to all inodes.
func (t *tables) header(n *node, typ int) ([]byte, error) {
	mode, uid, gid := fs.ModeDir|0o755, 0, 0
	if n.e != nil {
		mode, uid, gid = n.e.Mode, n.e.UID, n.e.GID
	}
	u, err := t.id(uid)
	if err != nil {
		return nil, err
	}
	g, err := t.id(gid)
	if err != nil {
		return nil, err
	}
	n.written = true
	block, offset := t.inodes.pos()
	n.ref = block<<16 | uint64(offset)
	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint16(b, uint16(typ))
	b = binary.LittleEndian.AppendUint16(b, unixMode(mode))
	b = binary.LittleEndian.AppendUint16(b, u)
	b = binary.LittleEndian.AppendUint16(b, g)
	b = binary.LittleEndian.AppendUint32(b, t.epoch)
	b = binary.LittleEndian.AppendUint32(b, n.ino)
	return b, nil
}

func (t *tables) writeDirInode(d *node, block uint64, offset uint16, listing int, index []dirIndex) error {
	parent := t.total + 1 // the root's parent, as mksquashfs writes it
	if d.parent != nil {
		parent = d.parent.ino
	}
	size := uint64(listing) + 3 // the kernel counts "." and ".." as 3 bytes
	if block > 0xffffffff {
		return errors.New("squashfs: directory table larger than 4 GiB")
	}
	x, err := t.xattr(d)
	if err != nil {
		return err
	}
	ext := size > 0xffff || x != noXattr || len(index) > 0
	typ := typeDir
	if ext {
		typ = typeLDir
	}
	b, err := t.header(d, typ)
	if err != nil {
		return err
	}
	nlink := 2 + d.subdirs
	if ext {
		b = binary.LittleEndian.AppendUint32(b, nlink)
		b = binary.LittleEndian.AppendUint32(b, uint32(size))
		b = binary.LittleEndian.AppendUint32(b, uint32(block))
		b = binary.LittleEndian.AppendUint32(b, parent)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(index)))
		b = binary.LittleEndian.AppendUint16(b, offset)
		b = binary.LittleEndian.AppendUint32(b, x)
		for _, ix := range index {
			b = binary.LittleEndian.AppendUint32(b, uint32(ix.offset))
			b = binary.LittleEndian.AppendUint32(b, ix.block)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.name)-1))
			b = append(b, ix.name...)
		}
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(block))
		b = binary.LittleEndian.AppendUint32(b, nlink)
		b = binary.LittleEndian.AppendUint16(b, uint16(size))
		b = binary.LittleEndian.AppendUint16(b, offset)
		b = binary.LittleEndian.AppendUint32(b, parent)
	}
	return t.inodes.write(b)
}

func (t *tables) writeInode(n *node) error {
	e := n.e
	x, err := t.xattr(n)
	if err != nil {
		return err
	}
	// Inodes with xattrs are the extended kind, which ends with the
	// xattr index.
	typ, tail := n.typ, []byte(nil)
	if x != noXattr && n.typ != typeFile {
		typ, tail = n.typ+typeExtended, binary.LittleEndian.AppendUint32(nil, x)
	}
	switch n.typ {
	case typeFile:
		fd := t.data[e.Digest]
		var start uint64
		var sizes []uint32
		if e.Size > 0 {
			if fd == nil || !fd.filled {
				return fmt.Errorf("squashfs: %s: data not written", e.Path)
			}
			start, sizes = fd.start, fd.sizes
		}
		ext := n.nlink > 1 || e.Size > 0xffffffff || start > 0xffffffff || x != noXattr
		typ := typeFile
		if ext {
			typ = typeLFile
		}
		b, err := t.header(n, typ)
		if err != nil {
			return err
		}
		if ext {
			b = binary.LittleEndian.AppendUint64(b, start)
			b = binary.LittleEndian.AppendUint64(b, uint64(e.Size))
			b = binary.LittleEndian.AppendUint64(b, uint64(sparseBytes(sizes, e.Size, t.block)))
			b = binary.LittleEndian.AppendUint32(b, n.nlink)
			b = binary.LittleEndian.AppendUint32(b, invalidFrag)
			b = binary.LittleEndian.AppendUint32(b, 0)
			b = binary.LittleEndian.AppendUint32(b, x)
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(start))
			b = binary.LittleEndian.AppendUint32(b, invalidFrag)
			b = binary.LittleEndian.AppendUint32(b, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(e.Size))
		}
		for _, s := range sizes {
			b = binary.LittleEndian.AppendUint32(b, s)
		}
		return t.inodes.write(b)
	case typeSymlink:
		b, err := t.header(n, typ)
		if err != nil {
			return err
		}
		b = binary.LittleEndian.AppendUint32(b, n.nlink)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Linkname)))
		b = append(b, e.Linkname...)
		return t.inodes.write(append(b, tail...))
	case typeBlock, typeChar:
		b, err := t.header(n, typ)
		if err != nil {
			return err
		}
		b = binary.LittleEndian.AppendUint32(b, n.nlink)
		b = binary.LittleEndian.AppendUint32(b, encodeDev(e.Devmajor, e.Devminor))
		return t.inodes.write(append(b, tail...))
	case typeFifo, typeSocket:
		b, err := t.header(n, typ)
		if err != nil {
			return err
		}
		b = binary.LittleEndian.AppendUint32(b, n.nlink)
		return t.inodes.write(append(b, tail...))
	}
	return fmt.Errorf("squashfs: %s: unexpected inode type %d", entryPath(n), n.typ)
}

// sparseBytes is how many bytes of a file are holes, as the extended
// file inode records it.
func sparseBytes(sizes []uint32, size int64, block int) int64 {
	var n int64
	for i, s := range sizes {
		if s == 0 {
			n += min(int64(block), size-int64(i)*int64(block))
		}
	}
	return n
}

// encodeDev is the kernel's new_encode_dev.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// unixMode is the inode's mode field: permission, setuid, setgid and
// sticky bits only, as mksquashfs writes it. The type comes from the
// inode type, and recent kernels refuse an inode whose mode carries type
// bits of its own.
func unixMode(m fs.FileMode) uint16 {
	return uint16(fstree.UnixPerm(m))
}

// writeIDTable writes the id metadata blocks and their index, and
// returns the index's position (the superblock's id_table_start).
func writeIDTable(ow *offsetWriter, comp *compressor, ids []uint32) (uint64, error) {
	var raw []byte
	for _, id := range ids {
		raw = binary.LittleEndian.AppendUint32(raw, id)
	}
	var index []byte
	for off := 0; off < len(raw); off += metaSize {
		index = binary.LittleEndian.AppendUint64(index, ow.off)
		blk, err := metaBlock(comp, raw[off:min(off+metaSize, len(raw))])
		if err != nil {
			return 0, err
		}
		if err := ow.write(blk); err != nil {
			return 0, err
		}
	}
	start := ow.off
	return start, ow.write(index)
}

// superblock is the image's first 96 bytes.
type superblock struct {
	inodes, mkfsTime, blockSize, fragCount uint32
	comp, blockLog, flags, noIDs           uint16
	rootInode, bytesUsed, idTable, xattrs  uint64
	inodeTable, dirTable, fragments        uint64
	lookup                                 uint64
}

func (s superblock) bytes() []byte {
	b := make([]byte, 0, superSize)
	b = binary.LittleEndian.AppendUint32(b, magic)
	b = binary.LittleEndian.AppendUint32(b, s.inodes)
	b = binary.LittleEndian.AppendUint32(b, s.mkfsTime)
	b = binary.LittleEndian.AppendUint32(b, s.blockSize)
	b = binary.LittleEndian.AppendUint32(b, s.fragCount)
	b = binary.LittleEndian.AppendUint16(b, s.comp)
	b = binary.LittleEndian.AppendUint16(b, s.blockLog)
	b = binary.LittleEndian.AppendUint16(b, s.flags)
	b = binary.LittleEndian.AppendUint16(b, s.noIDs)
	b = binary.LittleEndian.AppendUint16(b, 4) // major
	b = binary.LittleEndian.AppendUint16(b, 0) // minor
	for _, v := range []uint64{s.rootInode, s.bytesUsed, s.idTable, s.xattrs, s.inodeTable, s.dirTable, s.fragments, s.lookup} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// xattrPrefixes are the name spaces squashfs stores, by type id.
var xattrPrefixes = []string{"user.", "trusted.", "security."}

func xattrPrefix(name string) (uint16, string, bool) {
	for i, p := range xattrPrefixes {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
			return uint16(i), rest, true
		}
	}
	return 0, "", false
}

// writeXattrTables writes the xattr sets (metadata blocks of name/value
// pairs), their id table (where each set starts, how many pairs, their
// size) and its index, which must end the image, and returns the index's
// position (the superblock's xattr_id_table_start).
func writeXattrTables(ow *offsetWriter, comp *compressor, sets []map[string]string) (uint64, error) {
	kv := newMetaWriter(comp)
	var ids []byte
	for _, set := range sets {
		block, offset := kv.pos()
		var b []byte
		var size uint32
		for _, name := range slices.Sorted(maps.Keys(set)) {
			typ, rest, _ := xattrPrefix(name)
			v := set[name]
			b = binary.LittleEndian.AppendUint16(b, typ)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(rest)))
			b = append(b, rest...)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
			size += uint32(len(name) + 1 + len(v)) // as mksquashfs counts it
		}
		if err := kv.write(b); err != nil {
			return 0, err
		}
		ids = binary.LittleEndian.AppendUint64(ids, block<<16|uint64(offset))
		ids = binary.LittleEndian.AppendUint32(ids, uint32(len(set)))
		ids = binary.LittleEndian.AppendUint32(ids, size)
	}
	table, err := kv.finish()
	if err != nil {
		return 0, err
	}
	kvStart := ow.off
	if err := ow.write(table); err != nil {
		return 0, err
	}
	var index []byte
	for off := 0; off < len(ids); off += metaSize {
		index = binary.LittleEndian.AppendUint64(index, ow.off)
		blk, err := metaBlock(comp, ids[off:min(off+metaSize, len(ids))])
		if err != nil {
			return 0, err
		}
		if err := ow.write(blk); err != nil {
			return 0, err
		}
	}
	start := ow.off
	hdr := binary.LittleEndian.AppendUint64(nil, kvStart)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(sets)))
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	return start, ow.write(append(hdr, index...))
}
