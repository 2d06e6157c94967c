package debian

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// relation is one alternative of a dependency: "name[:arch] [(rel version)]".
type relation struct {
	name    string
	arch    string // "", "any", "native" or an architecture
	rel     Relation
	version string
}

func (r relation) String() string {
	s := r.name
	if r.arch != "" {
		s += ":" + r.arch
	}
	if r.rel != "" {
		s += " (" + string(r.rel) + " " + r.version + ")"
	}
	return s
}

// parseRelations reads a Depends-style field: clauses separated by ",",
// alternatives by "|". Architecture restrictions ("[amd64]") and build
// profiles ("<!nocheck>") belong to source packages and are dropped.
func parseRelations(field string) [][]relation {
	var out [][]relation
	for _, clause := range strings.Split(field, ",") {
		var alts []relation
		for _, alt := range strings.Split(clause, "|") {
			if r, ok := parseRelation(alt); ok {
				alts = append(alts, r)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

func parseRelation(s string) (relation, bool) {
	var r relation
	if i := strings.IndexByte(s, '('); i >= 0 {
		cond := s[i+1:]
		s = s[:i]
		if j := strings.IndexByte(cond, ')'); j >= 0 {
			cond = cond[:j]
		}
		cond = strings.TrimSpace(cond)
		n := 0
		for n < len(cond) && strings.IndexByte("<>=", cond[n]) >= 0 {
			n++
		}
		r.rel = Relation(cond[:n])
		r.version = strings.TrimSpace(cond[n:])
		if r.rel == "" || r.version == "" {
			r.rel, r.version = "", ""
		}
	}
	// Restrictions are stripped after the version, whose relation has "<".
	s = strings.TrimSpace(stripDelimited(stripDelimited(s, '[', ']'), '<', '>'))
	r.name, r.arch, _ = strings.Cut(s, ":")
	if r.name == "" || strings.ContainsAny(r.name, " \t\n") {
		return relation{}, false
	}
	return r, true
}

// stripDelimited removes every "open…close" part of s.
func stripDelimited(s string, open, close byte) string {
	for {
		i := strings.IndexByte(s, open)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], close)
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+1:]
	}
}

// Resolve returns names and everything they need through Depends and
// Pre-Depends (Recommends and Suggests are ignored) in suite for arch,
// sorted by name. A name may pin a version as "name=version" or constrain
// it as "name (>= version)". Of alternatives, one already chosen is
// preferred, else the first that can be satisfied; virtual packages are
// satisfied through Provides. Names in exclude count as installed: they
// are neither returned nor traversed. Conflicts and Breaks are not
// checked, and Essential packages are not added implicitly.
//
// An unknown package or an unsatisfiable dependency is an error naming the
// chain that led to it ("openssh-server -> libfoo (>= 2): not found").
func (c *Client) Resolve(ctx context.Context, suite, arch string, names, exclude []string) ([]Package, error) {
	return c.ResolveIn(ctx, suite, arch, nil, names, exclude)
}

// ResolveIn is Resolve over the Packages indexes of the given archive
// components (for example "main" and "non-free-firmware", where Debian
// keeps raspi-firmware) instead of the client's (WithComponents, default
// "main"). A component the suite's InRelease does not list is an error
// naming it.
func (c *Client) ResolveIn(ctx context.Context, suite, arch string, components, names, exclude []string) ([]Package, error) {
	if len(components) == 0 {
		components = c.components
	}
	idx, err := c.index(ctx, suite, arch, components)
	if err != nil {
		return nil, err
	}
	return idx.resolve(names, exclude)
}

type resolver struct {
	idx      *index
	exclude  map[string]bool
	selected map[string]*Package
	provided map[string][]provider // virtual names provided by selected packages
	chain    map[string]string     // how each selected package was reached
	queue    []*Package
}

func (idx *index) resolve(names, exclude []string) ([]Package, error) {
	r := &resolver{
		idx:      idx,
		exclude:  map[string]bool{},
		selected: map[string]*Package{},
		provided: map[string][]provider{},
		chain:    map[string]string{},
	}
	for _, n := range exclude {
		r.exclude[n] = true
	}
	for _, n := range names {
		rel, ok := parseRelation(n)
		if pin, version, isPin := strings.Cut(n, "="); isPin && !strings.Contains(n, "(") {
			// apt's "name=version" pins an exact version (as a lock
			// file does).
			rel, ok = parseRelation(pin)
			rel.rel, rel.version = "=", strings.TrimSpace(version)
		}
		if !ok {
			return nil, fmt.Errorf("%q: not a package name", n)
		}
		// A requested name is installed itself even when something
		// already selected provides it.
		if r.exclude[rel.name] {
			continue
		}
		if p := r.selected[rel.name]; p != nil && rel.rel.Satisfied(p.Version, rel.version) {
			continue
		}
		if err := r.satisfy([]relation{rel}, ""); err != nil {
			return nil, err
		}
	}
	for i := 0; i < len(r.queue); i++ {
		p := r.queue[i]
		for _, field := range []string{p.PreDepends, p.Depends} {
			for _, clause := range parseRelations(field) {
				if err := r.satisfy(clause, r.chain[p.Name]); err != nil {
					return nil, err
				}
			}
		}
	}
	out := make([]Package, 0, len(r.selected))
	for _, p := range r.selected {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// satisfy makes sure one alternative of clause is installed, reached
// through chain ("" for a requested package).
func (r *resolver) satisfy(clause []relation, chain string) error {
	if chain != "" {
		for _, alt := range clause {
			if r.isSatisfied(alt) {
				return nil
			}
		}
	}
	for _, alt := range clause {
		if p := r.candidate(alt, chain == ""); p != nil {
			r.add(p, chain)
			return nil
		}
	}
	alts := make([]string, len(clause))
	for i, alt := range clause {
		alts[i] = alt.String()
	}
	msg := joinChain(chain, strings.Join(alts, " | ")) + ": not found"
	if why := r.whyNot(clause); why != "" {
		msg += " (" + why + ")"
	}
	return errors.New(msg)
}

// add selects p, reached through chain, and queues it for traversal.
func (r *resolver) add(p *Package, chain string) {
	r.selected[p.Name] = p
	r.chain[p.Name] = joinChain(chain, p.Name)
	for _, clause := range parseRelations(p.Provides) {
		for _, v := range clause {
			pv := provider{pkg: p}
			if v.rel == "=" {
				pv.version = v.version
			}
			r.provided[v.name] = append(r.provided[v.name], pv)
		}
	}
	r.queue = append(r.queue, p)
}

func joinChain(chain, next string) string {
	if chain == "" {
		return next
	}
	return chain + " -> " + next
}

func (r *resolver) archMatches(alt relation) bool {
	return alt.arch == "" || alt.arch == "any" || alt.arch == "native" || alt.arch == r.idx.arch
}

// isSatisfied reports whether alt is met by an excluded or selected
// package, or by what a selected package provides.
func (r *resolver) isSatisfied(alt relation) bool {
	if r.exclude[alt.name] {
		return true
	}
	if !r.archMatches(alt) {
		return false
	}
	if p := r.selected[alt.name]; p != nil && alt.rel.Satisfied(p.Version, alt.version) {
		return true
	}
	for _, pv := range r.provided[alt.name] {
		if providerMatches(pv, alt) {
			return true
		}
	}
	return false
}

// providerMatches applies Debian policy: a versioned dependency is met only
// by a versioned Provides.
func providerMatches(pv provider, alt relation) bool {
	if alt.rel == "" {
		return true
	}
	return pv.version != "" && alt.rel.Satisfied(pv.version, alt.version)
}

// candidate picks the package to install for alt: the highest version of
// a real package of that name, else (unless realOnly) the first provider,
// by name, whose own name is free.
func (r *resolver) candidate(alt relation, realOnly bool) *Package {
	if !r.archMatches(alt) {
		return nil
	}
	if r.selected[alt.name] == nil {
		for _, p := range r.idx.packages[alt.name] {
			if alt.rel.Satisfied(p.Version, alt.version) {
				return p
			}
		}
	}
	if realOnly && len(r.idx.packages[alt.name]) > 0 {
		return nil
	}
	for _, pv := range r.idx.provides[alt.name] {
		if r.selected[pv.pkg.Name] == nil && providerMatches(pv, alt) {
			return pv.pkg
		}
	}
	return nil
}

// whyNot explains an unsatisfiable clause when there is more to say than
// "not found".
func (r *resolver) whyNot(clause []relation) string {
	var reasons []string
	for _, alt := range clause {
		if p := r.selected[alt.name]; p != nil {
			reasons = append(reasons, fmt.Sprintf("%s %s is selected (via %s)", p.Name, p.Version, r.chain[p.Name]))
			continue
		}
		var versions []string
		for _, p := range r.idx.packages[alt.name] {
			versions = append(versions, p.Version)
		}
		if len(versions) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s has only %s", alt.name, strings.Join(versions, ", ")))
		}
	}
	return strings.Join(reasons, "; ")
}
