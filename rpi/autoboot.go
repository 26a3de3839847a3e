package rpi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AutobootMaxSize is the largest autoboot.txt the firmware reads.
const AutobootMaxSize = 512

// AutobootFile is the name of the file on partition 1.
const AutobootFile = "autoboot.txt"

// Keys of autoboot.txt this package understands. Others are kept as they are.
const (
	keyBootPartition = "boot_partition"
	keyTrybootAB     = "tryboot_a_b"
)

// Filters honoured in autoboot.txt.
const (
	filterAll     = "all"
	filterNone    = "none"
	filterTryboot = "tryboot"
)

// maxBootPartition is the highest boot_partition value accepted.
const maxBootPartition = 63

// Autoboot is a parsed autoboot.txt. It keeps every line (sections in order,
// comments, blank lines, unknown keys and unknown filters) so that Render
// gives back the file with only the values that were set changed.
//
// Lines before the first filter form an unnamed section that applies like
// [all]. [all] settings always apply, [tryboot] settings only on a trial
// boot, and [none] or any other filter never applies. A later setting
// overrides an earlier one.
type Autoboot struct {
	sections []*section
}

type section struct {
	filter string // name between the brackets; "" for lines before the first filter
	header bool   // false only for the unnamed leading section
	lines  []line
}

type lineKind int

const (
	lineText    lineKind = iota // blank, comment or a line without '=': kept, never applied
	lineSetting                 // key=value
)

type line struct {
	kind  lineKind
	text  string // lineText: the line as read, without its line ending
	key   string // lineSetting
	value string // lineSetting
}

// applies reports whether the firmware applies the settings of s.
func (s *section) applies(tryboot bool) bool {
	switch {
	case !s.header, s.filter == filterAll:
		return true
	case s.filter == filterTryboot:
		return tryboot
	default: // [none] and filters autoboot.txt does not know
		return false
	}
}

// ParseAutoboot parses an autoboot.txt. It fails on files larger than
// AutobootMaxSize, on NUL bytes or invalid UTF-8, on a line that opens a
// filter without closing it, and on invalid boot_partition (0..63) or
// tryboot_a_b (0 or 1) values. A trailing line made only of '#' is the
// padding RenderPadded adds and is dropped.
func ParseAutoboot(b []byte) (*Autoboot, error) {
	if len(b) > AutobootMaxSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d the firmware reads", AutobootFile, len(b), AutobootMaxSize)
	}
	return parseAutoboot(b)
}

// parseAutoboot is ParseAutoboot without the size limit. Render can exceed
// the limit (a full file without a final newline gains one), and tests
// re-parse such output.
func parseAutoboot(b []byte) (*Autoboot, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("%s: NUL byte at offset %d", AutobootFile, i)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%s: not valid UTF-8", AutobootFile)
	}
	raw := strings.Split(string(b), "\n")
	if raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1] // the file ended with a newline
	}
	for i := range raw {
		raw[i] = strings.TrimRight(raw[i], "\r")
	}
	if n := len(raw); n > 0 && isPadding(raw[n-1]) {
		raw = raw[:n-1]
	}

	a := &Autoboot{}
	cur := &section{}
	for i, text := range raw {
		t := trimSpace(text)
		switch {
		case t == "" || t[0] == '#':
			cur.lines = append(cur.lines, line{kind: lineText, text: text})
		case t[0] == '[':
			if len(t) < 2 || t[len(t)-1] != ']' {
				return nil, fmt.Errorf("%s line %d: filter %q is not closed by ']'", AutobootFile, i+1, t)
			}
			if cur.header || len(cur.lines) > 0 {
				a.sections = append(a.sections, cur)
			}
			cur = &section{filter: t[1 : len(t)-1], header: true}
		default:
			k, v, ok := strings.Cut(t, "=")
			k, v = trimSpace(k), trimSpace(v)
			if !ok || k == "" {
				cur.lines = append(cur.lines, line{kind: lineText, text: text})
				continue
			}
			if err := checkValue(k, v); err != nil {
				return nil, fmt.Errorf("%s line %d: %w", AutobootFile, i+1, err)
			}
			cur.lines = append(cur.lines, line{kind: lineSetting, key: k, value: v})
		}
	}
	if cur.header || len(cur.lines) > 0 {
		a.sections = append(a.sections, cur)
	}
	return a, nil
}

// trimSpace trims the ASCII white space the firmware's parser skips; other
// Unicode spaces are part of keys and values.
func trimSpace(s string) string { return strings.Trim(s, " \t\r\v\f") }

// isPadding reports whether s is a padding line: one or more '#' and nothing else.
func isPadding(s string) bool {
	return s != "" && strings.Trim(s, "#") == ""
}

func checkValue(key, value string) error {
	switch key {
	case keyBootPartition:
		if _, err := parseBootPartition(value); err != nil {
			return err
		}
	case keyTrybootAB:
		if value != "0" && value != "1" {
			return fmt.Errorf("%s=%q: must be 0 or 1", key, value)
		}
	}
	return nil
}

func parseBootPartition(v string) (int, error) {
	if len(v) < 1 || len(v) > 2 || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%s=%q: must be an integer from 0 to %d", keyBootPartition, v, maxBootPartition)
	}
	n, _ := strconv.Atoi(v)
	if n > maxBootPartition {
		return 0, fmt.Errorf("%s=%d: must be an integer from 0 to %d", keyBootPartition, n, maxBootPartition)
	}
	return n, nil
}

// NewAutoboot returns the canonical autoboot.txt of an A/B card: tryboot_a_b
// on, committed as the [all] boot partition and trial as the [tryboot] one.
func NewAutoboot(committed, trial int) *Autoboot {
	return &Autoboot{sections: []*section{
		{filter: filterAll, header: true, lines: []line{
			{kind: lineSetting, key: keyTrybootAB, value: "1"},
			{kind: lineSetting, key: keyBootPartition, value: strconv.Itoa(committed)},
		}},
		{filter: filterTryboot, header: true, lines: []line{
			{kind: lineSetting, key: keyBootPartition, value: strconv.Itoa(trial)},
		}},
	}}
}

// source locates the setting that wins for key on a normal (tryboot false)
// or trial boot: the section index and line index, or -1, -1.
func (a *Autoboot) source(key string, tryboot bool) (si, li int) {
	si, li = -1, -1
	for i, s := range a.sections {
		if !s.applies(tryboot) {
			continue
		}
		for j, l := range s.lines {
			if l.kind == lineSetting && l.key == key {
				si, li = i, j
			}
		}
	}
	return si, li
}

// Effective returns the settings the firmware applies on a normal boot
// (tryboot false) or a trial boot: lines before the first filter and [all]
// always, [tryboot] only on a trial, later settings overriding earlier ones.
func (a *Autoboot) Effective(tryboot bool) map[string]string {
	m := map[string]string{}
	for _, s := range a.sections {
		if !s.applies(tryboot) {
			continue
		}
		for _, l := range s.lines {
			if l.kind == lineSetting {
				m[l.key] = l.value
			}
		}
	}
	return m
}

// BootPartition is the boot_partition the firmware uses on a normal or a
// trial boot; 0 when unset, which the firmware takes as "the first bootable
// FAT partition".
func (a *Autoboot) BootPartition(tryboot bool) int {
	si, li := a.source(keyBootPartition, tryboot)
	if si < 0 {
		return 0
	}
	n, _ := parseBootPartition(a.sections[si].lines[li].value)
	return n
}

// TrybootAB reports whether tryboot_a_b=1 is in effect on a trial boot, the
// only boot where it matters: the firmware then reads config.txt of the
// trial partition instead of tryboot.txt.
func (a *Autoboot) TrybootAB() bool {
	return a.Effective(true)[keyTrybootAB] == "1"
}

// Committed is the boot partition of a normal boot (the [all]
// boot_partition), 0 if unset.
func (a *Autoboot) Committed() int { return a.BootPartition(false) }

// Trial is the boot partition a trial boot uses when a [tryboot] section sets
// it, 0 if no [tryboot] boot_partition is in effect on a trial boot.
func (a *Autoboot) Trial() int {
	si, li := a.source(keyBootPartition, true)
	if si < 0 || a.sections[si].filter != filterTryboot {
		return 0
	}
	n, _ := parseBootPartition(a.sections[si].lines[li].value)
	return n
}

// SetCommitted makes n the boot partition of a normal boot. It changes the
// [all] boot_partition in effect, or adds one to the first [all] section
// (creating one at the top if needed) ahead of any [tryboot] section, so the
// trial partition is left as it was. n must be 0..63: other values render
// into a file that ParseAutoboot and RenderPadded refuse.
func (a *Autoboot) SetCommitted(n int) {
	v := strconv.Itoa(n)
	if si, li := a.source(keyBootPartition, false); si >= 0 {
		a.sections[si].lines[li].value = v
		return
	}
	set := line{kind: lineSetting, key: keyBootPartition, value: v}
	for _, s := range a.sections {
		if s.header && s.filter == filterTryboot {
			break
		}
		if s.applies(false) {
			s.lines = appendSetting(s.lines, set)
			return
		}
	}
	// No section before the first [tryboot] applies (a leading unnamed
	// section always would): put a new [all] at the top.
	all := &section{filter: filterAll, header: true, lines: []line{set}}
	a.sections = append([]*section{all}, a.sections...)
}

// SetTrial makes n the boot partition of a trial boot. It changes the
// [tryboot] boot_partition in effect, or adds one to the last [tryboot]
// section when nothing after it overrides it, or else appends a new [tryboot]
// section. n must be 0..63.
func (a *Autoboot) SetTrial(n int) {
	v := strconv.Itoa(n)
	si, li := a.source(keyBootPartition, true)
	if si >= 0 && a.sections[si].filter == filterTryboot {
		a.sections[si].lines[li].value = v
		return
	}
	set := line{kind: lineSetting, key: keyBootPartition, value: v}
	for i := len(a.sections) - 1; i >= 0; i-- {
		s := a.sections[i]
		if s.header && s.filter == filterTryboot {
			if si < i { // no later boot_partition overrides this section
				s.lines = appendSetting(s.lines, set)
				return
			}
			break
		}
	}
	a.sections = append(a.sections, &section{filter: filterTryboot, header: true, lines: []line{set}})
}

// appendSetting adds l after the last setting of lines, so that trailing
// comments and blank lines stay at the end of the section; in a section
// without settings it goes last.
func appendSetting(lines []line, l line) []line {
	at := len(lines)
	for i, x := range lines {
		if x.kind == lineSetting {
			at = i + 1
		}
	}
	lines = append(lines, line{})
	copy(lines[at+1:], lines[at:])
	lines[at] = l
	return lines
}

// Render returns the file in canonical form: "\n" line endings, filters as
// "[name]", settings as "key=value" without surrounding spaces, every
// comment, blank line and unknown line as it was read.
func (a *Autoboot) Render() []byte {
	var b strings.Builder
	for _, s := range a.sections {
		if s.header {
			b.WriteString("[" + s.filter + "]\n")
		}
		for _, l := range s.lines {
			if l.kind == lineSetting {
				b.WriteString(l.key + "=" + l.value + "\n")
			} else {
				b.WriteString(l.text + "\n")
			}
		}
	}
	return []byte(b.String())
}

// ErrAutobootTooLarge is returned by RenderPadded when the content does not
// fit the requested size.
var ErrAutobootTooLarge = errors.New("autoboot.txt content does not fit")

// RenderPadded renders a and pads it with a trailing line of '#' so the
// result is exactly size bytes (at most AutobootMaxSize): the firmware
// ignores the comment, and a fixed size lets a commit rewrite the file in
// place. ParseAutoboot drops the padding again, so parsing a padded file and
// padding it again gives the same bytes. It fails when the rendered content
// is longer than size or would not parse back.
func (a *Autoboot) RenderPadded(size int) ([]byte, error) {
	if size < 0 || size > AutobootMaxSize {
		return nil, fmt.Errorf("pad %s to %d bytes: size must be 0..%d", AutobootFile, size, AutobootMaxSize)
	}
	b := a.Render()
	if len(b) > size {
		return nil, fmt.Errorf("pad %s to %d bytes: content is %d bytes: %w", AutobootFile, size, len(b), ErrAutobootTooLarge)
	}
	switch pad := size - len(b); {
	case pad == 1:
		b = append(b, '#') // no room for a newline; the firmware reads a last line without one
	case pad > 1:
		b = append(b, strings.Repeat("#", pad-1)+"\n"...)
	}
	if _, err := ParseAutoboot(b); err != nil {
		return nil, fmt.Errorf("rendered %s does not parse: %w", AutobootFile, err)
	}
	return b, nil
}
