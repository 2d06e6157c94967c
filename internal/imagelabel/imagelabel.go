// Package imagelabel names the labels keel's package builder sets on the
// images it builds. The build, build.lock and the SBOM read them back,
// from keel's own images and from pulled ones alike (where they are
// untrusted input: see spec.ParseLabel for org.keel.config).
package imagelabel

const (
	// Config holds the JSON of the package's default runtime
	// configuration, a spec.Config.
	Config = "org.keel.config"
	// MobyConfig holds the JSON of a LinuxKit package's runtime
	// configuration, LinuxKit's keys (see linuxkit.ParseLabel). keel
	// reads it from pulled images and never writes it.
	MobyConfig = "org.mobyproject.config"
	// Debian holds the JSON list of the Debian packages unpacked into the
	// image, as Deb entries; images without Debian packages lack it.
	Debian = "org.keel.debian"
	// Package holds the package's name.
	Package = "org.keel.package"
)

// Deb is one entry of the Debian label.
type Deb struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	// Source is the source package's name; readers also accept Debian's
	// own form, "name (version)" when the source's version differs.
	Source string `json:"source"`
	SHA256 string `json:"sha256"` // of the .deb
}
