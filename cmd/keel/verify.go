package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/keelos/keel/internal/build"
)

// The second build of --verify-reproducible runs in a child process of
// keel (the hidden command below), so that what a second machine would
// differ in differs for it alone, without keel changing its own
// process-wide state: the umask (077, so any mode taken from a file keel
// created would show) and the local time zone (UTC+13:45, far from UTC
// and not a whole hour, so any time formatted in local time would show).
// Tools the build runs (go build) inherit both.
const (
	rebuildCommand = "verify-rebuild"
	rebuildUmask   = 0o077
	rebuildZone    = "+1345"
	rebuildOffset  = (13*60 + 45) * 60 // seconds east of UTC
)

// rebuildRequest is what the parent sends the child on its stdin.
type rebuildRequest struct {
	Options build.Options
	Verbose int
}

// rebuildInChild runs Verify's second build in a child keel, its
// progress on stderr.
func (g *globalFlags) rebuildInChild(stderr io.Writer) build.Rebuild {
	return func(ctx context.Context, opts build.Options) (*build.Result, error) {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding keel's executable for the second build: %w", err)
		}
		if opts.BuildKit != nil {
			bk := *opts.BuildKit
			bk.Progress = nil // the child shows BuildKit's progress itself
			opts.BuildKit = &bk
		}
		req, err := json.Marshal(rebuildRequest{Options: opts, Verbose: g.Verbose})
		if err != nil {
			return nil, err
		}
		// Go and the C library both take TZ as the path of a zone file.
		zoneDir, err := os.MkdirTemp("", "keel-verify-zone-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(zoneDir)
		zone := filepath.Join(zoneDir, "zone")
		if err := os.WriteFile(zone, tzif(rebuildZone, rebuildOffset), 0o644); err != nil {
			return nil, err
		}

		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, exe, rebuildCommand)
		cmd.Env = append(os.Environ(), "TZ="+zone)
		cmd.Stdin = bytes.NewReader(req)
		cmd.Stdout = &out
		cmd.Stderr = stderr
		// On Ctrl-C the child removes what it wrote, as keel does.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = time.Minute
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				// The child said why on stderr.
				return nil, fmt.Errorf("the second build failed (%s)", exit.ProcessState)
			}
			return nil, err
		}
		var res build.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("reading the second build's result: %w", err)
		}
		return &res, nil
	}
}

// newRebuildCmd is the child side: it sets its own umask, checks the
// parent's time zone took effect, runs the build the parent describes on
// stdin and prints the result as JSON.
func newRebuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    rebuildCommand,
		Short:  "Run the second build of --verify-reproducible (internal)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before anything is written: the child exists for this.
			unix.Umask(rebuildUmask)
			if name, off := time.Now().Zone(); off != rebuildOffset {
				return fmt.Errorf("%s: local time zone %s, want %s: TZ did not take effect", rebuildCommand, name, rebuildZone)
			}
			var req rebuildRequest
			if err := json.NewDecoder(cmd.InOrStdin()).Decode(&req); err != nil {
				return fmt.Errorf("%s: reading the build's options: %w", rebuildCommand, err)
			}
			stderr := cmd.ErrOrStderr()
			g := globalFlags{Verbose: req.Verbose}
			opts := req.Options
			opts.Stdout = io.Discard
			opts.Log = g.logger(stderr)
			opts.Progress = stderr
			if opts.BuildKit != nil {
				opts.BuildKit.Progress = stderr
			}
			res, err := build.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
}

// tzif is a TZif file (RFC 8536, version 1) of one zone without
// transitions: abbr at offset seconds east of UTC, at every time.
func tzif(abbr string, offset int32) []byte {
	var b bytes.Buffer
	b.WriteString("TZif")
	b.WriteByte(0) // version 1
	b.Write(make([]byte, 15))
	// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
	for _, n := range []uint32{0, 0, 0, 0, 1, uint32(len(abbr) + 1)} {
		binary.Write(&b, binary.BigEndian, n)
	}
	binary.Write(&b, binary.BigEndian, offset) // the one local time type: utoff,
	b.Write([]byte{0, 0})                      // isdst, desigidx
	b.WriteString(abbr)
	b.WriteByte(0)
	return b.Bytes()
}
