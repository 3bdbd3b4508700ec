// Package tomlpos finds the line of every key in a TOML document, so the
// config file and the emulator's scenario file can report a problem as
// FILE:LINE.
//
//	lines := tomlpos.KeyLines(text)
//	line := lines[toml.Key{"accounts", "work", "flwo"}.String()]
package tomlpos

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// KeyLines maps every key path of a TOML document (in toml.Key.String form,
// e.g. `accounts.work.flow` or `accounts."my box".flow`) to the line where it
// first appears.
//
// Written by hand because BurntSushi/toml v1.6.0 records key positions only
// in the unexported MetaData.keyInfo: its API gives the paths of unknown keys
// (Undecoded) but not where they are. The scanner runs only after the
// library has accepted the document, so it needs to understand just enough
// TOML to find keys (headers, dotted and quoted keys, inline tables) and to
// skip values (strings of all four kinds, arrays, comments). On input it does
// not understand it moves on; it never fails.
func KeyLines(src string) map[string]int {
	s := &keyScanner{src: src, line: 1, lines: map[string]int{}}
	s.document()
	return s.lines
}

type keyScanner struct {
	src   string
	i     int
	line  int
	lines map[string]int
}

func (s *keyScanner) record(path []string, line int) {
	for n := 1; n <= len(path); n++ {
		k := toml.Key(path[:n]).String()
		if _, ok := s.lines[k]; !ok {
			s.lines[k] = line
		}
	}
}

func (s *keyScanner) eof() bool { return s.i >= len(s.src) }

func (s *keyScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *keyScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

// space skips blanks, and newlines and comments too when multiline is set.
func (s *keyScanner) space(multiline bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '\n' && multiline:
			s.advance()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *keyScanner) document() {
	var table []string
	for !s.eof() {
		s.space(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			s.advance()
			if s.peek() == '[' {
				s.advance()
			}
			s.space(false)
			line := s.line
			key := s.key()
			table = key
			s.record(key, line)
		} else if path := s.keyValue(table); path == nil && s.i == start {
			s.advance() // not a key: step over it
		}
		// Drop the rest of the line (closing brackets, comments).
		for !s.eof() && s.peek() != '\n' {
			s.advance()
		}
	}
}

// keyValue reads `key = value` and records the key under prefix.
func (s *keyScanner) keyValue(prefix []string) []string {
	line := s.line
	key := s.key()
	if key == nil {
		return nil
	}
	path := append(append([]string(nil), prefix...), key...)
	s.record(path, line)
	s.space(false)
	if s.peek() == '=' {
		s.advance()
		s.space(false)
		s.value(path)
	}
	return path
}

// key reads a dotted key of bare and quoted parts.
func (s *keyScanner) key() []string {
	var parts []string
	for {
		s.space(false)
		part, ok := s.keyPart()
		if !ok {
			return parts
		}
		parts = append(parts, part)
		s.space(false)
		if s.peek() != '.' {
			return parts
		}
		s.advance()
	}
}

func (s *keyScanner) keyPart() (string, bool) {
	switch c := s.peek(); {
	case c == '"' || c == '\'':
		raw := s.str()
		if c == '\'' {
			return strings.Trim(raw, "'"), true
		}
		if u, err := strconv.Unquote(raw); err == nil {
			return u, true
		}
		return strings.Trim(raw, `"`), true
	case isBare(c):
		start := s.i
		for !s.eof() && isBare(s.peek()) {
			s.advance()
		}
		return s.src[start:s.i], true
	}
	return "", false
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// str reads a string of any of the four kinds and returns it as written.
func (s *keyScanner) str() string {
	start := s.i
	q := s.peek()
	if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
		for range 3 {
			s.advance()
		}
		for !s.eof() {
			if q == '"' && s.peek() == '\\' {
				s.advance()
				if !s.eof() {
					s.advance()
				}
				continue
			}
			if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
				for range 3 {
					s.advance()
				}
				// Up to two more quotes may close the string (`""""" `).
				for n := 0; n < 2 && s.peek() == q; n++ {
					s.advance()
				}
				break
			}
			s.advance()
		}
		return s.src[start:s.i]
	}
	s.advance()
	for !s.eof() && s.peek() != '\n' {
		c := s.peek()
		s.advance()
		if q == '"' && c == '\\' && !s.eof() && s.peek() != '\n' {
			s.advance()
			continue
		}
		if c == q {
			break
		}
	}
	return s.src[start:s.i]
}

// value skips one value, recording the keys of inline tables under path.
func (s *keyScanner) value(path []string) {
	switch c := s.peek(); c {
	case '"', '\'':
		s.str()
	case '[':
		s.advance()
		for !s.eof() {
			s.space(true)
			if s.peek() == ']' {
				s.advance()
				return
			}
			if s.peek() == ',' {
				s.advance()
				continue
			}
			start := s.i
			s.value(path)
			if s.i == start {
				s.advance()
			}
		}
	case '{':
		s.advance()
		for !s.eof() {
			s.space(true)
			switch s.peek() {
			case '}':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			}
			start := s.i
			s.keyValue(path)
			if s.i == start {
				s.advance()
			}
		}
	default:
		for !s.eof() {
			c := s.peek()
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' || c == '\r' {
				return
			}
			// Dates may hold one space ("1979-05-27 07:32:00"); stopping
			// there is harmless since the rest of the line is dropped.
			if c == ' ' || c == '\t' {
				return
			}
			s.advance()
		}
	}
}
