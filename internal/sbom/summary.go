package sbom

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Kinds of component in a Summary, in the order it lists them.
const (
	KindKernel = "kernel"
	KindImage  = "image"
	KindDebian = "debian"
	KindGo     = "go"
	KindOther  = "other"
)

var kinds = []string{KindKernel, KindImage, KindDebian, KindGo, KindOther}

// Summary is what `keel inspect` shows of an SBOM.
type Summary struct {
	Name       string         `json:"name"`
	Namespace  string         `json:"namespace"`
	Created    string         `json:"created"`
	Creators   []string       `json:"creators"`
	Counts     map[string]int `json:"counts"` // by kind
	Components []Component    `json:"components"`
}

// Component is one package of the document.
type Component struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Role    string `json:"role,omitempty"` // images: init, onboot, service, …
	PURL    string `json:"purl,omitempty"`
}

// Summarize reads an SPDX JSON document (any 2.x version the SPDX library
// reads, so documents from other tools work too) and lists its packages
// by kind. The package the document DESCRIBES, the image itself, is the
// summary's Name rather than a component.
func Summarize(r io.Reader) (Summary, error) {
	var doc spdx.Document
	if err := spdxjson.ReadInto(r, &doc); err != nil {
		return Summary{}, fmt.Errorf("sbom: read SPDX document: %w", err)
	}
	s := Summary{Name: doc.DocumentName, Namespace: doc.DocumentNamespace, Counts: map[string]int{}}
	if ci := doc.CreationInfo; ci != nil {
		s.Created = ci.Created
		for _, c := range ci.Creators {
			s.Creators = append(s.Creators, c.CreatorType+": "+c.Creator)
		}
	}
	described := map[common.ElementID]bool{}
	for _, r := range doc.Relationships {
		if r != nil && r.Relationship == common.TypeRelationshipDescribe && r.RefA.ElementRefID == doc.SPDXIdentifier {
			described[r.RefB.ElementRefID] = true
		}
	}
	for _, p := range doc.Packages {
		if p == nil || described[p.PackageSPDXIdentifier] {
			continue
		}
		c := Component{Name: p.PackageName, Version: p.PackageVersion, PURL: purlOf(p)}
		c.Kind = kindOf(c.PURL, p)
		if role, ok := strings.CutPrefix(p.PackageComment, roleComment); ok {
			c.Role, _, _ = strings.Cut(role, "\n")
		}
		s.Counts[c.Kind]++
		s.Components = append(s.Components, c)
	}
	slices.SortStableFunc(s.Components, func(a, b Component) int {
		return cmp.Or(cmp.Compare(slices.Index(kinds, a.Kind), slices.Index(kinds, b.Kind)),
			cmp.Compare(roleRank(a.Role), roleRank(b.Role)), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	return s, nil
}

func purlOf(p *spdx.Package) string {
	for _, r := range p.PackageExternalReferences {
		if r != nil && r.RefType == common.TypePackageManagerPURL {
			return r.Locator
		}
	}
	return ""
}

// kindOf classifies by package URL type, which other SBOM tools set too,
// and falls back to the SPDX purpose.
func kindOf(purl string, p *spdx.Package) string {
	switch {
	case strings.HasPrefix(purl, "pkg:generic/linux@"):
		return KindKernel
	case strings.HasPrefix(purl, "pkg:oci/"), strings.HasPrefix(purl, "pkg:docker/"):
		return KindImage
	case strings.HasPrefix(purl, "pkg:deb/"):
		return KindDebian
	case strings.HasPrefix(purl, "pkg:golang/"):
		return KindGo
	case p.PrimaryPackagePurpose == "CONTAINER":
		return KindImage
	}
	return KindOther
}

// CountsLine is "1 kernel, 5 images, 12 Debian packages, 30 Go modules".
func (s Summary) CountsLine() string {
	var parts []string
	for _, k := range kinds {
		n := s.Counts[k]
		if n == 0 && k == KindOther {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, kindNoun(k, n)))
	}
	return strings.Join(parts, ", ")
}

func kindNoun(k string, n int) string {
	noun := map[string]string{KindKernel: "kernel", KindImage: "image", KindDebian: "Debian package", KindGo: "Go module", KindOther: "other package"}[k]
	if n != 1 && k != KindKernel {
		noun += "s"
	}
	return noun
}

// WriteText writes the summary for people: a header, the counts, then
// one line per component.
func (s Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SBOM %s (created %s)\n", s.Name, s.Created)
	fmt.Fprintf(tw, "  %s\n", s.CountsLine())
	for _, c := range s.Components {
		what := c.Kind
		if c.Role != "" {
			what += " " + c.Role
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", what, c.Name, c.Version)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("sbom: write summary: %w", err)
	}
	return nil
}

// String is WriteText into a string.
func (s Summary) String() string {
	var b strings.Builder
	_ = s.WriteText(&b)
	return b.String()
}
