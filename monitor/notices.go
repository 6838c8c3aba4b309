package monitor

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/credgate/credgate"
)

// BatchPublisher publishes many events of one tenant at once
// (webhook.Dispatcher): a scan's notices cost one read of the tenant's
// webhooks, not one each. errs[i] is events[i]'s.
type BatchPublisher interface {
	PublishAll(ctx context.Context, events []credgate.Event) (errs []error)
}

// notice is an expiry or rotation notice due for c; sent records on c that
// it was published.
type notice struct {
	e    credgate.Event
	c    *credgate.Credential
	sent func()
}

// notices are the notices a scan found due, published together by flush.
type notices struct{ due []notice }

// send publishes n now (b nil) or adds it to b.
func (m *Monitor) send(ctx context.Context, tenant string, b *notices, n notice) {
	if b != nil {
		b.due = append(b.due, n)
		return
	}
	one := notices{due: []notice{n}}
	m.flush(ctx, tenant, &one)
}

// savesAtOnce bounds the credentials flush records its notices on at once.
const savesAtOnce = 8

// flush publishes b's notices, through Options.Events' PublishAll when it
// has one, then records on each credential the ones that were published
// (one metadata write a credential), and empties b. A notice not
// published is not recorded: the next pass sends it.
func (m *Monitor) flush(ctx context.Context, tenant string, b *notices) {
	if len(b.due) == 0 {
		return
	}
	events := make([]credgate.Event, len(b.due))
	for i, n := range b.due {
		events[i] = n.e
	}
	var errs []error
	if bp, ok := m.o.Events.(BatchPublisher); ok && len(events) > 1 {
		errs = bp.PublishAll(ctx, events)
	} else {
		errs = make([]error, len(events))
		for i, e := range events {
			errs[i] = m.o.Events.Publish(ctx, e)
		}
	}
	var record []*credgate.Credential
	seen := map[*credgate.Credential]bool{}
	for i, n := range b.due {
		if errs[i] != nil {
			m.o.Logger.Warn("monitor: publishing a notice failed; the next pass tries again", zap.String("event", n.e.Type), zap.String("credential_id", n.c.ID), zap.Error(errs[i]))
			continue
		}
		n.sent()
		if !seen[n.c] {
			seen[n.c] = true
			record = append(record, n.c)
		}
	}
	b.due = b.due[:0]
	var wg sync.WaitGroup
	sem := make(chan struct{}, savesAtOnce)
	for _, c := range record {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := m.o.Store.SaveWatch(ctx, tenant, c); err != nil {
				m.o.Logger.Warn("monitor: recording a notice failed", zap.String("credential_id", c.ID), zap.Error(err))
			}
		})
	}
	wg.Wait()
}
