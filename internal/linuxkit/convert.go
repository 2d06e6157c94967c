// Package linuxkit translates LinuxKit's YAML image configurations into a
// keel spec (`keel convert linuxkit`). Every key LinuxKit documents is
// either carried over to its keel equivalent, with LinuxKit's defaults
// made explicit where keel's differ, or reported with its file and line
// as a Problem; nothing is dropped silently. docs/linuxkit.md is the
// mapping, key by key.
package linuxkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keelos/keel/internal/spec"
)

// MaxInputSize bounds a YAML file, as keel bounds a spec file.
const MaxInputSize = spec.MaxFileSize

// An Input is one LinuxKit YAML file.
type Input struct {
	Name string // as the user named it: problems are reported with it
	Data []byte
}

// Options are the choices of a conversion.
type Options struct {
	// ImageMap replaces image references of the YAML.
	ImageMap []Mapping
	// WorkDir is where a relative files.source is found: LinuxKit reads
	// it from the directory linuxkit build runs in.
	WorkDir string
	// HomeDir replaces ~ in a files.source.
	HomeDir string
	// OutDir is the directory of the spec being written: keel resolves
	// its local image references and file sources from there.
	OutDir string
	// Formats become [output] formats: keel's names or LinuxKit's
	// (spec.ResolveFormat).
	Formats []string
}

// Result is a conversion's spec and what it could not carry over.
type Result struct {
	Spec     *spec.Spec // nil when an input is invalid
	TOML     []byte     // Spec as a spec file, with a header naming the inputs
	Problems []Problem  // in input and position order
}

// Has says whether some problem is at least as severe as s.
func (r *Result) Has(s Severity) bool {
	return slices.ContainsFunc(r.Problems, func(p Problem) bool { return p.Severity >= s })
}

// converter carries one conversion's state.
type converter struct {
	opts     Options
	problems []Problem
	used     []bool                  // which ImageMap entries matched an image
	labels   map[string]*spec.Config // package directory → its [config] (nil: none)
	ids      map[string]uint32       // LinuxKit's uid/gid per container name
	volumes  map[string]*volume
}

func (c *converter) add(sev Severity, at value, path, format string, args ...any) {
	p := Problem{File: at.file, Path: path, Msg: fmt.Sprintf(format, args...), Severity: sev}
	if at.n != nil {
		p.Line, p.Col = at.n.Line, at.n.Column
	}
	c.problems = append(c.problems, p)
}

func (c *converter) warn(at value, path, format string, args ...any) {
	c.add(Warning, at, path, format, args...)
}

func (c *converter) unsupported(at value, path, format string, args ...any) {
	c.add(Unsupported, at, path, format, args...)
}

func (c *converter) invalid(at value, path, format string, args ...any) {
	c.add(Invalid, at, path, format, args...)
}

func (c *converter) failed() bool {
	return slices.ContainsFunc(c.problems, func(p Problem) bool { return p.Severity == Invalid })
}

// config is the merged content of the input files, as LinuxKit merges
// them: kernel keys set later win, every list is appended.
type config struct {
	kernel     []field
	init       []strAt
	onboot     []value
	onshutdown []value
	services   []value
	trust      []field
	files      []value
	volumes    []value
}

var topKeys = []string{"kernel", "init", "onboot", "onshutdown", "services", "trust", "files", "volumes"}

// Convert translates LinuxKit YAML files, merged in order, into a keel
// spec. Problems of the input are in the Result; an error is returned
// only for bad options.
func Convert(inputs []Input, opts Options) (*Result, error) {
	if len(inputs) == 0 {
		return nil, errors.New("no LinuxKit file to convert")
	}
	if err := checkMappings(opts.ImageMap); err != nil {
		return nil, err
	}
	var formats []string
	for _, f := range opts.Formats {
		k, err := spec.ResolveFormat(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(formats, k) {
			formats = append(formats, k)
		}
	}
	c := &converter{
		opts:    opts,
		used:    make([]bool, len(opts.ImageMap)),
		labels:  map[string]*spec.Config{},
		volumes: map[string]*volume{},
	}
	var cfg config
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
		c.parse(in, &cfg)
	}
	res := &Result{}
	// Converted even when a file is invalid, so that one run reports
	// every problem.
	s := c.convert(&cfg, inputs[0].Name)
	s.Output.Formats = formats
	for i, m := range opts.ImageMap {
		if !c.used[i] {
			c.problems = append(c.problems, Problem{Path: "--image-map " + m.From + "=" + m.To, Msg: "matched no image", Severity: Warning})
		}
	}
	sortProblems(c.problems, names)
	res.Problems = c.problems
	if c.failed() {
		return res, nil
	}
	body, err := spec.Marshal(s)
	if err != nil {
		return nil, err
	}
	// Marshal writes [output] even when it holds nothing.
	body = bytes.TrimSuffix(body, []byte("\n[output]\n"))
	var b bytes.Buffer
	// A file name may hold anything but must not end the comment.
	printable := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.Join(names, ", "))
	fmt.Fprintf(&b, "# Converted from LinuxKit's %s by keel convert linuxkit.\n", strings.ToValidUTF8(printable, "?"))
	b.WriteString("# docs/linuxkit.md says how each LinuxKit key became a keel key.\n\n")
	b.Write(body)
	// What is written must load: a spec keel refuses is this package's bug.
	if _, err := spec.Parse(filepath.Join(opts.OutDir, spec.DefaultSpecFile), b.Bytes()); err != nil {
		return nil, fmt.Errorf("the converted spec does not load: %w", err)
	}
	res.Spec, res.TOML = s, b.Bytes()
	return res, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// parse reads one file's first YAML document into cfg.
func (c *converter) parse(in Input, cfg *config) {
	file := value{file: in.Name}
	if len(in.Data) > MaxInputSize {
		c.invalid(file, "", "larger than %d bytes: not a LinuxKit configuration", MaxInputSize)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(in.Data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return // an empty file is an empty configuration
		}
		msg := err.Error()
		p := Problem{File: in.Name, Msg: strings.TrimPrefix(msg, "yaml: "), Severity: Invalid}
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Col = 1
			p.Msg = msg[len(m[0]):]
		}
		c.problems = append(c.problems, p)
		return
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		// LinuxKit reads the first document only.
		c.warn(value{in.Name, &next}, "", "a second YAML document: ignored, as LinuxKit ignores it")
	}
	if _, ok := expandedSize(&doc, map[*yaml.Node]int{}, map[*yaml.Node]bool{}, maxExpanded); !ok {
		c.invalid(file, "", "its aliases expand to more than %d nodes, or one contains itself", maxExpanded)
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	top, ok := c.fields(value{in.Name, doc.Content[0]}, "")
	if !ok {
		return
	}
	for _, f := range top {
		switch f.key {
		case "kernel":
			if kf, ok := c.fields(f.val, "kernel"); ok {
				cfg.kernel = append(cfg.kernel, kf...)
			}
		case "init":
			if refs, ok := c.strs(f.val, "init"); ok {
				cfg.init = append(cfg.init, refs...)
			}
		case "onboot", "onshutdown", "services", "files", "volumes":
			items, ok := c.list(f.val, f.key)
			if !ok {
				continue
			}
			dst := map[string]*[]value{"onboot": &cfg.onboot, "onshutdown": &cfg.onshutdown,
				"services": &cfg.services, "files": &cfg.files, "volumes": &cfg.volumes}[f.key]
			*dst = append(*dst, items...)
		case "trust":
			if tf, ok := c.fields(f.val, "trust"); ok {
				cfg.trust = append(cfg.trust, tf...)
			}
		default:
			c.invalid(f.keyAt, f.key, "unknown key (LinuxKit's are %s)", strings.Join(topKeys, ", "))
		}
	}
}

// convert makes the spec of a merged configuration.
func (c *converter) convert(cfg *config, first string) *spec.Spec {
	s := &spec.Spec{}
	base := strings.TrimSuffix(filepath.Base(first), filepath.Ext(first))
	if n := keelName(base); spec.CheckName(n) == nil {
		// LinuxKit names its outputs after the first file.
		s.Name = n
	}
	onboot := c.entries("onboot", cfg.onboot)
	onshutdown := c.entries("onshutdown", cfg.onshutdown)
	services := c.entries("services", cfg.services)
	c.ids = containerIDs(onboot, onshutdown, services)
	volumeFiles := c.convertVolumes(cfg.volumes)
	s.Kernel = c.convertKernel(cfg.kernel)
	s.Init = c.convertInit(cfg.init)
	c.convertTrust(cfg.trust)
	s.Onboot = c.containers(onboot)
	s.Onshutdown = c.containers(onshutdown)
	s.Services = c.containers(services)
	s.Files = c.convertFiles(volumeFiles, cfg.files)
	return s
}

// convertKernel applies LinuxKit's merge of kernel sections: a key set
// (to a non-empty value; tar and ucode even empty) by a later file wins.
func (c *converter) convertKernel(fs []field) spec.Kernel {
	last := map[string]field{}
	for _, f := range fs {
		p := join("kernel", f.key)
		switch f.key {
		case "image", "cmdline", "binary":
			s, ok := c.str(f.val, p)
			if ok && s != "" {
				last[f.key] = f
			}
		case "tar", "ucode":
			if _, ok := c.str(f.val, p); ok {
				last[f.key] = f
			}
		default:
			c.invalid(f.keyAt, p, "unknown key (LinuxKit's are image, cmdline, binary, tar, ucode)")
		}
	}
	var k spec.Kernel
	text := func(key string) string { return last[key].val.node().Value }
	if f, ok := last["cmdline"]; ok {
		k.Cmdline = text("cmdline")
		if msg := checkKernel(k); msg != "" {
			c.unsupported(f.val, "kernel.cmdline", "%s", msg)
			k.Cmdline = ""
		}
	}
	if f, ok := last["binary"]; ok && text("binary") != "kernel" {
		c.unsupported(f.val, "kernel.binary", "keel boots the kernel image's /kernel or /boot/vmlinuz-*, not %s: rebuild the image with the kernel at /kernel, or map it to a keel kernel package", text("binary"))
	}
	tar := "kernel.tar"
	if f, ok := last["tar"]; ok {
		tar = text("tar")
		if tar != "" && tar != "none" && tar != "kernel.tar" {
			c.unsupported(f.val, "kernel.tar", "keel does not unpack a tarball of the kernel image: it takes /lib/modules from the image itself")
		}
	}
	if f, ok := last["ucode"]; ok && text("ucode") != "" {
		c.unsupported(f.val, "kernel.ucode", "keel does not prepend CPU microcode to the initramfs")
	}
	f, ok := last["image"]
	if !ok {
		c.warn(value{}, "kernel.image", "no kernel: keel builds bootable images and needs kernel.image; give it in another spec file (keel build build.toml kernel.toml)")
		return k
	}
	ref, mapped := c.mapImage(text("image"))
	switch {
	case mapped && ref == "":
		c.unsupported(f.val, "kernel.image", "--image-map drops the kernel, which keel needs")
		return k
	case !mapped && !c.checkRef(ref, f.val, "kernel.image"):
		return k
	}
	k.Image = spec.ImageRef{Ref: ref}
	if !spec.IsLocalRef(ref) && (tar == "kernel.tar" || tar == "kernel.tar.gz") {
		c.warn(f.val, "kernel.image", "keel boots /kernel of %s but does not unpack its %s: modules in that tarball are not in the image (LinuxKit's kernels build most drivers in; map the image to a keel kernel package with --image-map for loadable modules)", ref, tar)
	}
	return k
}

// checkKernel returns why keel refuses a kernel section, "" when it takes it.
func checkKernel(k spec.Kernel) string {
	es := specErrors(&spec.Spec{Kernel: k})
	if len(es) == 0 {
		return ""
	}
	return message(es[0])
}

// convertInit maps the init images. LinuxKit's own PID 1 and container
// runtime have no place in keel, whose init runs the containers.
func (c *converter) convertInit(refs []strAt) []spec.ImageRef {
	var out []spec.ImageRef
	for i, r := range refs {
		p := index("init", i)
		ref, mapped := c.mapImage(r.s)
		switch {
		case mapped && ref == "":
			c.warn(r.at, p, "%s dropped by --image-map", r.s)
			continue
		case !mapped:
			if !c.checkRef(ref, r.at, p) {
				continue
			}
			switch sys := systemImage(ref); sys {
			case "":
			case "linuxkit/init":
				c.unsupported(r.at, p, "%s is LinuxKit's init: keel's own init is PID 1 and runs the containers; map it to keel's init package (--image-map %s=PATH/init)", ref, sys)
				continue
			default:
				c.unsupported(r.at, p, "%s is LinuxKit's container runtime, which keel's init replaces: leave it out (--image-map %s=)", ref, sys)
				continue
			}
		}
		out = append(out, spec.ImageRef{Ref: ref})
	}
	if len(out) == 0 && len(refs) > 0 {
		c.warn(refs[0].at, "init", "no init image is left: the image has no PID 1 until keel's init package is in init")
	}
	return out
}

// convertTrust reports LinuxKit's Docker Content Trust section.
func (c *converter) convertTrust(fs []field) {
	for _, f := range fs {
		p := join("trust", f.key)
		switch f.key {
		case "image", "org":
			refs, ok := c.strs(f.val, p)
			if ok && len(refs) > 0 {
				c.unsupported(f.keyAt, p, "keel has no Docker Content Trust (Notary) check: pin images by digest (NAME@sha256:…) and use keel lock and keel build --locked")
			}
		default:
			c.invalid(f.keyAt, p, "unknown key (LinuxKit's are image, org)")
		}
	}
}

// keelName makes a LinuxKit name a keel name: lower case, other
// characters than letters, digits and - replaced by -, at most 63.
func keelName(s string) string {
	b := []byte(s)
	for i, ch := range b {
		switch {
		case ch >= 'A' && ch <= 'Z':
			b[i] = ch - 'A' + 'a'
		case !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'):
			b[i] = '-'
		}
	}
	out := strings.TrimLeft(string(b), "-")
	if len(out) > spec.MaxNameLen {
		out = strings.TrimRight(out[:spec.MaxNameLen], "-")
	}
	return out
}
