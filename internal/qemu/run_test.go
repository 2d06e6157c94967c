package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelos/keel/internal/testenv"
)

func TestUnescape(t *testing.T) {
	escaped := false
	for _, tc := range []struct {
		in, out  string
		quit     bool
		escAfter bool
	}{
		{"ls\n", "ls\n", false, false},
		{"a\x01\x01b", "a\x01b", false, false},
		{"a\x01", "a", false, true}, // escape split across reads
		{"x rest", "", true, false},
		{"\x01hq", "q", false, false}, // unknown escape: dropped, as QEMU does
		{"ok\x01X", "ok", true, false},
	} {
		out, quit := unescape([]byte(tc.in), &escaped)
		if string(out) != tc.out || quit != tc.quit || escaped != tc.escAfter {
			t.Errorf("unescape(%q) = %q quit=%v escaped=%v, want %q %v %v", tc.in, out, quit, escaped, tc.out, tc.quit, tc.escAfter)
		}
	}
}

// TestRunTimeoutShowsTheConsoleOnceSlow boots a disk nothing can boot
// from: the firmware writes to the console until --timeout, and the
// error then says so without printing the console a second time.
func TestRunTimeoutShowsTheConsoleOnceSlow(t *testing.T) {
	testenv.NeedQEMU(t)
	disk := filepath.Join(t.TempDir(), "x-amd64-efi.raw")
	if err := os.WriteFile(disk, mbrDisk(), 0o644); err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	err := Run(context.Background(), Options{Image: disk, Console: &console, Snapshot: true, Timeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "timed out after 30s") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if console.Len() == 0 {
		t.Fatal("the firmware wrote nothing to the console")
	}
	if strings.Contains(err.Error(), "console") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("the error repeats the console, which went to Console already:\n%v", err)
	}
}
