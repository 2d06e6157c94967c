package main

import (
	"errors"
	"os"

	"github.com/keelos/keel/internal/build"
	"github.com/keelos/keel/internal/sbkeys"
)

// signFlags name the key and certificate a build signs its EFI binaries
// with. They are paths: the key is read in this process only, and a
// --verify-reproducible child reads it again from the same file rather
// than receiving it.
type signFlags struct {
	Key, Cert string
}

// load fills in the environment's defaults and puts the key pair in opts.
func (f *signFlags) load(opts *build.Options) error {
	if f.Key == "" {
		f.Key = os.Getenv("KEEL_SIGN_KEY")
	}
	if f.Cert == "" {
		f.Cert = os.Getenv("KEEL_SIGN_CERT")
	}
	switch {
	case f.Key == "" && f.Cert == "":
		return nil
	case f.Key == "":
		return usageError(errors.New("--sign-cert needs --sign-key (or KEEL_SIGN_KEY), the certificate's private key"))
	case f.Cert == "":
		return usageError(errors.New("--sign-key needs --sign-cert (or KEEL_SIGN_CERT), the key's certificate"))
	}
	kp, err := sbkeys.LoadKeyPair(f.Key, f.Cert)
	if err != nil {
		return err
	}
	opts.SignKey, opts.SignCert = kp.Key, kp.Cert
	return nil
}
