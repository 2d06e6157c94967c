package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/epoch"
	"github.com/keelos/keel/internal/imageread/imagetest"
	"github.com/keelos/keel/internal/sbom"
)

const inspectSpec = "name = \"host\"\n\n[kernel]\nimage = \"./kernel\"\n"

// inspectOutputs writes every output format of a root holding what a
// keel build records in /etc/keel (or only files, when given).
func inspectOutputs(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if files == nil {
		sum := sha256.Sum256([]byte(inspectSpec))
		prov, err := sbom.Provenance{SpecSHA256: hex.EncodeToString(sum[:]), LockSHA256: strings.Repeat("b", 64), KeelVersion: "v9.9.9"}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		doc, err := sbom.Marshal(sbom.Input{
			Name: "host", Arch: "amd64", Kernel: "6.1.0-18-amd64",
			Images:  []sbom.Image{{Role: "service", Name: "sshd", Ref: "keel/sshd:x", Digest: "sha256:" + strings.Repeat("c", 64)}},
			Debian:  []sbom.DebianPackage{{Name: "openssh-server", Version: "1:9.2p1-2", Arch: "amd64", Source: "openssh", Image: "sshd"}},
			Go:      []sbom.GoModule{{Path: "stdlib", Version: "go1.26.0", Binary: "/init"}},
			Created: epoch.Default(),
		})
		if err != nil {
			t.Fatal(err)
		}
		files = map[string]string{
			"init":              "init",
			sbom.SpecPath:       inspectSpec,
			sbom.ProvenancePath: string(prov),
			sbom.SBOMPath:       string(doc),
		}
	}
	root, err := imagetest.Tree(filepath.Join(dir, "store"), files)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := imagetest.Outputs(dir, "host", root)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func TestInspectEveryFormat(t *testing.T) {
	outs := inspectOutputs(t, nil)
	for _, format := range []string{"kernel+initrd", "tar", "uki", "iso-efi", "raw-efi", "qcow2-efi"} {
		code, stdout, stderr := keel(t, "inspect", outs[format])
		if code != 0 {
			t.Errorf("%s: exit %d: %s", format, code, stderr)
			continue
		}
		for _, want := range []string{
			"format:      " + format + " (",
			"built by:    keel v9.9.9",
			"build.lock:  sha256:" + strings.Repeat("b", 64),
			inspectSpec,
			"1 kernel, 1 image, 1 Debian package, 1 Go module",
			"openssh-server",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: output lacks %q:\n%s", format, want, stdout)
			}
		}
		if strings.Contains(stdout, "warning") {
			t.Errorf("%s: unexpected warning:\n%s", format, stdout)
		}
	}
}

func TestInspectJSONAndFile(t *testing.T) {
	outs := inspectOutputs(t, nil)
	code, stdout, stderr := keel(t, "inspect", "--json", outs["qcow2-efi"])
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	// Every documented key is there, warnings too when there is none.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"image", "format", "layers", "spec", "spec_sha256", "provenance", "sbom", "warnings"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("--json lacks %q:\n%s", k, stdout)
		}
	}
	if string(keys["warnings"]) != "[]" {
		t.Errorf("warnings = %s, want []", keys["warnings"])
	}
	if rep.Format != "qcow2-efi" || rep.Spec != inspectSpec || rep.Provenance == nil ||
		rep.Provenance.SpecSHA256 != rep.SpecSHA256 || rep.SBOM == nil || rep.SBOM.Counts["debian"] != 1 {
		t.Fatalf("report %+v", rep)
	}

	code, stdout, stderr = keel(t, "inspect", "--file", "/"+sbom.ProvenancePath, outs["iso-efi"])
	if code != 0 || !strings.Contains(stdout, `"keel_version": "v9.9.9"`) {
		t.Fatalf("--file: exit %d, %q, %s", code, stdout, stderr)
	}
	code, _, stderr = keel(t, "inspect", "--file", "/etc/nope", outs["tar"])
	if code != 1 || !strings.Contains(stderr, "no /etc/nope") {
		t.Fatalf("--file of a missing file: exit %d, %s", code, stderr)
	}
}

func TestInspectErrors(t *testing.T) {
	outs := inspectOutputs(t, map[string]string{"init": "init"})
	code, _, stderr := keel(t, "inspect", outs["tar"])
	if want := "keel inspect: " + outs["tar"] + ": not a keel image: no /etc/keel/build.toml\n"; code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
	notImage := writeFile(t, t.TempDir(), "x.img", "hello")
	if code, _, stderr := keel(t, "inspect", notImage); code != 1 || !strings.Contains(stderr, "not a keel output") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	for _, args := range [][]string{{"inspect"}, {"inspect", "a", "b"}, {"inspect", "--json", "--file", "/x", "a"}} {
		if code, _, stderr := keel(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	// Older images without provenance or SBOM still show their spec.
	outs = inspectOutputs(t, map[string]string{sbom.SpecPath: inspectSpec})
	code, stdout, stderr := keel(t, "inspect", outs["kernel+initrd"])
	if code != 0 || !strings.Contains(stdout, inspectSpec) || !strings.Contains(stdout, "warning:     no /etc/keel/provenance.json") {
		t.Errorf("exit %d, %s\n%s", code, stdout, stderr)
	}
}
