package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/qemu"
	"github.com/keelos/keel/internal/sbkeys"
	"github.com/keelos/keel/internal/spec"
)

func newRunCmd(g *globalFlags) *cobra.Command {
	run := &cobra.Command{
		Use:   "run qemu IMAGE",
		Short: "Boot a built image",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("run: unknown backend %q (want qemu)", args[0]))
			}
			return usageError(errors.New("run: want a backend: keel run qemu IMAGE"))
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	run.AddCommand(newRunQemuCmd(g))
	return run
}

func newRunQemuCmd(g *globalFlags) *cobra.Command {
	var (
		opts    qemu.Options
		disks   []string
		uefi    bool
		appends []string
		secure  bool
		keys    string
	)
	cmd := &cobra.Command{
		Use:   "qemu IMAGE",
		Short: "Boot an image under QEMU, console on this terminal (Ctrl-A X quits)",
		Long: `Boot a keel output under QEMU: NAME-ARCH-kernel (with its -initrd.img and
-cmdline siblings), .efi (UKI), .iso, .raw, .qcow2, .vhd or .vmdk, amd64 or
arm64, EFI unless the name says -bios. KVM is used when /dev/kvm is usable
and the guest has the host's architecture, plain emulation otherwise.

keel exits 1 when the guest panicked, its init died or --timeout passed,
and 0 after a clean power-off.

--secure-boot boots OVMF's Secure Boot firmware (amd64) with the keys in
--keys DIR (PK.crt, KEK.crt, db.crt, as "keel keys generate" writes them)
enrolled, enforcing: the image must be signed by db's key (keel build
--sign-key DIR/db.key --sign-cert DIR/db.crt). When the firmware refuses
the image, keel says so and exits 1. --tpm attaches a TPM 2.0 (swtpm),
into which the firmware and the UKI's stub measure the boot ("keel inspect
--pcrs" predicts PCR 11).

--disk FILE[,size=S][,format=F] attaches a virtio disk; a missing FILE is
created when a size is given (sparse raw, or an empty qcow2 for
format=qcow2 or a .qcow2 name).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(errors.New("run qemu: want exactly one IMAGE"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Image = args[0]
			switch len(g.Arch) {
			case 0:
			case 1:
				opts.Arch = g.Arch[0]
			default:
				return usageError(errors.New("run qemu: --arch: give one architecture"))
			}
			for _, d := range disks {
				disk, err := parseDisk(d)
				if err != nil {
					return usageError(err)
				}
				opts.Disks = append(opts.Disks, disk)
			}
			if cmd.Flags().Changed("uefi") {
				opts.UEFI = &uefi
			}
			if opts.Mem < 0 || opts.CPUs < 0 || opts.Timeout < 0 {
				return usageError(errors.New("run qemu: --mem, --cpus and --timeout must not be negative"))
			}
			switch {
			case secure && keys == "":
				return usageError(errors.New("run qemu: --secure-boot needs --keys DIR, the PK, KEK and db certificates to enroll"))
			case keys != "" && !secure:
				return usageError(errors.New("run qemu: --keys is for --secure-boot"))
			case secure:
				sb, err := enrollKeys(keys)
				if err != nil {
					return err
				}
				opts.SecureBoot = sb
			}
			opts.Cmdline = strings.Join(appends, " ")
			opts.Console = cmd.OutOrStdout()
			opts.Stdin = cmd.InOrStdin()
			if g.Verbose > 0 {
				stderr := cmd.ErrOrStderr()
				opts.Verbose = func(argv []string) { fmt.Fprintln(stderr, shellQuote(argv)) }
			}
			return qemu.Run(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	addArchFlag(cmd, g, "architecture of the guest (default: what the image says)")
	f.IntVar(&opts.Mem, "mem", 1024, "memory in MiB")
	f.IntVar(&opts.CPUs, "cpus", 1, "virtual CPUs")
	f.StringArrayVar(&disks, "disk", nil, "extra disk FILE[,size=S][,format=raw|qcow2|vpc|vmdk] (repeatable)")
	f.StringArrayVar(&opts.Publish, "publish", nil, "forward 127.0.0.1:HOST to the guest's GUEST port: HOST:GUEST[/tcp|/udp] (repeatable)")
	f.StringVar(&opts.Metadata, "metadata", "", "user-data file, or a NoCloud seed directory (user-data, meta-data), served on a cidata config drive (docs/metadata.md)")
	f.StringVar(&opts.ConsoleFile, "console", "", "also write the console to FILE")
	f.DurationVar(&opts.Timeout, "timeout", 0, "stop the machine and fail after this long (0: never)")
	f.BoolVar(&uefi, "uefi", true, "boot through EFI firmware (default: from the image name; --uefi=false for BIOS)")
	f.StringVar(&opts.Firmware, "firmware", "", "firmware image for QEMU's -bios instead of OVMF/AAVMF/SeaBIOS (e.g. U-Boot's qemu_arm64 u-boot.bin)")
	f.BoolVar(&opts.Snapshot, "snapshot", false, "leave the image file unchanged: the guest's writes go to a temporary overlay")
	f.BoolVar(&opts.USB, "usb", false, "attach the image as a USB disk, as a stick (a hybrid iso, or a disk image)")
	f.StringArrayVar(&appends, "append", nil, "extra kernel command line arguments (kernel+initrd images)")
	f.BoolVar(&secure, "secure-boot", false, "boot OVMF's Secure Boot firmware, --keys enrolled, enforcing (amd64, EFI images)")
	f.StringVar(&keys, "keys", "", "directory holding PK.crt, KEK.crt and db.crt to enroll for --secure-boot")
	f.BoolVar(&opts.TPM, "tpm", false, "attach a TPM 2.0 emulated by swtpm")
	f.StringVar(&opts.Accel, "accel", "", "kvm or tcg (default: kvm when usable)")
	_ = cmd.RegisterFlagCompletionFunc("accel", cobra.FixedCompletions([]string{"kvm", "tcg"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// enrollKeys reads the certificates --secure-boot enrolls; private keys
// are not needed, nor read.
func enrollKeys(dir string) (*qemu.SecureBoot, error) {
	var certs [3]*x509.Certificate
	for i, role := range []string{"PK", "KEK", "db"} {
		var err error
		if certs[i], err = sbkeys.LoadCertificate(filepath.Join(dir, role+".crt")); err != nil {
			return nil, fmt.Errorf("--keys: %w", err)
		}
	}
	return &qemu.SecureBoot{PK: certs[0], KEK: certs[1], DB: certs[2]}, nil
}

// parseDisk parses FILE[,size=S][,format=F].
func parseDisk(s string) (qemu.Disk, error) {
	parts := strings.Split(s, ",")
	d := qemu.Disk{Path: parts[0]}
	if d.Path == "" {
		return d, fmt.Errorf("--disk %q: no file", s)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch {
		case k == "size" && v != "":
			size, err := spec.ParseSize(v)
			if err == nil && size == 0 {
				err = errors.New("must be above zero")
			}
			if err != nil {
				return d, fmt.Errorf("--disk %q: size: %w", s, err)
			}
			d.Size = size
		case k == "format" && v != "":
			d.Format = v
		default:
			return d, fmt.Errorf("--disk %q: unknown option %q (want size=S or format=F)", s, p)
		}
	}
	return d, nil
}

// shellQuote renders argv so it can be pasted into a POSIX shell.
func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+,./:@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
