package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Provenance is /etc/keel/provenance.json: what an image was built from.
// The resolved spec itself is at SpecPath; build.lock is not copied into
// the image (it lists every .deb and can be large), only its digest.
type Provenance struct {
	// SpecSHA256 is the hex SHA-256 of the resolved spec, the bytes at
	// /etc/keel/build.toml.
	SpecSHA256 string `json:"spec_sha256"`
	// LockSHA256 is the hex SHA-256 of the build.lock the build used, or
	// empty when it was not locked.
	LockSHA256 string `json:"lock_sha256"`
	// KeelVersion is the keel that built the image.
	KeelVersion string `json:"keel_version"`
}

// Marshal encodes p as the bytes keel writes: indented JSON, fixed key
// order, a final newline.
func (p Provenance) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sbom: provenance: %w", err)
	}
	return append(data, '\n'), nil
}

// ParseProvenance decodes a provenance.json; unknown fields are allowed so
// older keels can read what newer ones add.
func ParseProvenance(data []byte) (Provenance, error) {
	var p Provenance
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return Provenance{}, fmt.Errorf("provenance: %w", err)
	}
	return p, nil
}
