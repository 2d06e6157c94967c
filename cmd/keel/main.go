// Command keel builds minimal, immutable container-host OS images from a
// TOML spec. This package is the command line only: flags, logging, exit
// codes; the work is done by the internal packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/cache"
	"github.com/keelos/keel/internal/spec"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version string

// Exit codes of every keel command. A command stopped by SIGINT or
// SIGTERM exits with 128 plus the signal's number, as a shell reports a
// process killed by it: 130 for SIGINT (Ctrl-C), 143 for SIGTERM.
const (
	exitOK     = 0
	exitFailed = 1 // a build or run failed
	exitUsage  = 2 // bad usage or a bad spec
)

// interrupted is the cause of the context of a command stopped by a
// signal.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + signalName(i.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// interruptible returns a context cancelled, with an interrupted cause,
// by the first SIGINT or SIGTERM. The first signal lets the command stop
// and clean up; a second one gets the default action and kills keel at
// once (the next build into the same directory removes what it left).
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			cancel(interrupted{sig.(syscall.Signal)})
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		signal.Stop(sigs)
		cancel(nil)
	}
}

// globalFlags are the persistent flags every command shares.
type globalFlags struct {
	CacheDir string
	Arch     []string
	Verbose  int
}

// logger logs to w (the command's stderr) at the level -v asks for:
// warnings by default, info at -v, debug at -vv.
func (g *globalFlags) logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.Verbose >= 2:
		level = slog.LevelDebug
	case g.Verbose == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// usageErr marks an error as bad usage (exit code 2).
type usageErr struct{ err error }

func (e usageErr) Error() string { return e.err.Error() }
func (e usageErr) Unwrap() error { return e.err }

// usageError marks err as bad usage, so keel exits with code 2.
func usageError(err error) error {
	if err == nil {
		return nil
	}
	return usageErr{err}
}

// exitCode maps an error returned by a command to keel's exit code.
func exitCode(err error) int {
	var ue usageErr
	var se spec.Errors
	var e *spec.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.As(err, &se), errors.As(err, &e):
		return exitUsage
	default:
		return exitFailed
	}
}

func main() {
	ctx, stop := interruptible()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one keel command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var sig interrupted
	if errors.As(context.Cause(ctx), &sig) {
		// What failed is only the consequence: say what happened.
		fmt.Fprintf(stderr, "keel: %s\n", sig)
		return 128 + int(sig.sig)
	}
	var se spec.Errors
	if errors.As(err, &se) {
		// One problem per line, each FILE:LINE:COL: …, as compilers do,
		// so editors can jump to them.
		fmt.Fprintln(stderr, se.Error())
	} else if msg := err.Error(); strings.HasPrefix(msg, "keel ") {
		fmt.Fprintln(stderr, msg)
	} else {
		fmt.Fprintf(stderr, "keel: %s\n", msg)
	}
	var ue usageErr
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'keel --help' for usage.")
	}
	return exitCode(err)
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "keel",
		Short: "Build minimal, immutable container-host OS images from a TOML spec",
		Long: `keel builds minimal, immutable Linux OS images for running containers: a
kernel, a Go init and system services each in its own container, written
as initramfs, UKI, ISO, raw, qcow2 and cloud images, without Docker or root.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unknown command %q", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("no command given"))
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			for _, a := range g.Arch {
				if _, ok := archIndex(a); !ok {
					return usageError(fmt.Errorf("--arch %q: want one of %v", a, spec.Archs))
				}
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.CacheDir, "cache", cache.DefaultDir(), "cache directory (KEEL_CACHE)")
	pf.CountVarP(&g.Verbose, "verbose", "v", "log more: -v info, -vv debug")

	root.AddCommand(
		newBuildCmd(g),
		newRunCmd(g),
		newPkgCmd(g),
		newCacheCmd(g),
		newLockCmd(g),
		newFetchCmd(g),
		newInspectCmd(),
		newConvertCmd(),
		newVersionCmd(),
		newCompletionCmd(),
		newRebuildCmd(),
	)
	return root
}

// addArchFlag gives --arch to the commands that build or boot for an
// architecture; the others (version, inspect, …) have none to take.
func addArchFlag(cmd *cobra.Command, g *globalFlags, usage string) {
	cmd.Flags().StringSliceVar(&g.Arch, "arch", nil, usage)
	// Registering fails only for a flag the command lacks.
	_ = cmd.RegisterFlagCompletionFunc("arch", completeList(spec.Archs))
}

// completeList completes a comma-separated list of values.
func completeList(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		done, _ := cutLast(toComplete, ",")
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = done + v
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

func archIndex(a string) (int, bool) {
	for i, x := range spec.Archs {
		if x == a {
			return i, true
		}
	}
	return 0, false
}

// versionString is the link-time version, else the module version the
// binary was built from.
func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keel's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "keel %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:       "completion bash|zsh|fish",
		Short:     "Print a shell completion script",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(errors.New("completion: want one shell: bash, zsh or fish"))
			}
			return usageError(cobra.OnlyValidArgs(cmd, args))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

// noArgs is cobra.NoArgs reporting bad usage.
func noArgs(cmd *cobra.Command, args []string) error {
	return usageError(cobra.NoArgs(cmd, args))
}
