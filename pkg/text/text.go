// Package text checks free text that people type and other people read: names, descriptions, reasons.
package text

import (
	"strings"
	"unicode"
)

// HasControl reports whether s holds a control character, or a format character that reorders or hides
// text (bidirectional overrides, zero-width characters), which would make a name in a page or a log line
// look like something it is not. With multiline, line breaks and tabs are allowed.
func HasControl(s string, multiline bool) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			return false
		}
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	})
}
