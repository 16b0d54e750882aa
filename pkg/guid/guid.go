// Package guid makes and checks the GUIDs that name clients, tokens and requests.
package guid

import "github.com/google/uuid"

// New returns a random (version 4) GUID in its canonical 36-character form.
func New() string { return uuid.NewString() }

// Valid reports whether s is a GUID in canonical 36-character form (no braces, no urn: prefix).
func Valid(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
