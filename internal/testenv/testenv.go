// Package testenv keeps the promise of `go test -short` (make test-short):
// no network and no QEMU. A test that needs either says so by calling
// NeedNetwork or NeedQEMU first; under -short it is skipped with the
// reason, without -short (make test) it runs.
//
// Tests that boot QEMU end in Slow; tests that reach a real Debian
// mirror or another download end in RealMirror or _Network. Loopback is
// not the network: a registry or server on 127.0.0.1 is part of a unit
// test.
package testenv

import "testing"

// NeedNetwork skips t under -short: it reaches the network (a Debian
// mirror, a download), directly or to build the image it checks.
func NeedNetwork(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the network (a Debian mirror or a download): skipped under -short")
	}
}

// NeedQEMU skips t under -short: it boots a machine under QEMU.
func NeedQEMU(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU: skipped under -short")
	}
}
