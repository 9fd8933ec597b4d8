package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/andybalholm/cascadia"
	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/cobrowse/cobrowse/internal/editdistance"
)

// MaxFileSize is the size of the largest policy file Parse and Load accept.
const MaxFileSize = 1 << 20

// maxErrors bounds the errors reported for one file.
const maxErrors = 100

// Error is one problem in a policy file.
type Error struct {
	File   string // the name given to Parse, or the path given to Load
	Line   int    // 1-based; 0 when the problem is with the file as a whole
	Column int    // 1-based; 0 when unknown
	Msg    string // what is wrong and what to do about it
}

// Error formats the problem as file:line:column: message, leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Column == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors are all the problems found in one policy file, in the order of
// their place in the file. Parse and Load return a non-empty Errors when a
// file is invalid.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// Load reads and compiles the policy file at path. Problems with the file's
// contents are reported as Errors; a file that cannot be read gives the
// operating system's error.
func Load(path string) (*Policy, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// readFile reads at most MaxFileSize+1 bytes of the file at path, enough for
// Parse to refuse a larger one.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return data, nil
}

// Parse compiles a policy file. name is used in error messages. A file that
// is invalid in any way gives Errors listing every problem found, each with
// its line and column; no part of an invalid file is ever applied.
func Parse(name string, data []byte) (*Policy, error) {
	c := &checker{file: name}
	if len(data) > MaxFileSize {
		c.add(0, 0, "the file is %d bytes, more than the %d bytes a policy file may have", len(data), MaxFileSize)
		return nil, c.errs
	}
	var p *Policy
	if root := c.document(data); root != nil {
		p = c.policy(root)
	}
	if len(c.errs) == 0 {
		sum := sha256.Sum256(data)
		p.version = "sha256:" + hex.EncodeToString(sum[:6])
		return p, nil
	}
	slices.SortStableFunc(c.errs, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	if len(c.errs) > maxErrors {
		last := c.errs[maxErrors-1]
		c.errs = append(c.errs[:maxErrors], &Error{File: name, Line: last.Line, Msg: fmt.Sprintf("too many problems; fix these %d first", maxErrors)})
	}
	return nil, c.errs
}

// The keys of the file format, in the order docs/policies.md lists them.
var (
	topKeys    = []string{"version", "detectors", "custom_detectors", "inputs", "rules"}
	ruleKeys   = []string{"name", "hosts", "pages", "mask", "remove", "no_control", "inputs", "detectors", "block_page"}
	customKeys = []string{"name", "pattern"}
)

// checker compiles a policy file's YAML tree and collects its problems.
type checker struct {
	file string
	errs Errors
}

func (c *checker) add(line, col int, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) at(n *yaml.Node, format string, args ...any) {
	c.add(n.Line, n.Column, format, args...)
}

// document parses data as one YAML document and returns its top node, or nil
// after recording why it cannot be used.
func (c *checker) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.add(0, 0, "the file is empty; a policy file starts with \"version: 1\"")
		} else {
			c.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		c.add(next.Line, next.Column, "a second YAML document starts here; a policy file is one document: remove the \"---\" line and merge or delete what follows")
		return nil
	case !errors.Is(err, io.EOF):
		c.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 {
		c.add(0, 0, "the file is empty; a policy file starts with \"version: 1\"")
		return nil
	}
	if !c.plain(&doc) {
		return nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		c.add(0, 0, "the file has no settings; a policy file starts with \"version: 1\"")
		return nil
	}
	if top.Kind != yaml.MappingNode {
		c.at(top, "a policy file is a mapping of keys to values, starting with \"version: 1\"; found %s", describe(top))
		return nil
	}
	return top
}

// plain reports whether the tree under n is free of anchors, aliases and
// merge keys, recording a problem for each one.
func (c *checker) plain(n *yaml.Node) bool {
	const why = "policy files may not use YAML anchors, aliases or merge keys (&, *, <<): they hide what a rule contains from reviewers and can blow a small file up to a huge one; write the values out in full"
	ok := true
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Anchor != "" || n.Kind == yaml.AliasNode || n.Tag == "!!merge" {
			c.at(n, "%s", why)
			ok = false
			if len(c.errs) >= maxErrors {
				return false
			}
		}
		stack = append(stack, n.Content...)
	}
	return ok
}

// yamlLine finds the line number in the YAML library's error messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError records a YAML syntax error. The YAML library reports the
// line where the enclosing structure starts, often well above the mistake;
// for files of a usual size, the line is refined to the first line after
// which the file fails to parse in the same way.
func (c *checker) syntaxError(data []byte, err error) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if l := failingLine(data, err.Error(), line); l > line {
		line = l
	}
	hint := "check the indentation and the quoting on this line and the lines above"
	switch {
	case strings.Contains(msg, "cannot start any token"), strings.Contains(msg, "tab character"):
		hint = "YAML does not allow tabs for indentation, nor values starting with @ or ` unquoted: use spaces, or quote the value"
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = "a value containing \": \" must be quoted, and keys of one mapping must line up"
	case strings.Contains(msg, "found unexpected end of stream"):
		hint = "a quote or bracket opened here is never closed"
	case strings.Contains(msg, "anchor"):
		hint = "policy files may not use YAML anchors or aliases (&, *): write the values out in full"
	}
	c.add(line, 0, "invalid YAML: %s; %s", msg, hint)
}

// failingLine returns the smallest number of leading lines of data, from
// line from on, that fail to parse with the same error message as the whole
// file, or 0 when there is none within a few hundred lines. The search is
// bounded to keep a hostile file from costing much time.
func failingLine(data []byte, want string, from int) int {
	const maxSize, maxLines = 64 << 10, 200
	if len(data) > maxSize {
		return 0
	}
	end := 0
	for l := 1; l < from && end < len(data); l++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
	}
	for line := from; line < from+maxLines && end < len(data); line++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data[:end]))
		var n yaml.Node
		err := dec.Decode(&n)
		for err == nil {
			err = dec.Decode(&n)
		}
		if !errors.Is(err, io.EOF) && sameProblem(err.Error(), want) {
			return line
		}
	}
	return 0
}

// sameProblem reports whether two YAML error messages state the same problem,
// whatever line they name.
func sameProblem(a, b string) bool {
	strip := func(s string) string {
		if m := yamlLine.FindStringIndex(s); m != nil {
			return s[m[1]:]
		}
		return s
	}
	return strip(a) == strip(b)
}

// short returns s, cut to 80 characters with "..." when longer, for
// quoting in error messages.
func short(s string) string {
	if utf8.RuneCountInString(s) <= 80 {
		return s
	}
	return string([]rune(s)[:77]) + "..."
}

// quote returns short(s) in Go quotes.
func quote(s string) string { return strconv.Quote(short(s)) }

// describe names the kind of a node for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value pairs)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "no value"
		case "!!str":
			return quote(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return fmt.Sprintf("%q (of type %s)", short(n.Value), n.Tag)
	}
	return "something else"
}

// field is one key: value pair of a mapping.
type field struct {
	key, value *yaml.Node
}

// fields returns the pairs of mapping n by key, recording unknown keys (with
// the closest known key) and repeated ones. what names the mapping.
func (c *checker) fields(n *yaml.Node, what string, known []string) map[string]field {
	fs := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			c.at(k, "keys of %s are names like %s; found %s", what, known[0], describe(k))
			continue
		}
		if prev, dup := fs[k.Value]; dup {
			c.at(k, "%s is set twice in %s (first at line %d); remove one", k.Value, what, prev.key.Line)
			continue
		}
		if !slices.Contains(known, k.Value) {
			c.at(k, "unknown key %q in %s; %s", short(k.Value), what, suggest(k.Value, known, "key"))
			continue
		}
		fs[k.Value] = field{k, v}
	}
	return fs
}

// suggest tells the closest name in known to name, or lists them all.
func suggest(name string, known []string, kind string) string {
	best, dist := editdistance.Closest(strings.ToLower(name), known)
	if best != "" && dist < len(name) && dist <= max(2, len(best)/3) {
		return fmt.Sprintf("did you mean %q? (valid %ss: %s)", best, kind, strings.Join(known, ", "))
	}
	return fmt.Sprintf("valid %ss: %s", kind, strings.Join(known, ", "))
}

// str returns the text of a string scalar, recording a problem for anything
// else. key names the value in messages.
func (c *checker) str(n *yaml.Node, key string) (string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return n.Value, true
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		c.at(n, "%s has no value; give one or remove the key", key)
	case n.Kind == yaml.ScalarNode:
		c.at(n, "%s must be text; found %s: put it in quotes if it is meant as text", key, describe(n))
	default:
		c.at(n, "%s must be text; found %s", key, describe(n))
	}
	return "", false
}

// list returns the items of a sequence of string scalars, recording a
// problem for anything else. example shows the expected form in messages.
func (c *checker) list(n *yaml.Node, key, example string) []*yaml.Node {
	switch {
	case n.Kind == yaml.SequenceNode:
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		c.at(n, "%s has no value; give a list like %s, or remove the key", key, example)
		return nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		c.at(n, "%s must be a list, even of one item: write %s: [%q]", key, key, short(n.Value))
		return nil
	default:
		c.at(n, "%s must be a list like %s; found %s", key, example, describe(n))
		return nil
	}
	var items []*yaml.Node
	for _, it := range n.Content {
		s, ok := c.str(it, "each item of "+key)
		if !ok {
			continue
		}
		if strings.TrimSpace(s) == "" {
			c.at(it, "%s has an empty item; remove it", key)
			continue
		}
		items = append(items, it)
	}
	return items
}

// policy compiles the top-level mapping of a policy file.
func (c *checker) policy(top *yaml.Node) *Policy {
	var version *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "version" {
			version = top.Content[i+1]
			break
		}
	}
	switch {
	case version == nil:
		c.at(top, "missing version: add \"version: 1\" as the first line")
	case version.Kind != yaml.ScalarNode || version.Tag != "!!int":
		c.at(version, "version must be the number 1; found %s", describe(version))
	case version.Value != "1":
		// A later version may mean something else by the same keys: check
		// nothing more.
		c.at(version, "version %s is not supported: this cobrowse reads version 1 files; upgrade cobrowse or write the file for version 1", quote(version.Value))
		return nil
	}
	f := c.fields(top, "the policy file", topKeys)

	p := &Policy{inputs: MaskSensitiveInputs}
	custom, customNodes := c.customDetectors(f["custom_detectors"])
	all := append(slices.Clone(builtins), custom...)
	used := map[*detector]bool{}
	if d, ok := f["detectors"]; ok {
		p.detectors = c.detectorList(d.value, all)
	} else {
		p.detectors = all
	}
	for _, d := range p.detectors {
		used[d] = true
	}
	if in, ok := f["inputs"]; ok {
		p.inputs = c.inputs(in.value)
	}
	if r, ok := f["rules"]; ok {
		p.rules = c.rules(r.value, all)
	}
	for _, r := range p.rules {
		for _, d := range r.detectors {
			used[d] = true
		}
	}
	for i, d := range custom {
		if !used[d] && customNodes[i] != nil {
			c.at(customNodes[i], "custom detector %q is not used: add it to detectors (everywhere) or to a rule's detectors (on its pages)", d.name)
		}
	}
	return p
}

// customName is the form of a custom detector's name.
var customName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// customDetectors compiles the custom_detectors list and returns the
// detectors with the node of each. Entries with problems are recorded and
// still returned (matching nothing, with a nil node) when they have a valid
// name, so that references to them give no second error.
func (c *checker) customDetectors(f field) (out []*detector, nodes []*yaml.Node) {
	if f.value == nil {
		return nil, nil
	}
	if f.value.Kind != yaml.SequenceNode {
		c.at(f.value, "custom_detectors must be a list of entries like {name: order_id, pattern: 'ORD-[0-9]{8}'}; found %s", describe(f.value))
		return nil, nil
	}
	for _, n := range f.value.Content {
		if n.Kind != yaml.MappingNode {
			c.at(n, "each custom detector is a mapping with name and pattern, like {name: order_id, pattern: 'ORD-[0-9]{8}'}; found %s", describe(n))
			continue
		}
		fs := c.fields(n, "a custom detector", customKeys)
		nf, ok := fs["name"]
		if !ok {
			c.at(n, "this custom detector has no name; add one, like name: order_id")
			continue
		}
		name, ok := c.str(nf.value, "name")
		if !ok {
			continue
		}
		switch {
		case !customName.MatchString(name):
			c.at(nf.value, "custom detector name %q must be lower-case letters, digits and _, starting with a letter", short(name))
			continue
		case slices.Contains(builtinNames(), name):
			c.at(nf.value, "%q is the name of a built-in detector; give the custom one another name", name)
			continue
		case slices.ContainsFunc(out, func(d *detector) bool { return d.name == name }):
			c.at(nf.value, "custom detector %q is defined twice; remove or rename one", name)
			continue
		}
		re := c.pattern(n, fs["pattern"])
		if re == nil {
			// Keep the name known, so that uses of it give no second error;
			// the file is invalid anyway.
			out = append(out, customDetector(name, len(builtins)+len(out), regexp.MustCompile(`[^\x00-\x{10FFFF}]`)))
			nodes = append(nodes, nil)
			continue
		}
		out = append(out, customDetector(name, len(builtins)+len(out), re))
		nodes = append(nodes, n)
	}
	return out, nodes
}

// pattern compiles the pattern of the custom detector n.
func (c *checker) pattern(n *yaml.Node, f field) *regexp.Regexp {
	if f.value == nil {
		c.at(n, "this custom detector has no pattern; add one, like pattern: 'ORD-[0-9]{8}'")
		return nil
	}
	src, ok := c.str(f.value, "pattern")
	if !ok {
		return nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		c.at(f.value, "invalid regular expression %q: %s (patterns use RE2 syntax, as Go's regexp package)", short(src), strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	if re.MatchString("") {
		c.at(f.value, "pattern %q matches empty text, so it would mask nothing useful; make it require at least one character", short(src))
		return nil
	}
	return re
}

// detectorList resolves a list of detector names against all, the built-in
// and custom detectors, and returns them in canonical order.
func (c *checker) detectorList(n *yaml.Node, all []*detector) []*detector {
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.name
	}
	var out []*detector
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		return out // "detectors: []" turns them all off
	}
	for _, it := range c.list(n, "detectors", "[card_number, email]") {
		i := slices.Index(names, it.Value)
		if i < 0 {
			c.at(it, "unknown detector %q; %s", short(it.Value), suggest(it.Value, names, "detector"))
			continue
		}
		if !slices.Contains(out, all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b *detector) int { return a.order - b.order })
	return out
}

// inputs reads an inputs value.
func (c *checker) inputs(n *yaml.Node) InputMasking {
	s, ok := c.str(n, "inputs")
	if !ok {
		return MaskSensitiveInputs
	}
	switch s {
	case "sensitive":
		return MaskSensitiveInputs
	case "all":
		return MaskAllInputs
	}
	c.at(n, "inputs must be \"sensitive\" (passwords, card fields, one-time codes, e-mail, phone and hidden fields) or \"all\" (every field); found %q", short(s))
	return MaskAllInputs
}

// rules compiles the rules list.
func (c *checker) rules(n *yaml.Node, all []*detector) []rule {
	if n.Kind != yaml.SequenceNode {
		c.at(n, "rules must be a list of rules, each starting with \"- name: ...\"; found %s", describe(n))
		return nil
	}
	var out []rule
	seen := map[string]int{} // rule name -> line
	for _, rn := range n.Content {
		if rn.Kind != yaml.MappingNode {
			c.at(rn, "each rule is a mapping of keys like name, pages and mask; found %s", describe(rn))
			continue
		}
		r, ok := c.rule(rn, all)
		if !ok {
			continue
		}
		if line, dup := seen[r.name]; dup {
			c.at(rn, "rule name %q is already used at line %d; rule names must be unique, as audit logs name the rules that applied", short(r.name), line)
			continue
		}
		seen[r.name] = rn.Line
		out = append(out, r)
	}
	return out
}

// rule compiles one rule; ok is false when it has no usable name.
func (c *checker) rule(n *yaml.Node, all []*detector) (r rule, ok bool) {
	errs := len(c.errs)
	fs := c.fields(n, "a rule", ruleKeys)
	nf, has := fs["name"]
	if !has {
		c.at(n, "this rule has no name; add one, like name: checkout (audit logs name the rules that applied)")
	} else if r.name, ok = c.str(nf.value, "name"); ok && strings.TrimSpace(r.name) == "" {
		c.at(nf.value, "rule name is empty; give the rule a name")
		ok = false
	}
	r.name = strings.TrimSpace(r.name)

	if f, has := fs["hosts"]; has {
		for _, it := range c.list(f.value, "hosts", `["shop.example.com", "*.example.com"]`) {
			if h, ok := c.hostPattern(it); ok {
				r.hosts = append(r.hosts, h)
			}
		}
	}
	if f, has := fs["pages"]; has {
		for _, it := range c.list(f.value, "pages", `["/account/**"]`) {
			if g, ok := c.glob(it); ok {
				r.pages = append(r.pages, g)
			}
		}
	}
	r.mask = c.selectors(fs["mask"], "mask")
	r.remove = c.selectors(fs["remove"], "remove")
	r.noControl = c.selectors(fs["no_control"], "no_control")
	if f, has := fs["inputs"]; has {
		r.inputs = c.inputs(f.value)
	}
	if f, has := fs["detectors"]; has {
		r.detectors = c.detectorList(f.value, all)
	}
	if f, has := fs["block_page"]; has {
		if f.value.Kind != yaml.ScalarNode || f.value.Tag != "!!bool" {
			c.at(f.value, "block_page must be true or false; found %s", describe(f.value))
		} else {
			r.block = f.value.Value == "true"
		}
	}
	// A rule that does nothing is most likely a mistake, unless it already
	// has problems of its own, which say more.
	_, hasInputs := fs["inputs"]
	if ok && len(c.errs) == errs && !r.block && !hasInputs && len(r.mask)+len(r.remove)+len(r.noControl)+len(r.detectors) == 0 {
		c.at(n, "rule %s changes nothing: give it mask, remove, no_control, inputs, detectors or block_page: true", quote(r.name))
	}
	return r, ok
}

// hostPattern compiles one item of hosts.
func (c *checker) hostPattern(n *yaml.Node) (hostPattern, bool) {
	h := strings.ToLower(strings.TrimSpace(n.Value))
	h = strings.TrimSuffix(h, ".")
	if isIPv6(h) {
		return hostPattern{name: strings.Trim(h, "[]")}, true
	}
	if strings.ContainsAny(h, "/:@?#") {
		c.at(n, "host %q must be a host name alone, without scheme, port or path, like shop.example.com", short(n.Value))
		return hostPattern{}, false
	}
	if rest, wild := strings.CutPrefix(h, "*."); wild {
		if !validHostName(rest) || !strings.Contains(rest, ".") && rest != "localhost" {
			c.at(n, "host %q: a wildcard covers the subdomains of one domain, like *.example.com", short(n.Value))
			return hostPattern{}, false
		}
		return hostPattern{name: "." + rest, wildcard: true}, true
	}
	if !validHostName(h) {
		c.at(n, "host %q is not a host name; write it like shop.example.com, or *.example.com for all subdomains", short(n.Value))
		return hostPattern{}, false
	}
	return hostPattern{name: h}, true
}

// isIPv6 reports whether h is an IPv6 address, with or without brackets.
func isIPv6(h string) bool {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return err == nil && a.Is6()
}

// validHostName reports whether h is made of dot-separated non-empty labels
// of letters (in any script), digits, '-' and '_'.
func validHostName(h string) bool {
	if h == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return false
		}
		for _, r := range label {
			if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 0x7f {
				continue
			}
			return false
		}
	}
	return true
}

// glob compiles one item of pages.
func (c *checker) glob(n *yaml.Node) (string, bool) {
	g := strings.TrimSpace(n.Value)
	switch {
	case strings.Contains(g, "://"):
		c.at(n, "page pattern %q must be a path like /account/**; put the host name in the rule's hosts", short(g))
		return "", false
	case !strings.HasPrefix(g, "/") && !strings.HasPrefix(g, "**") && !strings.HasPrefix(g, "{"):
		c.at(n, "page pattern %q must start with /, like /%s", short(g), short(strings.TrimLeft(g, "/")))
		return "", false
	case strings.Contains(g, "#"):
		c.at(n, "page pattern %q has a #fragment, which browsers never send: patterns match the path only", short(g))
		return "", false
	}
	if i := strings.IndexByte(g, '?'); i >= 0 && strings.Contains(g[i:], "=") {
		c.at(n, "page pattern %q has a query string: patterns match the path only, without ?query; remove it from %q", short(g), short(g[i:]))
		return "", false
	}
	if !doublestar.ValidatePattern(g) {
		c.at(n, "invalid page pattern %q: check that every [ and { is closed (patterns use * within a path segment, ** across segments, ? for one character, [abc] and {a,b})", short(g))
		return "", false
	}
	return strings.ToLower(g), true
}

// selectors compiles a list of CSS selectors.
func (c *checker) selectors(f field, key string) []Selector {
	if f.value == nil {
		return nil
	}
	var out []Selector
	for _, it := range c.list(f.value, key, `[".secret", "#card-holder"]`) {
		src := strings.TrimSpace(it.Value)
		sel, err := compileSelector(src)
		if err != nil {
			c.at(it, "%s: %v", key, err)
			continue
		}
		out = append(out, sel)
	}
	return out
}

// compileSelector compiles one CSS selector that both cascadia (on the
// server) and browsers (in the visitor script) understand, with the same
// meaning on both.
func compileSelector(src string) (Selector, error) {
	sel, err := cascadia.Parse(src)
	if err != nil {
		if g, gerr := cascadia.ParseGroup(src); gerr == nil && len(g) > 1 {
			return Selector{}, fmt.Errorf("%q is a list of selectors; write one selector per list item", short(src))
		}
		return Selector{}, fmt.Errorf("invalid CSS selector %q: %v", short(src), err)
	}
	if bad, why := unportable(src); bad != "" {
		return Selector{}, fmt.Errorf("selector %q uses %s, %s; select elements by tag, id, class or attributes instead", short(src), bad, why)
	}
	return Selector{Source: src, Match: sel}, nil
}

// unportable returns the first part of a selector that cascadia accepts but
// that browsers do not, or that depends on what the visitor does at the
// moment, which the server cannot see, with the reason.
func unportable(src string) (part, why string) {
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\\':
			i++
		case '"', '\'':
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '!', '#':
			if i+1 < len(src) && src[i+1] == '=' {
				return "[attr" + src[i:i+2] + "...]", "an extension of the Go selector library that browsers do not support"
			}
		case ':':
			j := i + 1
			for j < len(src) && (src[j] == '-' || isAlnum(src[j])) {
				j++
			}
			switch name := strings.ToLower(src[i+1 : j]); name {
			case "contains", "containsown", "matches", "matchesown", "haschild", "input":
				return ":" + name, "an extension of the Go selector library that browsers do not support"
			case "hover", "active", "focus", "visited", "target":
				return ":" + name, "which depends on what the visitor does at the moment and cannot be checked on the server"
			}
			i = j - 1
		}
	}
	return "", ""
}
