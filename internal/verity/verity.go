// Package verity writes and checks dm-verity hash trees in the on-disk
// format of veritysetup (cryptsetup): format version 1, SHA-256, 4096-byte
// data and hash blocks.
//
// A hash device, as Write lays it out and veritysetup's own `format`
// does, is a 512-byte superblock padded to one 4096-byte block, then the
// tree's levels from the top (one block) down to the leaves (the hashes
// of the data blocks). Each hash is SHA-256(salt || block), 128 to a hash
// block, the rest of the block zeros; the root hash is the hash of the
// top block (of the only data block, when there is one). Linux's
// dm-verity target reads the same layout given the tree's first block
// (Params.HashStart) and the other parameters on its table line.
//
// The output is reproducible: the salt comes from the caller (keel's is
// Salt of the image's digest), and the superblock's UUID from the root
// hash. The data is read once, in order, and only one hash block per
// tree level is held in memory.
package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
)

const (
	// BlockSize is the size of a data block and of a hash block.
	BlockSize = 4096
	// Algorithm is the hash, as veritysetup and the kernel name it.
	Algorithm = "sha256"
	// HashType is the format version: 1 puts the salt before each block
	// (0, Chrome OS's, after it).
	HashType = 1
	// HashStart is where Write puts the tree in the hash device, in
	// blocks: after the superblock.
	HashStart = 1
	// MaxSaltSize is the most a veritysetup superblock holds.
	MaxSaltSize = 256

	digestSize     = sha256.Size
	hashesPerBlock = BlockSize / digestSize
	perBlockBits   = 7 // log2(hashesPerBlock)
	superblockSize = 512
)

// GPT partition types of a root's hash partition in the Discoverable
// Partitions Specification ("root-verity"): what systemd's tools and
// sgdisk call the partition keel puts the tree in.
const (
	PartitionTypeAmd64 = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
	PartitionTypeArm64 = "DF3300CE-D69F-4C92-978C-9BFB0F38D820"
)

// Params are what opening a verity device needs besides the two devices,
// and what the superblock records (all but RootHash).
type Params struct {
	DataBlocks uint64 // data covered, in BlockSize blocks
	HashStart  uint64 // the tree's first block in the hash device
	Salt       []byte
	UUID       [16]byte // the superblock's; veritysetup shows it
	RootHash   []byte   // nil when read from a superblock alone
}

// HashBlocks is the number of blocks of the tree.
func (p Params) HashBlocks() uint64 {
	_, n := layout(p.DataBlocks)
	return n
}

// HashSize is the size of the hash device in bytes: what comes before the
// tree, and the tree.
func (p Params) HashSize() int64 {
	return int64(p.HashStart+p.HashBlocks()) * BlockSize
}

// Salt is the salt keel uses for an image whose SHA-256 is digest: taken
// from the content, so the same image gives the same tree, and different
// for every image, so that no precomputed table of block hashes serves
// two of them.
func Salt(digest []byte) []byte {
	h := sha256.New()
	h.Write([]byte("keel dm-verity salt v1\x00"))
	h.Write(digest)
	return h.Sum(nil)
}

// UUID is the superblock UUID for a root hash: its last 16 bytes as a
// version 4 UUID. (systemd's images name their partitions from the root
// hash alike: the data partition's GUID from its first 16 bytes, the hash
// partition's from its last 16.)
func UUID(rootHash []byte) [16]byte {
	var id [16]byte
	copy(id[:], rootHash[len(rootHash)-16:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// FormatUUID writes a UUID as veritysetup shows it.
func FormatUUID(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// layout returns where each level of the tree of n data blocks starts,
// relative to the tree's first block, from level 0 (the leaves) up, and
// the tree's size in blocks. The top level, one block, comes first on
// disk. The number of levels is the kernel's: enough that the top one is
// a single block (none for a single data block).
func layout(n uint64) (starts []uint64, total uint64) {
	var sizes []uint64
	for below := n; perBlockBits*len(sizes) < 64 && (n-1)>>(perBlockBits*len(sizes)) != 0; {
		below = (below + hashesPerBlock - 1) / hashesPerBlock
		sizes = append(sizes, below)
	}
	starts = make([]uint64, len(sizes))
	for i := len(sizes) - 1; i >= 0; i-- {
		starts[i] = total
		total += sizes[i]
	}
	return starts, total
}

// tree builds the hash tree of a stream of data blocks, one hash block
// per level in memory, and hands each finished hash block to emit with
// its level, its index in the level and its block number in the hash
// device.
type tree struct {
	salt   []byte
	starts []uint64 // absolute block numbers, per level
	bufs   [][]byte // the level's block being filled
	fill   []int    // hashes in bufs[i]
	done   []uint64 // blocks of the level emitted
	emit   func(level int, index, block uint64, b []byte) error
	root   []byte
	h      hash.Hash
}

func newTree(salt []byte, dataBlocks, hashStart uint64, emit func(level int, index, block uint64, b []byte) error) *tree {
	starts, _ := layout(dataBlocks)
	t := &tree{salt: salt, starts: starts, emit: emit, fill: make([]int, len(starts)), done: make([]uint64, len(starts)), h: sha256.New()}
	for i := range starts {
		t.starts[i] += hashStart
		t.bufs = append(t.bufs, make([]byte, BlockSize))
	}
	return t
}

// sum appends SHA-256(salt || b), format version 1's hash of a block, to
// dst.
func (t *tree) sum(dst, b []byte) []byte {
	t.h.Reset()
	t.h.Write(t.salt)
	t.h.Write(b)
	return t.h.Sum(dst)
}

// data takes in the next data block.
func (t *tree) data(b []byte) error {
	if len(t.starts) == 0 {
		t.root = t.sum(nil, b)
		return nil
	}
	return t.push(0, b)
}

// push hashes b into level i.
func (t *tree) push(i int, b []byte) error {
	off := t.fill[i] * digestSize
	t.sum(t.bufs[i][off:off], b)
	t.fill[i]++
	if t.fill[i] == hashesPerBlock {
		return t.flush(i)
	}
	return nil
}

// flush emits level i's block and hashes it into the level above.
func (t *tree) flush(i int) error {
	b := t.bufs[i]
	if err := t.emit(i, t.done[i], t.starts[i]+t.done[i], b); err != nil {
		return err
	}
	t.done[i]++
	var err error
	if i+1 < len(t.starts) {
		err = t.push(i+1, b)
	} else {
		t.root = t.sum(nil, b)
	}
	clear(b)
	t.fill[i] = 0
	return err
}

// finish flushes the partly filled block of every level, bottom up, and
// returns the root hash.
func (t *tree) finish() ([]byte, error) {
	for i := range t.starts {
		if t.fill[i] > 0 {
			if err := t.flush(i); err != nil {
				return nil, err
			}
		}
	}
	return t.root, nil
}

// readChunk is how much data is read at once.
const readChunk = 256 * BlockSize

// hashData feeds dataBlocks blocks of data to t. Data that ends inside
// the last block reads as zeros to its end, as the zero-filled rest of a
// partition does; data that ends before it is an error.
func hashData(t *tree, data io.ReaderAt, dataBlocks uint64) error {
	buf := make([]byte, readChunk)
	size := int64(dataBlocks) * BlockSize
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		got, err := data.ReadAt(buf[:n], off)
		if int64(got) < n {
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading data at %d: %w", off+int64(got), err)
			}
			if off+int64(got) <= size-BlockSize {
				return fmt.Errorf("data ends at byte %d, before its last block (%d blocks of %d bytes)", off+int64(got), dataBlocks, BlockSize)
			}
			clear(buf[got:n])
		}
		for b := int64(0); b < n; b += BlockSize {
			if err := t.data(buf[b : b+BlockSize]); err != nil {
				return err
			}
		}
		off += n
	}
	return nil
}

// Write writes the hash device of the first size bytes of data to w: the
// superblock and the tree, Params.HashSize bytes. The data covers
// ceil(size/BlockSize) blocks; the end of the last one is hashed as zeros,
// so the partition that holds the data must be zero there.
func Write(w io.WriterAt, data io.ReaderAt, size int64, salt []byte) (Params, error) {
	if size <= 0 {
		return Params{}, errors.New("verity: no data")
	}
	if len(salt) > MaxSaltSize {
		return Params{}, fmt.Errorf("verity: salt of %d bytes, at most %d fit the superblock", len(salt), MaxSaltSize)
	}
	p := Params{DataBlocks: uint64((size + BlockSize - 1) / BlockSize), HashStart: HashStart, Salt: bytes.Clone(salt)}
	t := newTree(p.Salt, p.DataBlocks, p.HashStart, func(_ int, _, block uint64, b []byte) error {
		_, err := w.WriteAt(b, int64(block)*BlockSize)
		return err
	})
	if err := hashData(t, io.NewSectionReader(data, 0, size), p.DataBlocks); err != nil {
		return Params{}, fmt.Errorf("verity: %w", err)
	}
	root, err := t.finish()
	if err != nil {
		return Params{}, fmt.Errorf("verity: %w", err)
	}
	p.RootHash = root
	p.UUID = UUID(root)
	block := make([]byte, BlockSize)
	copy(block, p.superblock())
	if _, err := w.WriteAt(block, 0); err != nil {
		return Params{}, fmt.Errorf("verity: %w", err)
	}
	return p, nil
}

// superblock is veritysetup's struct verity_sb, little-endian.
func (p Params) superblock() []byte {
	sb := make([]byte, superblockSize)
	copy(sb[0:8], "verity")
	binary.LittleEndian.PutUint32(sb[8:], 1) // superblock version
	binary.LittleEndian.PutUint32(sb[12:], HashType)
	copy(sb[16:32], p.UUID[:])
	copy(sb[32:64], Algorithm)
	binary.LittleEndian.PutUint32(sb[64:], BlockSize)
	binary.LittleEndian.PutUint32(sb[68:], BlockSize)
	binary.LittleEndian.PutUint64(sb[72:], p.DataBlocks)
	binary.LittleEndian.PutUint16(sb[80:], uint16(len(p.Salt)))
	copy(sb[88:88+MaxSaltSize], p.Salt)
	return sb
}

// Open reads the superblock of a hash device of size bytes and returns
// its parameters (without the root hash, which is not on disk). It accepts
// what Write writes: version 1, SHA-256, 4096-byte blocks.
func Open(hash io.ReaderAt, size int64) (Params, error) {
	sb := make([]byte, superblockSize)
	if _, err := hash.ReadAt(sb, 0); err != nil {
		return Params{}, fmt.Errorf("verity: reading the superblock: %w", err)
	}
	if !bytes.Equal(sb[0:8], []byte("verity\x00\x00")) {
		return Params{}, errors.New("verity: no verity superblock (it starts with \"verity\")")
	}
	if v := binary.LittleEndian.Uint32(sb[8:]); v != 1 {
		return Params{}, fmt.Errorf("verity: superblock version %d, want 1", v)
	}
	if v := binary.LittleEndian.Uint32(sb[12:]); v != HashType {
		return Params{}, fmt.Errorf("verity: hash type %d, want %d", v, HashType)
	}
	if alg := string(bytes.TrimRight(sb[32:64], "\x00")); alg != Algorithm {
		return Params{}, fmt.Errorf("verity: hash algorithm %q, want %s", alg, Algorithm)
	}
	if d, h := binary.LittleEndian.Uint32(sb[64:]), binary.LittleEndian.Uint32(sb[68:]); d != BlockSize || h != BlockSize {
		return Params{}, fmt.Errorf("verity: block sizes %d (data) and %d (hash), want %d", d, h, BlockSize)
	}
	p := Params{DataBlocks: binary.LittleEndian.Uint64(sb[72:]), HashStart: HashStart}
	copy(p.UUID[:], sb[16:32])
	saltSize := int(binary.LittleEndian.Uint16(sb[80:]))
	if saltSize > MaxSaltSize {
		return Params{}, fmt.Errorf("verity: salt of %d bytes, at most %d fit the superblock", saltSize, MaxSaltSize)
	}
	p.Salt = bytes.Clone(sb[88 : 88+saltSize])
	// The tree of more blocks than a 64-bit byte offset reaches would
	// overflow every size below.
	if p.DataBlocks == 0 || bits.Len64(p.DataBlocks) > 63-12 {
		return Params{}, fmt.Errorf("verity: %d data blocks", p.DataBlocks)
	}
	if need := p.HashSize(); size < need {
		return Params{}, fmt.Errorf("verity: hash device of %d bytes, its %d data blocks need %d", size, p.DataBlocks, need)
	}
	return p, nil
}

// Verify recomputes the tree of data (p.DataBlocks blocks; an end inside
// the last one reads as zeros) and checks it against the hash device and
// p.RootHash, as `veritysetup verify` does. The error names the first
// block that differs.
func Verify(data, hash io.ReaderAt, p Params) error {
	if len(p.RootHash) != digestSize {
		return fmt.Errorf("verity: root hash of %d bytes, want %d", len(p.RootHash), digestSize)
	}
	stored := make([]byte, BlockSize)
	t := newTree(p.Salt, p.DataBlocks, p.HashStart, func(level int, index, block uint64, b []byte) error {
		if _, err := hash.ReadAt(stored, int64(block)*BlockSize); err != nil {
			return fmt.Errorf("reading hash block %d: %w", block, err)
		}
		if bytes.Equal(stored, b) {
			return nil
		}
		if level == 0 {
			first := index * hashesPerBlock
			last := min(first+hashesPerBlock, p.DataBlocks) - 1
			return fmt.Errorf("hash block %d does not match data blocks %d to %d: the data or the tree has changed", block, first, last)
		}
		return fmt.Errorf("hash block %d (tree level %d) does not match the level below it", block, level)
	})
	if err := hashData(t, data, p.DataBlocks); err != nil {
		return fmt.Errorf("verity: %w", err)
	}
	root, err := t.finish()
	if err != nil {
		return fmt.Errorf("verity: %w", err)
	}
	if !bytes.Equal(root, p.RootHash) {
		return fmt.Errorf("verity: root hash is %x, want %x", root, p.RootHash)
	}
	return nil
}
