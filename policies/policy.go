// Package policies reads redaction policy files and tells, for one page of
// the fronted site, what an agent may not see or touch there: the selectors to
// mask, remove and protect from remote control, whether form fields are all
// masked, which detectors of sensitive text apply, and whether the page is
// blocked altogether. docs/policies.md documents the file format.
//
// A Policy is compiled once by Parse and is then immutable. Every part of a
// rule restricts what an agent sees; rules never grant anything back. So where
// matching is uncertain (letter case, percent-encoding of paths), this package
// errs towards applying a rule.
package policies

import (
	"slices"

	"github.com/andybalholm/cascadia"
)

// Policy is a compiled policy file. It is immutable after Parse and safe for
// concurrent use.
type Policy struct {
	version   string // see Version
	inputs    InputMasking
	detectors []*detector // file-wide, in canonical order
	rules     []rule
}

// rule is one compiled entry of the file's rules list.
type rule struct {
	name      string
	hosts     []hostPattern // empty: any host
	pages     []string      // lower-case doublestar globs; empty: any path
	mask      []Selector
	remove    []Selector
	noControl []Selector
	inputs    InputMasking // MaskSensitiveInputs when the rule does not set it
	detectors []*detector  // added to the file-wide ones on matching pages
	block     bool
}

// Selector is one CSS selector of a policy file.
type Selector struct {
	Source string       // the selector as written in the file, trimmed
	Match  cascadia.Sel // compiled; matches x/net/html element nodes
}

// InputMasking says which form field values are masked. Higher values are
// stricter.
type InputMasking int

const (
	// MaskSensitiveInputs masks passwords, e-mail, phone and hidden fields,
	// card fields (autocomplete cc-*) and one-time codes.
	MaskSensitiveInputs InputMasking = iota
	// MaskAllInputs masks every field a visitor types or picks a value in.
	MaskAllInputs
)

// String returns the file format's word for m: "sensitive" or "all".
func (m InputMasking) String() string {
	if m == MaskAllInputs {
		return "all"
	}
	return "sensitive"
}

// Page is what a policy says about one page. It is a fresh value of the
// caller's, built by Policy.ForPage.
type Page struct {
	Rules     []string     // names of the rules that matched, in file order (for audit and explain)
	Block     bool         // block_page from any matching rule: the agent sees nothing of the page
	Mask      []Selector   // union over matching rules, in file order, without repeats
	Remove    []Selector   // likewise
	NoControl []Selector   // likewise
	Inputs    InputMasking // the strictest of the matching rules' and the file's
	Detectors *Detectors   // the file's detectors plus the matching rules' extra ones; never nil
}

// Default returns the policy used when no file is given: form fields masked
// in the sensitive mode (passwords, card fields, one-time codes, e-mail,
// phone and hidden fields), every built-in detector on, no rules.
func Default() *Policy {
	return &Policy{version: "built-in", inputs: MaskSensitiveInputs, detectors: builtins}
}

// Rules returns the names of the policy's rules in file order.
func (p *Policy) Rules() []string {
	names := make([]string, len(p.rules))
	for i, r := range p.rules {
		names[i] = r.name
	}
	return names
}

// Version names the policy in audit logs: "sha256:" and the start of the
// file's SHA-256 (so a change of the file is a new version), or "built-in"
// for Default.
func (p *Policy) Version() string { return p.version }

// ForPage returns what applies to one page of the fronted site. host is the
// page's host name, path its URL path; a port, a query string or a fragment
// is ignored if present. Host names match without regard to case; paths
// match both as given and percent-decoded with dot segments removed, without
// regard to case, so that a rule cannot be escaped by spelling a path
// differently.
func (p *Policy) ForPage(host, path string) *Page {
	host = normalizeHost(host)
	paths := pathForms(path)
	pg := &Page{Inputs: p.inputs}
	dets := slices.Clone(p.detectors)
	for i := range p.rules {
		r := &p.rules[i]
		if !r.matches(host, paths) {
			continue
		}
		pg.Rules = append(pg.Rules, r.name)
		pg.Block = pg.Block || r.block
		pg.Mask = appendSelectors(pg.Mask, r.mask)
		pg.Remove = appendSelectors(pg.Remove, r.remove)
		pg.NoControl = appendSelectors(pg.NoControl, r.noControl)
		pg.Inputs = max(pg.Inputs, r.inputs)
		for _, d := range r.detectors {
			if !slices.Contains(dets, d) {
				dets = append(dets, d)
			}
		}
	}
	slices.SortFunc(dets, func(a, b *detector) int { return a.order - b.order })
	pg.Detectors = &Detectors{list: dets}
	return pg
}

// appendSelectors appends the selectors of add whose source is not in dst yet.
func appendSelectors(dst, add []Selector) []Selector {
	for _, s := range add {
		if !slices.ContainsFunc(dst, func(d Selector) bool { return d.Source == s.Source }) {
			dst = append(dst, s)
		}
	}
	return dst
}
