package metadata

import (
	"context"
	"time"
)

// maintainInterval is how often a Store folds usage deltas and looks for
// trees to delete; every fullFoldEvery rounds it folds every volume's
// deltas, not only those it wrote (the first round included, so a
// restarted Store picks up what a crashed one left).
const (
	maintainInterval = time.Second
	fullFoldEvery    = 60
)

// startBackground starts the Store's maintenance goroutine (usage folding,
// tree deletion). Close stops it and waits for it.
func (s *Store) startBackground() {
	s.kick = make(chan struct{}, 1)
	s.goBackground(s.maintain)
}

// goBackground runs fn in a goroutine the Store owns: fn's context is
// cancelled by Close, which waits for fn to return.
func (s *Store) goBackground(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		<-s.closed
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
}

// maintain runs until ctx ends: every maintainInterval, or when kicked, it
// folds usage deltas and deletes trashed trees. Errors are logged and the
// work is tried again next round; every step is an idempotent transaction,
// so several Stores may run it at once.
func (s *Store) maintain(ctx context.Context) {
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.foldUsage(ctx, round%fullFoldEvery == 1); err != nil && ctx.Err() == nil {
			s.log.Warn("fold usage deltas", "err", err)
		}
		if err := s.emptyTrash(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("delete trashed trees", "err", err)
		}
	}
}
