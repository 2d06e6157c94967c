// Package sbom writes and reads the software bill of materials of a keel
// image: an SPDX 2.3 JSON document listing every container image by
// digest, every Debian package with its version and source, every Go
// module compiled into the image's Go binaries, and the kernel.
//
// The document is reproducible: the same Input gives the same bytes.
// Everything is sorted, the creation time is the caller's (the build's
// SOURCE_DATE_EPOCH), and the document namespace is derived from a hash
// of the content instead of a random UUID as most SBOM tools use.
//
// The package also defines what keel records under /etc/keel in every
// image (Paths, Provenance), so the builder that writes those files and
// `keel inspect` that reads them agree on names and formats.
package sbom

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/keelos/keel/internal/layout"
)

// Files keel writes into every image, relative to the image root (where
// internal/layout puts them).
const (
	SpecPath       = layout.Spec       // the resolved spec
	ProvenancePath = layout.Provenance // Provenance
	SBOMPath       = layout.SBOM       // this package's document
	FileSuffix     = ".spdx.json"      // next to the outputs: NAME-ARCH.spdx.json
	namespaceBase  = "https://github.com/keelos/keel/spdx/"
	noAssertion    = "NOASSERTION"
	rootID         = "Image"
	kernelID       = "Kernel"
	roleComment    = "keel role: " // prefix of an image package's comment
	binariesPrefix = "Go binaries: "
)

// Image roles, in the order an image boots.
var Roles = []string{"init", "kernel", layout.KindOnboot, layout.KindService, layout.KindOnshutdown}

// Image is one OCI image the build used.
type Image struct {
	Role   string // one of Roles
	Name   string // container or package name, e.g. "sshd"
	Ref    string // as resolved, e.g. "docker.io/library/alpine:3.20"
	Digest string // "sha256:…", the manifest digest
}

// DebianPackage is one .deb unpacked into an image.
type DebianPackage struct {
	Name, Version, Arch   string
	Source, SourceVersion string // the source package; empty means same as binary
	SHA256                string // of the .deb, hex
	// Image is the Name of the Image the package was unpacked into; empty
	// means the image as a whole.
	Image string
}

// GoModule is one module linked into a Go binary of the image.
type GoModule struct {
	Path    string // module path; "stdlib" for the Go standard library
	Version string // "v1.2.3", "(devel)" for a main module built from a tree, "go1.26.0" for stdlib
	Sum     string // go.sum hash "h1:…", empty for the main module and stdlib
	// Binary is where the binary lives in the image, e.g. "/init"; GoModules
	// fills it with the name it was given.
	Binary string
}

// Input is everything the SBOM of one image records.
type Input struct {
	Name string // the spec's name, e.g. "host"
	Arch string // amd64, arm64
	// Kernel is the kernel release, e.g. "6.1.0-18-amd64"; KernelSHA256
	// (hex, optional) the digest of the kernel image file.
	Kernel, KernelSHA256 string
	Images               []Image
	Debian               []DebianPackage
	Go                   []GoModule
	// SpecSHA256 and LockSHA256 are the hex SHA-256 of the resolved spec
	// and of build.lock (empty: the build was not locked).
	SpecSHA256, LockSHA256 string
	// Tool names the creator, e.g. "keel-v0.3.0"; empty means "keel".
	Tool string
	// Created is the document's creation time; use the build's epoch, not
	// time.Now, or the document is not reproducible. The zero value is
	// written as 1970-01-01T00:00:00Z.
	Created time.Time
}

// Write writes the SBOM of in as indented SPDX 2.3 JSON on w.
func Write(w io.Writer, in Input) error {
	doc, err := Document(in)
	if err != nil {
		return err
	}
	// Buffered so a failure never leaves half a document behind on w.
	var buf bytes.Buffer
	if err := spdxjson.Write(doc, &buf, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("sbom: encode: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("sbom: write: %w", err)
	}
	return nil
}

// Marshal is Write into a byte slice.
func Marshal(in Input) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// normalize returns a sorted, de-duplicated copy of in, so callers may
// pass lists in any order.
func normalize(in Input) Input {
	out := in
	// The same instant in another zone is the same document.
	if out.Created.IsZero() {
		out.Created = time.Unix(0, 0)
	}
	out.Created = out.Created.UTC()
	out.Images = slices.Clone(in.Images)
	slices.SortFunc(out.Images, func(a, b Image) int {
		return cmp.Or(cmp.Compare(roleRank(a.Role), roleRank(b.Role)), cmp.Compare(a.Role, b.Role),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Digest, b.Digest))
	})
	out.Images = slices.Compact(out.Images)
	out.Debian = slices.Clone(in.Debian)
	slices.SortFunc(out.Debian, func(a, b DebianPackage) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Image, b.Image), cmp.Compare(a.SHA256, b.SHA256), cmp.Compare(a.Source, b.Source),
			cmp.Compare(a.SourceVersion, b.SourceVersion))
	})
	out.Debian = slices.Compact(out.Debian)
	out.Go = slices.Clone(in.Go)
	slices.SortFunc(out.Go, func(a, b GoModule) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Sum, b.Sum), cmp.Compare(a.Binary, b.Binary))
	})
	out.Go = slices.Compact(out.Go)
	return out
}

func roleRank(r string) int {
	if i := slices.Index(Roles, r); i >= 0 {
		return i
	}
	return len(Roles)
}

// Document builds the SPDX document of in, for callers that want to add
// to it before writing; Write is Document plus the JSON writer.
func Document(in Input) (*spdx.Document, error) {
	if in.Name == "" {
		return nil, fmt.Errorf("sbom: empty image name")
	}
	in = normalize(in)
	// The namespace must be unique per document; a hash of the normalized
	// input is, and unlike a random UUID it keeps the output reproducible.
	canon, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("sbom: hash input: %w", err)
	}
	sum := sha256.Sum256(canon)
	docName := in.Name
	if in.Arch != "" {
		docName += "-" + in.Arch
	}
	tool := in.Tool
	if tool == "" {
		tool = "keel"
	}

	ids := idSet{}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      docName,
		DocumentNamespace: namespaceBase + url.PathEscape(docName) + "-" + hex.EncodeToString(sum[:]),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool}},
			Created:  in.Created.Format(time.RFC3339),
		},
	}
	root := &spdx.Package{
		PackageName:             in.Name,
		PackageSPDXIdentifier:   ids.add(rootID),
		PackageVersion:          in.Arch,
		PackageDownloadLocation: noAssertion,
		PrimaryPackagePurpose:   "OPERATING-SYSTEM",
		PackageSourceInfo:       sourceInfo(in.SpecSHA256, in.LockSHA256),
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, rel("DOCUMENT", root.PackageSPDXIdentifier, common.TypeRelationshipDescribe))
	contains := func(parent, child common.ElementID) {
		doc.Relationships = append(doc.Relationships, rel(parent, child, common.TypeRelationshipContains))
	}

	if in.Kernel != "" {
		k := &spdx.Package{
			PackageName:             "linux",
			PackageSPDXIdentifier:   ids.add(kernelID),
			PackageVersion:          in.Kernel,
			PackageDownloadLocation: noAssertion,
			PrimaryPackagePurpose:   "OPERATING-SYSTEM",
			PackageExternalReferences: []*spdx.PackageExternalReference{
				purlRef("pkg:generic/linux@" + url.PathEscape(in.Kernel) + archQualifier(in.Arch)),
			},
		}
		if in.KernelSHA256 != "" {
			k.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: strings.TrimPrefix(in.KernelSHA256, "sha256:")}}
		}
		doc.Packages = append(doc.Packages, k)
		contains(root.PackageSPDXIdentifier, k.PackageSPDXIdentifier)
	}

	imageIDs := map[string]common.ElementID{} // by Image.Name, for Debian packages
	for _, im := range in.Images {
		p := &spdx.Package{
			PackageName:             im.Name,
			PackageSPDXIdentifier:   ids.add("Image-" + im.Role + "-" + im.Name),
			PackageVersion:          im.Digest,
			PackageDownloadLocation: noAssertion,
			PrimaryPackagePurpose:   "CONTAINER",
			PackageComment:          roleComment + im.Role,
			PackageExternalReferences: []*spdx.PackageExternalReference{
				purlRef(ociPURL(im)),
			},
		}
		if alg, hexDigest, ok := strings.Cut(im.Digest, ":"); ok && alg == "sha256" {
			p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: hexDigest}}
		}
		doc.Packages = append(doc.Packages, p)
		contains(root.PackageSPDXIdentifier, p.PackageSPDXIdentifier)
		if _, ok := imageIDs[im.Name]; !ok {
			imageIDs[im.Name] = p.PackageSPDXIdentifier
		}
	}

	for _, d := range in.Debian {
		p := &spdx.Package{
			PackageName:             d.Name,
			PackageSPDXIdentifier:   ids.add("Deb-" + d.Name + "-" + d.Arch),
			PackageVersion:          d.Version,
			PackageDownloadLocation: noAssertion,
			PackageSupplier:         &common.Supplier{SupplierType: "Organization", Supplier: "Debian"},
			PrimaryPackagePurpose:   "INSTALL",
			PackageExternalReferences: []*spdx.PackageExternalReference{
				purlRef(debPURL(d)),
			},
		}
		if src, ver := d.source(); src != d.Name || ver != d.Version {
			p.PackageSourceInfo = "built from Debian source package " + src + " " + ver
		}
		if d.SHA256 != "" {
			p.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: strings.TrimPrefix(d.SHA256, "sha256:")}}
		}
		doc.Packages = append(doc.Packages, p)
		parent := root.PackageSPDXIdentifier
		if id, ok := imageIDs[d.Image]; ok {
			parent = id
		}
		contains(parent, p.PackageSPDXIdentifier)
	}

	// A module linked into several binaries is listed once, naming them all.
	type modKey struct{ path, version, sum string }
	var mods []modKey
	bins := map[modKey][]string{}
	for _, m := range in.Go {
		k := modKey{m.Path, m.Version, m.Sum}
		if _, ok := bins[k]; !ok {
			mods = append(mods, k)
			bins[k] = nil
		}
		if m.Binary != "" && !slices.Contains(bins[k], m.Binary) {
			bins[k] = append(bins[k], m.Binary)
		}
	}
	for _, k := range mods {
		p := &spdx.Package{
			PackageName:             k.path,
			PackageSPDXIdentifier:   ids.add("Go-" + k.path + "-" + k.version),
			PackageVersion:          k.version,
			PackageDownloadLocation: noAssertion,
			PrimaryPackagePurpose:   "LIBRARY",
			PackageExternalReferences: []*spdx.PackageExternalReference{
				purlRef(goPURL(k.path, k.version)),
			},
		}
		if k.path == "stdlib" {
			p.PackageDownloadLocation = "https://go.dev/dl/"
		} else if k.version != "" && k.version != "(devel)" {
			p.PackageDownloadLocation = "https://proxy.golang.org/" + escapeModulePath(k.path) + "/@v/" + k.version + ".zip"
		}
		if b := bins[k]; len(b) > 0 {
			slices.Sort(b)
			p.PackageComment = binariesPrefix + strings.Join(b, ", ")
		}
		if h, ok := strings.CutPrefix(k.sum, "h1:"); ok {
			// go.sum's h1: is a SHA-256 (base64) of the module's file
			// list, not of a downloadable file, so it goes in the comment
			// rather than in checksums.
			p.PackageComment = strings.TrimSpace(p.PackageComment + "\ngo.sum h1:" + h)
		}
		doc.Packages = append(doc.Packages, p)
		contains(root.PackageSPDXIdentifier, p.PackageSPDXIdentifier)
	}
	return doc, nil
}

func sourceInfo(spec, lock string) string {
	if spec == "" && lock == "" {
		return ""
	}
	s := "built by keel from spec sha256:" + orNone(spec)
	return s + ", build.lock sha256:" + orNone(lock)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func rel(a, b common.ElementID, typ string) *spdx.Relationship {
	return &spdx.Relationship{
		RefA:         common.DocElementID{ElementRefID: a},
		RefB:         common.DocElementID{ElementRefID: b},
		Relationship: typ,
	}
}

func purlRef(purl string) *spdx.PackageExternalReference {
	return &spdx.PackageExternalReference{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl}
}

func archQualifier(arch string) string {
	if arch == "" {
		return ""
	}
	return "?arch=" + url.QueryEscape(arch)
}

// ociPURL follows the purl spec for OCI: the name is the last path
// component, the version the digest, the repository a qualifier.
func ociPURL(im Image) string {
	repo := im.Ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	// Strip a tag, but not a registry port.
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	name := repo
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		name = im.Name
	}
	s := "pkg:oci/" + url.PathEscape(strings.ToLower(name))
	if im.Digest != "" {
		s += "@" + strings.ReplaceAll(im.Digest, ":", "%3A") // as the purl spec's examples write it
	}
	if repo != "" {
		s += "?repository_url=" + url.QueryEscape(repo)
	}
	return s
}

func (d DebianPackage) source() (string, string) {
	src, ver := d.Source, d.SourceVersion
	if src == "" {
		src = d.Name
	}
	if ver == "" {
		ver = d.Version
	}
	return src, ver
}

func debPURL(d DebianPackage) string {
	s := "pkg:deb/debian/" + url.PathEscape(d.Name)
	if d.Version != "" {
		s += "@" + url.PathEscape(d.Version)
	}
	q := url.Values{}
	if d.Arch != "" {
		q.Set("arch", d.Arch)
	}
	if src, ver := d.source(); src != d.Name || ver != d.Version {
		q.Set("upstream", src+"@"+ver)
	}
	if len(q) > 0 {
		s += "?" + q.Encode() // Encode sorts the keys
	}
	return s
}

func goPURL(path, version string) string {
	s := "pkg:golang/" + path
	if version != "" {
		s += "@" + url.PathEscape(version)
	}
	return s
}

// escapeModulePath is the module proxy's case encoding: upper-case
// letters become '!' and the lower-case letter.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// idSet hands out SPDX identifiers: letters, digits, '.' and '-' only,
// unique within the document.
type idSet map[common.ElementID]bool

func (s idSet) add(want string) common.ElementID {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, want)
	id := common.ElementID(clean)
	for n := 2; s[id]; n++ {
		id = common.ElementID(fmt.Sprintf("%s-%d", clean, n))
	}
	s[id] = true
	return id
}
