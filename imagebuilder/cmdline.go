package imagebuilder

import (
	"bytes"
	"errors"
	"fmt"
)

// MaxCmdline bounds cmdline.txt. The kernel's own limit on arm64 is 2048
// bytes; anything near this is not a kernel command line.
const MaxCmdline = 4096

// SetCmdlineRoot returns the kernel command line b with its root= argument
// set to root (for example "PARTUUID=1234abcd-05"): the first root= is
// replaced in place, further ones are dropped, and if there is none it is
// added before a "--" (which starts the arguments for init) or at the end.
// Everything else, spacing and the trailing newline included, is kept.
// The Raspberry Pi firmware reads one line, so a file with more than one
// line, a NUL byte or a bare carriage return is refused.
func SetCmdlineRoot(b []byte, root string) ([]byte, error) {
	if len(b) > MaxCmdline {
		return nil, fmt.Errorf("cmdline.txt: %d bytes, more than %d", len(b), MaxCmdline)
	}
	if root == "" || bytes.ContainsAny([]byte(root), " \t\r\n\"\x00") {
		return nil, fmt.Errorf("cmdline.txt: bad root value %q", root)
	}
	line, eol := b, []byte(nil)
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		line, eol = b[:len(b)-2], []byte("\r\n")
	case bytes.HasSuffix(b, []byte("\n")):
		line, eol = b[:len(b)-1], []byte("\n")
	}
	if bytes.ContainsAny(line, "\n\r") {
		return nil, errors.New("cmdline.txt: more than one line (the firmware reads only the first)")
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, errors.New("cmdline.txt: contains a NUL byte")
	}
	toks, err := cmdlineTokens(line)
	if err != nil {
		return nil, err
	}
	arg := []byte("root=" + root)
	var out []byte
	pos, done := 0, false
	for _, t := range toks {
		word := line[t.start:t.end]
		switch {
		case bytes.Equal(word, []byte("--")) && !done:
			out = append(out, line[pos:t.start]...)
			out = append(out, arg...)
			out = append(out, ' ')
			pos, done = t.start, true
		case bytes.HasPrefix(word, []byte("root=")) && t.beforeDashes:
			out = append(out, line[pos:t.start]...)
			if !done {
				out = append(out, arg...)
				done = true
				pos = t.end
				continue
			}
			// Drop a duplicate together with the blanks in front of it.
			out = bytes.TrimRight(out, " \t\v\f")
			pos = t.end
		}
	}
	out = append(out, line[pos:]...)
	if !done {
		if len(out) > 0 && !isBlank(out[len(out)-1]) {
			out = append(out, ' ')
		}
		out = append(out, arg...)
	}
	out = append(out, eol...)
	if len(out) > MaxCmdline {
		return nil, fmt.Errorf("cmdline.txt: %d bytes with root= set, more than %d", len(out), MaxCmdline)
	}
	return out, nil
}

type cmdlineToken struct {
	start, end   int
	beforeDashes bool
}

// cmdlineTokens splits a kernel command line as the kernel does: on blanks,
// with double quotes protecting blanks inside a value.
func cmdlineTokens(line []byte) ([]cmdlineToken, error) {
	var toks []cmdlineToken
	dashes := false
	for i := 0; i < len(line); {
		if isBlank(line[i]) {
			i++
			continue
		}
		start, quoted := i, false
		for i < len(line) && (quoted || !isBlank(line[i])) {
			if line[i] == '"' {
				quoted = !quoted
			}
			i++
		}
		if quoted {
			return nil, errors.New("cmdline.txt: unbalanced double quote")
		}
		toks = append(toks, cmdlineToken{start: start, end: i, beforeDashes: !dashes})
		if string(line[start:i]) == "--" {
			dashes = true
		}
	}
	return toks, nil
}

// isBlank is the kernel's isspace, less the line breaks refused earlier.
func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' }
