package sbom

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

func sampleInput() Input {
	return Input{
		Name: "host", Arch: "amd64", Kernel: "6.1.0-18-amd64", KernelSHA256: "ab12",
		Images: []Image{
			{Role: "service", Name: "sshd", Ref: "localhost:5000/keel/sshd:abc", Digest: "sha256:" + strings.Repeat("1", 64)},
			{Role: "init", Name: "init", Ref: "keel/init:xyz", Digest: "sha256:" + strings.Repeat("2", 64)},
			{Role: "onboot", Name: "dhcpcd", Ref: "docker.io/library/alpine:3.20@sha256:" + strings.Repeat("3", 64), Digest: "sha256:" + strings.Repeat("3", 64)},
		},
		Debian: []DebianPackage{
			{Name: "openssh-server", Version: "1:9.2p1-2+deb12u3", Arch: "amd64", Source: "openssh", SHA256: "cc", Image: "sshd"},
			{Name: "libc6", Version: "2.36-9+deb12u7", Arch: "amd64", Source: "glibc", SHA256: "dd", Image: "sshd"},
			{Name: "libc6", Version: "2.36-9+deb12u7", Arch: "amd64", Source: "glibc", SHA256: "dd", Image: "sshd"}, // duplicate
		},
		Go: []GoModule{
			{Path: "golang.org/x/sys", Version: "v0.49.0", Sum: "h1:abc=", Binary: "/init"},
			{Path: "stdlib", Version: "go1.26.0", Binary: "/init"},
			{Path: "github.com/keelos/keel", Version: "(devel)", Binary: "/init"},
			{Path: "golang.org/x/sys", Version: "v0.49.0", Sum: "h1:abc=", Binary: "/usr/bin/keel-sshd"},
			{Path: "github.com/BurntSushi/toml", Version: "v1.4.0", Binary: "/init"},
		},
		SpecSHA256: "5eed", LockSHA256: "10c4",
		Tool:    "keel-v0.0.1",
		Created: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	in := sampleInput()
	a, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// Same content in another order, another time zone: same bytes.
	shuffled := in
	shuffled.Images = slices.Clone(in.Images)
	slices.Reverse(shuffled.Images)
	shuffled.Debian = slices.Clone(in.Debian)
	slices.Reverse(shuffled.Debian)
	shuffled.Go = slices.Clone(in.Go)
	slices.Reverse(shuffled.Go)
	shuffled.Created = in.Created.In(time.FixedZone("X", 5*3600))
	for i := 0; i < 3; i++ {
		b, err := Marshal(shuffled)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("different bytes for the same input:\n%s\n---\n%s", a, b)
		}
	}
	// Different content: different namespace.
	other := in
	other.Kernel = "6.1.0-19-amd64"
	c, _ := Marshal(other)
	ns := func(b []byte) string {
		var d struct{ DocumentNamespace string }
		json.Unmarshal(b, &d)
		return d.DocumentNamespace
	}
	if ns(a) == ns(c) || ns(a) == "" {
		t.Fatalf("namespaces %q and %q: want distinct, non-empty", ns(a), ns(c))
	}
	if bytes.Contains(a, []byte(time.Now().Format("2006-01-02T15"))) {
		t.Fatal("document contains the current time")
	}
}

func TestRoundTripThroughSPDXReader(t *testing.T) {
	data, err := Marshal(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	var doc spdx.Document
	if err := spdxjson.ReadInto(bytes.NewReader(data), &doc); err != nil {
		t.Fatalf("SPDX reader rejects the document: %v\n%s", err, data)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2024-01-01T00:00:00Z" {
		t.Fatalf("header: %+v %+v", doc, doc.CreationInfo)
	}
	// root + kernel + 3 images + 2 debs + 4 distinct Go modules
	if got := len(doc.Packages); got != 11 {
		t.Fatalf("%d packages, want 11", got)
	}
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		id := string(p.PackageSPDXIdentifier)
		if ids[id] {
			t.Errorf("duplicate SPDXID %s", id)
		}
		ids[id] = true
		if strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
			t.Errorf("bad SPDXID %q", id)
		}
	}
	for _, r := range doc.Relationships {
		for _, e := range []string{string(r.RefA.ElementRefID), string(r.RefB.ElementRefID)} {
			if e != "DOCUMENT" && !ids[e] {
				t.Errorf("relationship %s %s refers to unknown %s", r.RefA.ElementRefID, r.Relationship, e)
			}
		}
	}
	// The Go module used by two binaries is one package naming both.
	for _, p := range doc.Packages {
		if p.PackageName == "golang.org/x/sys" && !strings.Contains(p.PackageComment, "/init, /usr/bin/keel-sshd") {
			t.Errorf("x/sys comment %q", p.PackageComment)
		}
		if p.PackageName == "openssh-server" && p.PackageSourceInfo != "built from Debian source package openssh 1:9.2p1-2+deb12u3" {
			t.Errorf("openssh source info %q", p.PackageSourceInfo)
		}
	}
}

func TestSummary(t *testing.T) {
	data, err := Marshal(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CountsLine(), "1 kernel, 3 images, 2 Debian packages, 4 Go modules"; got != want {
		t.Errorf("counts %q, want %q", got, want)
	}
	text := s.String()
	for _, want := range []string{"SBOM host-amd64 (created 2024-01-01T00:00:00Z)", "kernel", "6.1.0-18-amd64", "image init", "image onboot", "image service", "sshd", "openssh-server", "golang.org/x/sys"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	// Images are listed in boot order.
	if i, j := strings.Index(text, "image init"), strings.Index(text, "image service"); i > j {
		t.Errorf("init listed after service:\n%s", text)
	}
	if _, err := Summarize(strings.NewReader(`{"hello": 1}`)); err == nil {
		t.Error("Summarize accepted a non-SPDX document")
	}
}

func TestEmptyNameFails(t *testing.T) {
	if _, err := Marshal(Input{}); err == nil {
		t.Fatal("no error for an input without a name")
	}
}

func TestGoModulesOfGoBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool builds the sample binary: %v", err)
	}
	// Test binaries record no dependencies in their build info, so build
	// a real program with one. Without VCS stamping: from a clean checkout
	// go would give the main module a pseudo-version, "(devel)" from a
	// dirty one.
	exe := filepath.Join(t.TempDir(), "gobin")
	cmd := exec.Command(goTool, "build", "-buildvcs=false", "-o", exe, "./testdata/gobin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mods, err := GoModulesFile(exe, "/usr/bin/x")
	if err != nil {
		t.Fatal(err)
	}
	want := []GoModule{
		{Path: "stdlib", Version: strings.Fields(runtime.Version())[0], Binary: "/usr/bin/x"},
		{Path: "github.com/keelos/keel", Version: "(devel)", Binary: "/usr/bin/x"},
		{Path: "github.com/google/uuid", Version: "v1.6.0", Sum: "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=", Binary: "/usr/bin/x"},
	}
	if !slices.Equal(mods, want) {
		t.Fatalf("got %+v\nwant %+v", mods, want)
	}
	// Not a Go binary: no modules, no error.
	mods, err = GoModules(strings.NewReader("#!/bin/sh\necho hello, this is not an ELF file at all.............\n"), "/bin/x")
	if err != nil || mods != nil {
		t.Fatalf("shell script: %v, %v", mods, err)
	}
}

func TestDebianFromLabel(t *testing.T) {
	// The format internal/pkgbuild writes (json of []imagelabel.Deb).
	label := `[{"name":"openssh-server","version":"1:9.2p1-2","arch":"amd64","source":"openssh","sha256":"aa"},` +
		`{"name":"libssl3","version":"3.0.15-1~deb12u1","arch":"amd64","source":"openssl (3.0.15-1~deb12u1)","sha256":"bb"}]`
	got, err := DebianFromLabel(label, "sshd")
	if err != nil {
		t.Fatal(err)
	}
	want := []DebianPackage{
		{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64", Source: "openssh", SHA256: "aa", Image: "sshd"},
		{Name: "libssl3", Version: "3.0.15-1~deb12u1", Arch: "amd64", Source: "openssl", SourceVersion: "3.0.15-1~deb12u1", SHA256: "bb", Image: "sshd"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got, err := DebianFromLabel("", "x"); err != nil || got != nil {
		t.Fatalf("empty label: %v %v", got, err)
	}
	if _, err := DebianFromLabel("{", "x"); err == nil {
		t.Fatal("bad label accepted")
	}
}

func TestProvenanceMarshal(t *testing.T) {
	p := Provenance{SpecSHA256: "aa", LockSHA256: "", KeelVersion: "v1"}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"spec_sha256\": \"aa\",\n  \"lock_sha256\": \"\",\n  \"keel_version\": \"v1\"\n}\n"
	if string(data) != want {
		t.Fatalf("got %q, want %q", data, want)
	}
	back, err := ParseProvenance(data)
	if err != nil || back != p {
		t.Fatalf("parse: %+v %v", back, err)
	}
}

func TestSigningCertRecorded(t *testing.T) {
	in := sampleInput()
	in.SigningCertSHA256 = strings.Repeat("ab", 32)
	doc, err := Document(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Packages[0].PackageComment, SigningCertComment+in.SigningCertSHA256; got != want {
		t.Errorf("image package comment %q, want %q", got, want)
	}
	unsigned, err := Document(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	if c := unsigned.Packages[0].PackageComment; c != "" {
		t.Errorf("unsigned image package comment %q, want none", c)
	}
}
