package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/keelos/keel/internal/sbkeys"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make Secure Boot keys (PK, KEK, db) for signed images",
		Long: `Secure Boot trusts what db lists; KEK signs changes to db, PK changes to KEK
and PK. "keel keys generate DIR" writes a new hierarchy to DIR, per role
(PK, KEK, db):

  ROLE.key   private key (PKCS #8 PEM, mode 0600): keep it off images
  ROLE.crt   X.509 certificate (PEM)
  ROLE.esl   EFI signature list holding the certificate
  ROLE.auth  signed update that enrolls ROLE from setup mode
             (PK.auth and KEK.auth signed by PK, db.auth by KEK)

Sign images with the db pair:

  keel build --sign-key DIR/db.key --sign-cert DIR/db.crt
  (or KEEL_SIGN_KEY / KEEL_SIGN_CERT)

and boot them with the hierarchy enrolled: "keel run qemu --secure-boot
--keys DIR". On a machine, put its firmware in setup mode, then enroll db,
KEK and PK last (efi-updatevar -f DIR/db.auth db, … KEK, … PK), or use the
firmware's menu with the .crt or .esl files.

Existing keys: any db key the firmware trusts signs keel's images; pass an
unencrypted PEM key (RSA of at least 2048 bits, PKCS #1 or #8, or ECDSA
P-256) and its certificate (PEM or DER) to --sign-key and --sign-cert. For
"keel run qemu --secure-boot --keys DIR", DIR needs PK, KEK and db as
ROLE.key and ROLE.crt files, as above. keel never copies a private key
into an image, an output, a log or the SBOM; the SBOM records only the
signing certificate's SHA-256.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageError(errors.New("keel keys: want a subcommand: generate"))
		},
	}
	cmd.AddCommand(newKeysGenerateCmd())
	return cmd
}

func newKeysGenerateCmd() *cobra.Command {
	var name string
	var bits, years int
	cmd := &cobra.Command{
		Use:     "generate DIR",
		Short:   "Write a new PK, KEK and db key hierarchy and its .auth files to DIR",
		Example: "  keel keys generate keys\n  keel build --sign-key keys/db.key --sign-cert keys/db.crt",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(errors.New("keel keys generate: want one directory"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if years < 1 || years > 100 {
				return usageError(fmt.Errorf("--years %d: want 1 to 100", years))
			}
			// Keys are random and never reproducible, so their
			// certificates may carry the real date: firmware ignores
			// it, other verifiers (sbverify) check it.
			start := time.Now().UTC().Truncate(24 * time.Hour)
			h, err := sbkeys.Generate(sbkeys.Options{Name: name, Bits: bits, NotBefore: start, NotAfter: start.AddDate(years, 0, 0), Rand: rand.Reader})
			if err != nil {
				return usageError(err)
			}
			dir := args[0]
			if err := h.Write(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", filepath.Clean(dir))
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote PK, KEK and db (.key, .crt, .esl, .auth) to %s; sign with --sign-key %s --sign-cert %s\n",
				dir, filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "keel", `common name prefix of the certificates ("NAME PK", "NAME KEK", "NAME db")`)
	f.IntVar(&bits, "bits", 3072, "RSA key size: 2048, 3072 or 4096")
	f.IntVar(&years, "years", 10, "validity of the certificates, in years")
	return cmd
}
