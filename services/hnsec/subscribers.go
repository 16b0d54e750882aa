package main

import (
	"context"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// initSubscribers starts the subscriber checker the STS, PVK and the dispatcher share: it asks the
// registry whether a subscriber may still receive, trusting an answer for at most --client-cache-ttl (the
// registry's client-changed events drop it sooner).
func (a *app) initSubscribers(ctx context.Context) error {
	a.subscribers = subscriber.NewChecker(registryv1.NewClientRegistryServiceClient(a.conn), a.cfg.ClientAuth.CacheTTL)
	a.addLoop(ctx, func(ctx context.Context) error { return a.subscribers.Run(ctx, a.bus) })
	return nil
}
