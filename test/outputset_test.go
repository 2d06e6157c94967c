package test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/testenv"
)

// The tests here drive bin/keel as a user would and check what a build
// that does not finish leaves in --dir: SIGINT or SIGTERM while outputs
// are written, no space left, SIGKILL, and two builds at once.

// setFormats are written by every build here: the disk formats make the
// output phase long enough to stop a build in the middle of it.
const setFormats = "kernel+initrd,iso-efi,raw-efi,qcow2-efi,vmdk,gce"

// previousSpec, merged onto build.toml, makes the previous build's set
// differ from the next one in every output that carries the root (and in
// the SBOM): a new file replacing an old one cannot pass for it.
const previousSpec = `[[file]]
path = "/etc/previous"
contents = "written by the previous build\n"
`

// outputSets are the reference sets of the two builds the tests make, each
// built once into a directory of its own.
var outputSets struct {
	once sync.Once
	keel string // bin/keel, built once
	dir  string // holds keel, previous.toml and the two sets
	err  error
}

// referenceSets builds keel and the previous and next sets once per run.
func referenceSets(t *testing.T) (keel string, previous, next map[string]string) {
	t.Helper()
	testenv.NeedNetwork(t)
	s := &outputSets
	s.once.Do(func() {
		if s.dir, s.err = runTempDir("keel-outputset-"); s.err != nil {
			return
		}
		s.keel = filepath.Join(s.dir, "keel")
		if out, err := exec.Command("go", "build", "-o", s.keel, "../cmd/keel").CombinedOutput(); err != nil {
			s.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		prevSpec := filepath.Join(s.dir, "previous.toml")
		if s.err = os.WriteFile(prevSpec, []byte(previousSpec), 0o644); s.err != nil {
			return
		}
		for _, b := range []struct {
			dir   string
			specs []string
		}{{"previous", []string{"../build.toml", prevSpec}}, {"next", []string{"../build.toml"}}} {
			cmd := exec.Command(s.keel, append([]string{"build", "--format", setFormats, "--dir", filepath.Join(s.dir, b.dir)}, b.specs...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				s.err = fmt.Errorf("building the %s set: %w\n%s", b.dir, err, out)
				return
			}
		}
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.keel, hashDir(t, filepath.Join(s.dir, "previous")), hashDir(t, filepath.Join(s.dir, "next"))
}

// withPrevious fills the output directory dir with the previous set.
func withPrevious(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(outputSets.dir, "previous")
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// running is a keel build whose stderr is read line by line.
type running struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	seen  chan string // every line, as it comes
	done  chan error
}

func startBuild(t *testing.T, keel, dir string, specs ...string) *running {
	t.Helper()
	r := &running{seen: make(chan string, 1024), done: make(chan error, 1)}
	r.cmd = exec.Command(keel, append([]string{"build", "--format", setFormats, "--dir", dir}, specs...)...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, s.Text())
			r.mu.Unlock()
			select {
			case r.seen <- s.Text():
			default:
			}
		}
		close(r.seen)
		r.done <- r.cmd.Wait()
	}()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
		}
	})
	return r
}

// waitFor returns once the build has printed a line containing sub, and
// fails the test if it ends first.
func (r *running) waitFor(t *testing.T, sub string) {
	t.Helper()
	for line := range r.seen {
		if strings.Contains(line, sub) {
			return
		}
	}
	t.Fatalf("the build ended without printing %q:\n%s", sub, r.stderr())
}

// wait returns the build's exit code.
func (r *running) wait(t *testing.T) int {
	t.Helper()
	for range r.seen {
	}
	err := <-r.done
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func (r *running) stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// visible hashes the files of dir but for outdir's hidden staging
// directory, which a killed build leaves for the next one to remove.
func visible(t *testing.T, dir string) map[string]string {
	t.Helper()
	tmp := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == ".keel-staging" {
			continue
		}
		if err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return hashDir(t, tmp)
}

// A signal while the outputs are being written (inside the initramfs
// compression, the disk writer, the gzip of the gce tarball) stops keel
// within a second, with 128 + the signal's number, saying so, and leaves
// --dir byte for byte as it was, with no temporary behind.
func TestSignalDuringOutputWritingKeepsThePreviousSet(t *testing.T) {
	keel, previous, _ := referenceSets(t)
	for _, c := range []struct {
		during string
		sig    syscall.Signal
		code   int
	}{
		{"writing initramfs", syscall.SIGINT, 130},
		{"writing raw-efi", syscall.SIGINT, 130},
		{"writing gce", syscall.SIGINT, 130},
		{"writing qcow2-efi", syscall.SIGTERM, 143},
	} {
		t.Run(c.during+" "+c.sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			withPrevious(t, dir)
			r := startBuild(t, keel, dir, "../build.toml")
			r.waitFor(t, c.during)
			sent := time.Now()
			if err := r.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			code := r.wait(t)
			took := time.Since(sent)
			t.Logf("exit %d %v after the signal", code, took)
			if code != c.code {
				t.Errorf("exit code %d, want %d:\n%s", code, c.code, r.stderr())
			}
			if took > time.Second {
				t.Errorf("keel took %v to stop", took)
			}
			for _, want := range []string{"interrupted: removing the partial outputs", "keel: interrupted by " + signalName(c.sig)} {
				if !strings.Contains(r.stderr(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, r.stderr())
				}
			}
			sameOutputs(t, previous, hashDir(t, dir))
		})
	}
}

func signalName(sig syscall.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

// With --dir on a file system that holds the previous set but not the
// next, the build fails naming the cause, and the previous set, SBOM
// included, is byte for byte as it was.
func TestNoSpaceKeepsThePreviousSet(t *testing.T) {
	keel, previous, _ := referenceSets(t)
	var size int64
	for name := range previous {
		st, err := os.Stat(filepath.Join(outputSets.dir, "previous", name))
		if err != nil {
			t.Fatal(err)
		}
		size += st.Size()
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Room for the previous set and 16 MiB: not for a second set.
	opts := "size=" + strconv.FormatInt((size+16<<20)/4096*4096, 10)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount -t tmpfs -o %s (the test needs root): %v", opts, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	withPrevious(t, dir)
	r := startBuild(t, keel, dir, "../build.toml")
	if code := r.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, r.stderr())
	}
	if !strings.Contains(r.stderr(), "no space left on device") || !strings.Contains(r.stderr(), "keeps its previous outputs") {
		t.Errorf("stderr does not name the cause:\n%s", r.stderr())
	}
	sameOutputs(t, previous, hashDir(t, dir))
}

// A build killed (SIGKILL) while it writes leaves the previous set in
// view; the next build removes what the killed one left and puts its own
// complete set in place: never a mix of two builds.
func TestKilledBuildThenANewOne(t *testing.T) {
	keel, previous, next := referenceSets(t)
	dir := filepath.Join(t.TempDir(), "out")
	withPrevious(t, dir)
	r := startBuild(t, keel, dir, "../build.toml")
	r.waitFor(t, "writing raw-efi")
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait(t)
	sameOutputs(t, previous, visible(t, dir))

	again := startBuild(t, keel, dir, "../build.toml")
	if code := again.wait(t); code != 0 {
		t.Fatalf("the next build: exit %d:\n%s", code, again.stderr())
	}
	if !strings.Contains(again.stderr(), "removing the partial outputs of an interrupted build") {
		t.Errorf("the next build does not say it cleaned up:\n%s", again.stderr())
	}
	sameOutputs(t, next, hashDir(t, dir))
}

// Two builds into one --dir at once: the second waits for the first,
// saying so, and the directory ends with the complete set of the one
// that finished last.
func TestConcurrentBuildsIntoOneDirSerialise(t *testing.T) {
	keel, _, next := referenceSets(t)
	dir := filepath.Join(t.TempDir(), "out")
	prevSpecs := []string{"../build.toml", filepath.Join(outputSets.dir, "previous.toml")}
	a := startBuild(t, keel, dir, prevSpecs...)
	a.waitFor(t, "resolving")
	b := startBuild(t, keel, dir, "../build.toml")
	b.waitFor(t, "waiting for the other keel build writing to it")
	if code := a.wait(t); code != 0 {
		t.Fatalf("the first build: exit %d:\n%s", code, a.stderr())
	}
	if code := b.wait(t); code != 0 {
		t.Fatalf("the second build: exit %d:\n%s", code, b.stderr())
	}
	sameOutputs(t, next, hashDir(t, dir))
}
