package test

import (
	"os"
	"sync"
	"testing"

	"github.com/keelos/keel/internal/buildkit/buildkittest"
)

// TestMain stops what the tests share once they are all done: the
// buildkitd of the BuildKit tests and the images built once per run.
func TestMain(m *testing.M) {
	code := m.Run()
	buildkittest.StopShared()
	runDirs.Lock()
	for _, d := range runDirs.dirs {
		os.RemoveAll(d)
	}
	runDirs.Unlock()
	os.Exit(code)
}

// runDirs are the directories of images several tests share, removed
// when the run ends (t.TempDir belongs to one test).
var runDirs struct {
	sync.Mutex
	dirs []string
}

// runTempDir makes a directory that lives until the end of the run.
func runTempDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	runDirs.Lock()
	runDirs.dirs = append(runDirs.dirs, d)
	runDirs.Unlock()
	return d, nil
}
