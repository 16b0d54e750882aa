// Package loop runs periodic background work.
package loop

import (
	"context"
	"time"
)

// Every calls fn with the tick time every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}
