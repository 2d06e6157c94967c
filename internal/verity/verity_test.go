package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/tooltest"
)

// testData is size bytes that differ from block to block, so a tree that
// hashed the wrong block would not match.
func testData(size int64) []byte {
	b := make([]byte, size)
	var seed [32]byte
	for off := 0; off < len(b); off += len(seed) {
		seed = sha256.Sum256(seed[:])
		copy(b[off:], seed[:])
	}
	return b
}

// writeFile writes data to a new file in dir.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeTree runs Write over data into a new file and returns its path.
func writeTree(t *testing.T, dir string, data []byte, salt []byte) (string, Params) {
	t.Helper()
	p := filepath.Join(dir, "hash")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	params, err := Write(f, bytes.NewReader(data), int64(len(data)), salt)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != params.HashSize() {
		t.Fatalf("hash device is %d bytes, Params.HashSize says %d", st.Size(), params.HashSize())
	}
	return p, params
}

// padded is data with zeros to the end of its last block, as the
// partition holding it reads.
func padded(data []byte) []byte {
	n := (len(data) + BlockSize - 1) / BlockSize * BlockSize
	return append(bytes.Clone(data), make([]byte, n-len(data))...)
}

// treeSizes are data sizes around the tree's shapes: one data block (no
// tree, the root is that block's hash), sizes that end inside a block,
// one leaf block exactly full and one past it (two levels), and past
// 128*128 blocks (three levels).
var treeSizes = []int64{
	1,
	BlockSize,
	BlockSize + 1,
	300*BlockSize + 123,
	128 * BlockSize,
	129 * BlockSize,
	(128*128+1)*BlockSize - 7,
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)

// veritysetupFormat runs veritysetup format with args and returns the
// root hash it prints, and its whole output.
func veritysetupFormat(t *testing.T, args ...string) (root, out string) {
	t.Helper()
	out = tooltest.Run(t, "veritysetup", append([]string{"format"}, args...)...)
	m := rootHashLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup format's output:\n%s", out)
	}
	return m[1], out
}

// openHash reads a hash device file and opens it.
func openHash(t *testing.T, path string) ([]byte, Params) {
	t.Helper()
	hash, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(bytes.NewReader(hash), int64(len(hash)))
	if err != nil {
		t.Fatal(err)
	}
	return hash, p
}

// TestWriteMatchesVeritysetup: veritysetup verify accepts keel's tree
// (through its superblock, and through explicit parameters as the kernel
// gets them), veritysetup format with the same salt and UUID writes the
// same bytes and root hash, and a flipped data byte fails verification.
func TestWriteMatchesVeritysetup(t *testing.T) {
	tooltest.Need(t, "veritysetup")
	for _, size := range treeSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := testData(size)
			salt := Salt([]byte(fmt.Sprint("image ", size)))
			hashPath, p := writeTree(t, dir, data, salt)
			dataPath := writeFile(t, dir, "data", padded(data))
			root := hex.EncodeToString(p.RootHash)

			tooltest.Run(t, "veritysetup", "verify", dataPath, hashPath, root)
			tooltest.Run(t, "veritysetup", "verify", "--no-superblock",
				"--data-blocks", fmt.Sprint(p.DataBlocks), "--hash-offset", fmt.Sprint(p.HashStart*BlockSize),
				"--data-block-size", fmt.Sprint(BlockSize), "--hash-block-size", fmt.Sprint(BlockSize),
				"--hash", Algorithm, "--format", fmt.Sprint(HashType), "--salt", hex.EncodeToString(salt),
				dataPath, hashPath, root)

			theirs := filepath.Join(dir, "hash.veritysetup")
			if theirRoot, _ := veritysetupFormat(t, "--salt", hex.EncodeToString(salt), "--uuid", FormatUUID(p.UUID), dataPath, theirs); theirRoot != root {
				t.Errorf("root hash %s, veritysetup format says %s", root, theirRoot)
			}
			ours, err := os.ReadFile(hashPath)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, want) {
				t.Errorf("hash device of %d bytes differs from veritysetup format's (%d bytes) at byte %d", len(ours), len(want), firstDiff(ours, want))
			}

			bad := padded(data)
			bad[len(data)/2] ^= 0x01
			badPath := writeFile(t, dir, "data.bad", bad)
			if out, err := exec.Command("veritysetup", "verify", badPath, hashPath, root).CombinedOutput(); err == nil {
				t.Errorf("veritysetup verify accepts the data with byte %d flipped:\n%s", len(data)/2, out)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestOpenVerifyRoundTrip: Open reads back what Write wrote, and Verify
// accepts the data and tree, and rejects a changed data byte, a changed
// tree byte and a wrong root hash, naming where.
func TestOpenVerifyRoundTrip(t *testing.T) {
	for _, size := range treeSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			data := testData(size)
			hashPath, written := writeTree(t, dir, data, Salt([]byte("round trip")))
			hash, p := openHash(t, hashPath)
			if p.DataBlocks != written.DataBlocks || p.HashStart != written.HashStart || !bytes.Equal(p.Salt, written.Salt) || p.UUID != written.UUID {
				t.Fatalf("Open read %+v, Write wrote %+v", p, written)
			}
			p.RootHash = written.RootHash
			// The data as written (ending inside its last block) and as
			// the partition holds it verify alike.
			for _, d := range [][]byte{data, padded(data)} {
				if err := Verify(bytes.NewReader(d), bytes.NewReader(hash), p); err != nil {
					t.Fatalf("Verify of %d bytes: %v", len(d), err)
				}
			}

			bad := bytes.Clone(data)
			bad[len(bad)-1] ^= 0x80
			last := p.DataBlocks - 1
			wantErr := fmt.Sprintf("data blocks %d to %d", last/hashesPerBlock*hashesPerBlock, last)
			if p.DataBlocks == 1 {
				wantErr = "root hash is"
			}
			if err := Verify(bytes.NewReader(bad), bytes.NewReader(hash), p); err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("Verify with the last data byte flipped: %v, want an error with %q", err, wantErr)
			}

			wrong := p
			wrong.RootHash = bytes.Clone(p.RootHash)
			wrong.RootHash[0] ^= 1
			if err := Verify(bytes.NewReader(data), bytes.NewReader(hash), wrong); err == nil || !strings.Contains(err.Error(), "root hash is") {
				t.Errorf("Verify with a wrong root hash: %v", err)
			}

			if p.HashBlocks() > 0 {
				badHash := bytes.Clone(hash)
				badHash[len(badHash)-BlockSize] ^= 1 // the first hash of the last leaf block
				if err := Verify(bytes.NewReader(data), bytes.NewReader(badHash), p); err == nil || !strings.Contains(err.Error(), "does not match") {
					t.Errorf("Verify with a tree byte flipped: %v", err)
				}
			}

			short := data[:(p.DataBlocks-1)*BlockSize]
			if err := Verify(bytes.NewReader(short), bytes.NewReader(hash), p); err == nil || !strings.Contains(err.Error(), "before its last block") {
				t.Errorf("Verify of data that ends before its last block: %v", err)
			}
		})
	}
}

// TestOpenReadsVeritysetup: a hash device veritysetup formatted, with a
// random salt and UUID of its own, opens and verifies with keel's reader.
func TestOpenReadsVeritysetup(t *testing.T) {
	tooltest.Need(t, "veritysetup")
	dir := t.TempDir()
	data := testData(1000 * BlockSize)
	dataPath := writeFile(t, dir, "data", data)
	hashPath := filepath.Join(dir, "hash")
	root, out := veritysetupFormat(t, dataPath, hashPath)
	hash, p := openHash(t, hashPath)
	if p.DataBlocks != 1000 || len(p.Salt) != 32 {
		t.Errorf("Open read %d data blocks and a salt of %d bytes, veritysetup wrote 1000 and 32", p.DataBlocks, len(p.Salt))
	}
	if !strings.Contains(out, FormatUUID(p.UUID)) {
		t.Errorf("UUID %s is not the one veritysetup shows:\n%s", FormatUUID(p.UUID), out)
	}
	var err error
	if p.RootHash, err = hex.DecodeString(root); err != nil {
		t.Fatal(err)
	}
	if err := Verify(bytes.NewReader(data), bytes.NewReader(hash), p); err != nil {
		t.Error(err)
	}
}

// TestOpenRejects: Open names what is wrong with a hash device it cannot
// use.
func TestOpenRejects(t *testing.T) {
	_, p := writeTree(t, t.TempDir(), testData(10*BlockSize), Salt(nil))
	good := make([]byte, p.HashSize())
	copy(good, p.superblock())
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"not verity", func(b []byte) []byte { b[0] = 'x'; return b }, "no verity superblock"},
		{"sha1", func(b []byte) []byte { copy(b[32:], "sha1\x00\x00"); return b }, `hash algorithm "sha1"`},
		{"512-byte blocks", func(b []byte) []byte { b[64], b[65] = 0, 2; return b }, "block sizes 512"},
		{"format 0", func(b []byte) []byte { b[12] = 0; return b }, "hash type 0"},
		{"short", func(b []byte) []byte { return b[:len(b)-1] }, "need"},
		{"no data", func(b []byte) []byte { clear(b[72:80]); return b }, "0 data blocks"},
		{"salt too long", func(b []byte) []byte { b[80], b[81] = 1, 1; return b }, "salt of 257 bytes"},
	} {
		b := c.edit(bytes.Clone(good))
		if _, err := Open(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// TestWriteIsReproducible: the same data and salt give the same bytes,
// and another salt another root hash.
func TestWriteIsReproducible(t *testing.T) {
	data := testData(200*BlockSize + 5)
	a, pa := writeTree(t, t.TempDir(), data, Salt([]byte("a")))
	b, pb := writeTree(t, t.TempDir(), data, Salt([]byte("a")))
	_, pc := writeTree(t, t.TempDir(), data, Salt([]byte("c")))
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) || !bytes.Equal(pa.RootHash, pb.RootHash) {
		t.Error("two writes of the same data and salt differ")
	}
	if bytes.Equal(pa.RootHash, pc.RootHash) {
		t.Error("another salt gives the same root hash")
	}
}

// BenchmarkWrite measures the tree of a 64 MiB image: the cost of verity
// at build time is one SHA-256 pass over the root, about 1/127 of it in
// tree.
func BenchmarkWrite(b *testing.B) {
	data := bytes.NewReader(testData(64 << 20))
	out, err := os.Create(filepath.Join(b.TempDir(), "hash"))
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	b.SetBytes(data.Size())
	for b.Loop() {
		if _, err := Write(out, data, data.Size(), Salt(nil)); err != nil {
			b.Fatal(err)
		}
	}
}
