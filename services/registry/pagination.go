package registry

import (
	"encoding/base64"

	"github.com/hnsec/hnsec/pkg/apierr"
)

// Page sizes of the List RPCs.
const (
	defaultPageSize = 50
	maxPageSize     = 100
)

// page turns a request's page_size and page_token into a store page. The token is the opaque form of the
// last key of the previous page.
func page(size int32, token string) (Page, error) {
	switch {
	case size < 0 || size > maxPageSize:
		return Page{}, apierr.New(apierr.InvalidRequest, "page_size must be between 0 and %d", maxPageSize)
	case size == 0:
		size = defaultPageSize
	}
	after, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(after) > 400 {
		return Page{}, apierr.New(apierr.InvalidRequest, "page_token is not one this API returned")
	}
	return Page{After: string(after), Limit: int(size) + 1}, nil
}

// nextPage cuts the extra item a page asked for and returns the token of the page after it.
func nextPage[T any](items []T, p Page, key func(T) string) ([]T, string) {
	if len(items) < p.Limit {
		return items, ""
	}
	items = items[:p.Limit-1]
	return items, base64.RawURLEncoding.EncodeToString([]byte(key(items[len(items)-1])))
}
