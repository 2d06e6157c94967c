package runtimeconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keelos/keel/internal/layout"
	"github.com/keelos/keel/internal/spec"
)

func TestSeccompAnnotations(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		set  *string
		want string
	}{
		{nil, layout.SeccompDefault},
		{str(""), layout.SeccompDefault},
		{str("unconfined"), layout.SeccompUnconfined},
		{str("profiles/web.json"), "profiles/web.json"},
	} {
		s, err := Generate("svc", layout.KindService, spec.Config{Command: []string{"/x"}, Seccomp: c.set}, v1.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Annotations[layout.AnnotationSeccomp]; got != c.want {
			t.Errorf("seccomp %v: annotation %q, want %q", c.set, got, c.want)
		}
		if _, ok := s.Annotations[layout.AnnotationSeccompSHA256]; ok {
			t.Error("a digest before any program was set")
		}
		if s.Linux.Seccomp != nil {
			t.Error("linux.seccomp is set: keel's program travels beside config.json")
		}
	}
	s, err := Generate("svc", layout.KindService, spec.Config{Command: []string{"/x"}}, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	prog := []byte{0x06, 0, 0, 0, 0, 0, 0xff, 0x7f}
	SetSeccompProgram(s, prog)
	sum := sha256.Sum256(prog)
	if got := s.Annotations[layout.AnnotationSeccompSHA256]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("digest annotation %q", got)
	}
}
