package debian

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
)

// archiveKeyring is Debian's debian-archive-keyring.gpg (package
// debian-archive-keyring 2023.3+deb12u2: the bullseye, bookworm and trixie
// archive and release keys), shipped so that hosts without it can verify
// the archive.
//
//go:embed keyring/debian-archive-keyring.gpg
var archiveKeyring []byte

// ArchiveKeyring returns the Debian archive keys shipped with keel, read
// anew on each call (once per InRelease: a few milliseconds) so that no
// caller shares what another might change.
func ArchiveKeyring() (openpgp.EntityList, error) {
	list, err := openpgp.ReadKeyRing(bytes.NewReader(archiveKeyring))
	if err != nil {
		return nil, fmt.Errorf("reading the embedded Debian archive keyring: %w", err)
	}
	return list, nil
}

// verifyClearsigned checks the OpenPGP clear signature of an InRelease file
// against keyring and returns the signed text. Nothing of an InRelease
// whose signature does not verify is ever returned.
func verifyClearsigned(data []byte, keyring openpgp.KeyRing) ([]byte, error) {
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, errors.New("not an OpenPGP clear-signed message")
	}
	if _, err := block.VerifySignature(keyring, nil); err != nil {
		if errors.Is(err, pgperrors.ErrUnknownIssuer) {
			return nil, errors.New("signed by no key of the Debian archive keyring")
		}
		return nil, fmt.Errorf("bad OpenPGP signature: %w", err)
	}
	return block.Plaintext, nil
}
