package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"mailq/queue"
)

// purgeEvery is how often finished messages past `retention` are dropped.
// Hourly keeps `show` honest to within an hour of the configured retention
// without touching the store often.
const purgeEvery = time.Hour

// purgeLoop drops done messages older than the store's retention, once at
// start and then every interval, until ctx ends. Without it the finished
// index and the retained bodies would grow for ever.
func purgeLoop(ctx context.Context, store queue.Store, every time.Duration, log zerolog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := store.Purge(time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error().Err(err).Msg("purging finished messages failed; retrying at the next interval")
		case n > 0:
			log.Info().Int("messages", n).Msg("purged finished messages past retention")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
