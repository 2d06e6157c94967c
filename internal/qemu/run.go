package qemu

import (
	"context"
	"io"
	"os"

	"golang.org/x/term"
)

// Run boots opts.Image for a person at a terminal: the console goes to
// opts.Console, opts.Stdin is forwarded to the serial console (in raw
// mode when it is a terminal, restored on return), and Ctrl-A X quits, as
// in QEMU. It returns an error when the guest panicked, its init died,
// opts.Timeout passed or QEMU failed; nil after a clean power-off.
func Run(ctx context.Context, opts Options) error {
	if opts.Stdin != nil {
		if f, ok := opts.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			state, err := term.MakeRaw(int(f.Fd()))
			if err == nil {
				defer term.Restore(int(f.Fd()), state)
			}
		}
	}
	m, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.consoleShown = opts.Console != nil
	m.mu.Unlock()
	if opts.Stdin != nil {
		// This goroutine may stay blocked in Read after the machine ends;
		// the caller is about to exit.
		go m.forward(opts.Stdin)
	}
	return m.Wait()
}

// forward copies keyboard input to the serial console until Ctrl-A X.
func (m *Machine) forward(in io.Reader) {
	buf := make([]byte, 4096)
	escaped := false
	for {
		n, err := in.Read(buf)
		out, quit := unescape(buf[:n], &escaped)
		if len(out) > 0 && m.Send(string(out)) != nil {
			return
		}
		if quit {
			m.Kill()
			return
		}
		if err != nil {
			return
		}
	}
}

// unescape handles QEMU's console escape in typed input: Ctrl-A X quits,
// Ctrl-A Ctrl-A types one Ctrl-A, Ctrl-A before anything else is dropped.
// escaped carries a trailing Ctrl-A over to the next call.
func unescape(in []byte, escaped *bool) (out []byte, quit bool) {
	const ctrlA = 0x01
	out = make([]byte, 0, len(in))
	for _, b := range in {
		switch {
		case *escaped:
			*escaped = false
			switch b {
			case 'x', 'X':
				return out, true
			case ctrlA:
				out = append(out, ctrlA)
			}
		case b == ctrlA:
			*escaped = true
		default:
			out = append(out, b)
		}
	}
	return out, false
}
