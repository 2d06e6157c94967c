// Package qemu boots keel's outputs under QEMU: the runner behind
// `keel run qemu` and the harness the end-to-end tests drive. The serial
// console is read through a pipe and kept, so callers can wait for
// patterns on it; QMP on a private unix socket powers the guest down.
//
// QEMU exits 0 both when the guest powers off and when it panics (keel
// passes panic=-1 with -no-reboot), so the verdict comes from the console.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Options says what to boot and how.
type Options struct {
	Image string // a keel output; see Detect
	Arch  string // "" = what Detect finds
	Mem   int    // MiB; 0 = 1024
	CPUs  int    // 0 = 1
	UEFI  *bool  // nil = what Detect finds (from the name; default EFI)
	// Firmware, when set, is a firmware image QEMU loads with -bios in
	// place of OVMF/AAVMF or SeaBIOS: U-Boot's qemu_arm64 build, say,
	// whose EFI loader is what many arm64 boards run.
	Firmware string
	USB      bool // attach the image as a USB disk, as a stick would be (ISO and disk images)
	// Snapshot keeps the image file as it is: the guest's writes go to a
	// temporary overlay, and other machines may boot the same file at once.
	Snapshot bool
	Disks    []Disk
	Publish  []string // "HOST:GUEST" ports forwarded from 127.0.0.1 (tcp, or suffix /udp)
	// Metadata is a user-data file, or a NoCloud seed directory holding
	// user-data and/or meta-data, served on a config drive: a FAT volume
	// labelled CIDATA (see docs/metadata.md).
	Metadata    string
	Console     io.Writer // receives the console as QEMU writes it
	ConsoleFile string    // also written here, with \r removed
	Stdin       io.Reader // Run only: forwarded to the serial console
	Timeout     time.Duration
	Cmdline     string // extra kernel arguments (kernel+initrd only)
	// Verbose, when set, is called with the exact QEMU command line before
	// it starts.
	Verbose func(cmdline []string)
	Accel   string // "kvm", "tcg", or "" for kvm when usable, else tcg
	// SecureBoot, when set, boots OVMF's Secure Boot firmware (amd64)
	// with these keys enrolled, enforcing.
	SecureBoot *SecureBoot
	// TPM attaches a TPM 2.0 (swtpm), which the firmware and
	// systemd-stub measure the boot into.
	TPM bool
}

// Disk is an extra virtio disk. A missing file is created, sparse, when
// Size is given: raw, or qcow2 when Format (or the extension) says so.
type Disk struct {
	Path   string
	Size   int64  // bytes; 0 when the file must exist
	Format string // raw, qcow2, vpc, vmdk; "" = from the extension, else raw
}

// failure matches the console lines that mean the guest did not shut
// down as it should.
var failure = regexp.MustCompile(`Kernel panic - not syncing[^\n]*|Attempted to kill init[^\n]*|init died[^\n]*`)

// Machine is a running QEMU.
type Machine struct {
	cmd     *exec.Cmd
	args    []string
	dir     string
	stdin   io.WriteCloser
	stderr  bytes.Buffer
	timeout time.Duration
	cancel  context.CancelFunc
	ctx     context.Context

	mu      sync.Mutex
	console []byte // everything seen, \r removed
	cursor  int    // where the next Expect starts
	changed chan struct{}
	eof     bool
	file    *os.File
	// consoleShown: the console went to a person as it came (Run), so
	// errors do not print its tail again.
	consoleShown bool

	refused bool      // the firmware refused the image; see ErrRefused
	tpm     *exec.Cmd // swtpm, with TPM

	readDone chan struct{}
	waitOnce sync.Once
	waitErr  error
	exited   chan struct{}
}

// Start boots opts.Image and returns once QEMU runs; the guest boots
// asynchronously. The machine is killed when ctx ends or opts.Timeout
// passes.
func Start(ctx context.Context, opts Options) (*Machine, error) {
	if opts.Image == "" {
		return nil, errors.New("qemu: no image given")
	}
	img, err := Detect(opts.Image)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if opts.Arch != "" {
		img.Arch = opts.Arch
	}
	p := &plan{img: img, opts: opts}
	if opts.SecureBoot != nil {
		switch {
		case img.Arch != "amd64":
			return nil, fmt.Errorf("qemu: Secure Boot: %s: only amd64 (OVMF) is supported", opts.Image)
		case !p.uefi() || img.Format == FormatKernel:
			return nil, fmt.Errorf("qemu: Secure Boot: %s does not boot through EFI firmware", opts.Image)
		case opts.Firmware != "":
			return nil, errors.New("qemu: Secure Boot uses OVMF's Secure Boot build: give no other firmware")
		case opts.SecureBoot.PK == nil || opts.SecureBoot.KEK == nil || opts.SecureBoot.DB == nil:
			return nil, errors.New("qemu: Secure Boot needs PK, KEK and db certificates")
		}
	}
	if p.accel, err = chooseAccel(opts.Accel, img.Arch); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if p.disks, err = prepareDisks(opts.Disks); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if p.dir, err = os.MkdirTemp("", "keel-qemu-"); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	m, err := start(ctx, p)
	if err != nil {
		if p.tpm != nil {
			p.tpm.Process.Kill()
			p.tpm.Wait()
		}
		os.RemoveAll(p.dir)
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return m, nil
}

func start(ctx context.Context, p *plan) (*Machine, error) {
	if p.uefi() && p.img.Format != FormatKernel && p.opts.Firmware == "" {
		fw, ok := firmware[p.img.Arch]
		if !ok {
			return nil, fmt.Errorf("no EFI firmware known for %s", p.img.Arch)
		}
		p.vars = filepath.Join(p.dir, "efivars.fd")
		if p.opts.SecureBoot != nil {
			if err := enrolledVars(fw.vars, p.vars, p.opts.SecureBoot); err != nil {
				return nil, err
			}
		} else if err := copyFile(fw.vars, p.vars); err != nil {
			return nil, fmt.Errorf("EFI variables (install ovmf / qemu-efi-aarch64): %w", err)
		}
	}
	if p.opts.TPM {
		var err error
		if p.tpm, p.tpmSocket, err = startTPM(p.dir); err != nil {
			return nil, err
		}
	}
	if p.img.Format == FormatUKI {
		p.esp = filepath.Join(p.dir, "esp")
		name := "BOOTX64.EFI"
		if p.img.Arch == "arm64" {
			name = "BOOTAA64.EFI"
		}
		boot := filepath.Join(p.esp, "EFI", "BOOT")
		if err := os.MkdirAll(boot, 0o755); err != nil {
			return nil, err
		}
		if err := copyFile(p.img.Path, filepath.Join(boot, name)); err != nil {
			return nil, fmt.Errorf("UKI: %w", err)
		}
	}
	if p.opts.Metadata != "" {
		p.metadata = filepath.Join(p.dir, "cidata.img")
		if err := writeConfigDrive(p.opts.Metadata, p.metadata); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	args, err := p.args()
	if err != nil {
		return nil, err
	}
	if p.opts.Verbose != nil {
		p.opts.Verbose(append([]string(nil), args...))
	}

	m := &Machine{
		args:     args,
		dir:      p.dir,
		timeout:  p.opts.Timeout,
		changed:  make(chan struct{}),
		readDone: make(chan struct{}),
		exited:   make(chan struct{}),
		tpm:      p.tpm,
	}
	if p.opts.ConsoleFile != "" {
		if m.file, err = os.Create(p.opts.ConsoleFile); err != nil {
			return nil, fmt.Errorf("console file: %w", err)
		}
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	if p.opts.Timeout > 0 {
		m.ctx, m.cancel = context.WithTimeout(ctx, p.opts.Timeout)
	}
	m.cmd = exec.CommandContext(m.ctx, args[0], args[1:]...)
	m.cmd.Stderr = &m.stderr
	m.cmd.WaitDelay = 5 * time.Second
	stdout, err := m.cmd.StdoutPipe()
	if err == nil {
		m.stdin, err = m.cmd.StdinPipe()
	}
	if err == nil {
		err = m.cmd.Start()
	}
	if err != nil {
		m.cancel()
		if m.file != nil {
			m.file.Close()
		}
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	go m.read(stdout, p.opts.Console)
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// read copies the console into the kept buffer and to the writers.
func (m *Machine) read(r io.Reader, console io.Writer) {
	defer close(m.readDone)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if console != nil {
				console.Write(buf[:n]) // a failing viewer must not stop the machine
			}
			clean := bytes.ReplaceAll(buf[:n], []byte("\r"), nil)
			if m.file != nil {
				m.file.Write(clean)
			}
			m.mu.Lock()
			from := max(0, len(m.console)-256) // a match may span reads
			m.console = append(m.console, clean...)
			if !m.refused && refused.Match(m.console[from:]) {
				// The firmware goes on to its boot menu and would wait
				// there forever: stop the machine.
				m.refused = true
				m.cancel()
			}
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
		if err != nil {
			m.mu.Lock()
			m.eof = true
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
			return
		}
	}
}

// Cmdline is the QEMU command line, program first.
func (m *Machine) Cmdline() []string { return append([]string(nil), m.args...) }

// Console is everything the guest printed so far, with \r removed.
func (m *Machine) Console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.console)
}

// Expect waits until re matches the console after the end of the previous
// Expect's match and returns the match and its submatches. It fails when
// timeout passes or QEMU exits first; the error quotes the console's tail.
func (m *Machine) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		m.mu.Lock()
		seen := m.console[m.cursor:]
		if loc := re.FindSubmatchIndex(seen); loc != nil {
			match := make([]string, len(loc)/2)
			for i := range match {
				if loc[2*i] >= 0 {
					match[i] = string(seen[loc[2*i]:loc[2*i+1]])
				}
			}
			m.cursor += loc[1]
			m.mu.Unlock()
			return match, nil
		}
		eof, changed := m.eof, m.changed
		m.mu.Unlock()
		if eof {
			return nil, fmt.Errorf("qemu: waiting for %q: QEMU exited%s%s", re, m.exitNote(), m.tail())
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("qemu: waiting for %q: timed out after %s%s", re, timeout, m.tail())
		}
	}
}

// exitNote is QEMU's own complaint, if it wrote one.
func (m *Machine) exitNote() string {
	select {
	case <-m.exited:
	case <-time.After(time.Second):
		return ""
	}
	if s := strings.TrimSpace(m.stderr.String()); s != "" {
		return ": " + s
	}
	return ""
}

// tail is the last 4 KiB of the console, on lines of its own after an
// error message; nothing when the console went to a person already (Run).
func (m *Machine) tail() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.consoleShown {
		return ""
	}
	c := m.console
	if len(c) > 4<<10 {
		c = c[len(c)-4<<10:]
	}
	return "\n--- console (last 4 KiB) ---\n" + string(c)
}

// Send writes s to the serial console, as typed.
func (m *Machine) Send(s string) error {
	if _, err := io.WriteString(m.stdin, s); err != nil {
		return fmt.Errorf("qemu: send to console: %w", err)
	}
	return nil
}

// Powerdown presses the virtual power button (ACPI, or the virt
// machine's GPIO key): the guest decides how to shut down.
func (m *Machine) Powerdown() error {
	if err := m.qmp("system_powerdown"); err != nil {
		return fmt.Errorf("qemu: powerdown: %w", err)
	}
	return nil
}

// Kill stops QEMU at once (QMP quit, then SIGKILL) and waits for it.
func (m *Machine) Kill() {
	select {
	case <-m.exited:
	default:
		if m.qmp("quit") == nil {
			select {
			case <-m.exited:
			case <-time.After(2 * time.Second):
			}
		}
	}
	m.cancel()
	_ = m.Wait()
}

// Wait waits for QEMU to exit and fails when it did not end well: the
// guest panicked or its init died, the timeout passed, or QEMU itself
// failed.
func (m *Machine) Wait() error {
	m.waitOnce.Do(func() {
		<-m.exited
		<-m.readDone
		timedOut := errors.Is(m.ctx.Err(), context.DeadlineExceeded)
		m.cancel()
		if m.tpm != nil {
			m.tpm.Process.Kill()
			m.tpm.Wait()
		}
		if m.file != nil {
			if err := m.file.Close(); err != nil && m.waitErr == nil {
				m.waitErr = fmt.Errorf("console file: %w", err)
			}
		}
		os.RemoveAll(m.dir)
		m.waitErr = m.verdict(timedOut)
	})
	return m.waitErr
}

func (m *Machine) verdict(timedOut bool) error {
	if m.refused {
		return fmt.Errorf("qemu: %w\n%s", ErrRefused, m.tail())
	}
	if bad := failure.Find(m.console); bad != nil {
		return fmt.Errorf("qemu: guest failed: %s%s", bad, m.tail())
	}
	if timedOut {
		return fmt.Errorf("qemu: timed out after %s%s", m.timeout, m.tail())
	}
	if m.waitErr != nil {
		if err := m.ctx.Err(); err != nil && m.cmd.ProcessState != nil && !m.cmd.ProcessState.Success() {
			return fmt.Errorf("qemu: stopped: %w", context.Cause(m.ctx))
		}
		msg := strings.TrimSpace(m.stderr.String())
		return fmt.Errorf("qemu: %s: %w: %s", m.args[0], m.waitErr, msg)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
