// Package flagx holds flag.Value types the standard library lacks.
package flagx

import "strings"

// StringList is a repeatable flag; each use appends one value (a comma-separated value appends each part).
type StringList []string

// String implements flag.Value.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
