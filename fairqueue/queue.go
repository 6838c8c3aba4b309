// Package fairqueue runs background work so that no tenant waits for
// another: each tenant's jobs wait in a queue of their own, workers take
// turns between the tenants that have work, and a tenant never has more
// than its share of the workers busy at once. A tenant whose endpoints
// hang therefore slows only its own jobs.
package fairqueue

import (
	"context"
	"sync"
)

// Options configures a Queue.
type Options struct {
	// Workers bounds the jobs running at once (default 4); PerTenant
	// bounds those of one tenant (default Workers/2, at least 1).
	Workers, PerTenant int
	// MaxQueued bounds the jobs waiting per tenant (default 10,000): past
	// it Add refuses, and what was refused is the caller's to find again
	// (the sweep, the next pass).
	MaxQueued int
}

// A Queue runs jobs fairly between tenants. Jobs added before Run wait for
// it. It is safe for concurrent use.
type Queue struct {
	o Options

	mu      sync.Mutex
	ctx     context.Context // Run's, while it runs
	lanes   map[string]*lane
	turns   []string // tenants with jobs waiting, in turn order
	running int
	keys    map[string]*entry // queued or running, by tenant and key
	idle    *sync.Cond        // signalled when a job ends
}

type lane struct {
	waiting []*entry
	running int
}

type entry struct {
	tenant, key string
	job         func(context.Context)
	running     bool
	next        func(context.Context) // added again while it ran: run after
}

// New returns a Queue.
func New(o Options) *Queue {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.PerTenant <= 0 {
		o.PerTenant = max(o.Workers/2, 1)
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 10_000
	}
	q := &Queue{o: o, lanes: map[string]*lane{}, keys: map[string]*entry{}}
	q.idle = sync.NewCond(&q.mu)
	return q
}

// Add queues job for tenant under key, unless a job of that key waits
// already (then it is one job, the first). While a job of that key runs,
// job runs after it (the latest added), so that what changed while it ran
// is not missed. It reports false when the tenant's queue is full.
func (q *Queue) Add(tenant, key string, job func(context.Context)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := tenant + "\x00" + key
	if e, ok := q.keys[id]; ok {
		if e.running {
			e.next = job
		}
		return true
	}
	l := q.lanes[tenant]
	if l == nil {
		l = &lane{}
		q.lanes[tenant] = l
	}
	if len(l.waiting) >= q.o.MaxQueued {
		return false
	}
	e := &entry{tenant: tenant, key: key, job: job}
	q.keys[id] = e
	if len(l.waiting) == 0 {
		q.turns = append(q.turns, tenant)
	}
	l.waiting = append(l.waiting, e)
	q.start()
	return true
}

// start runs waiting jobs while workers are free, taking the tenants in
// turn and skipping those at their share. q.mu is held.
func (q *Queue) start() {
	if q.ctx == nil {
		return
	}
	for q.running < q.o.Workers {
		i := 0
		for i < len(q.turns) && q.lanes[q.turns[i]].running >= q.o.PerTenant {
			i++
		}
		if i == len(q.turns) {
			return
		}
		tenant := q.turns[i]
		l := q.lanes[tenant]
		e := l.waiting[0]
		l.waiting[0] = nil
		l.waiting = l.waiting[1:]
		q.turns = append(q.turns[:i], q.turns[i+1:]...)
		if len(l.waiting) > 0 {
			q.turns = append(q.turns, tenant) // its next turn comes after the others'
		}
		l.running++
		q.running++
		e.running = true
		go q.run(q.ctx, l, e)
	}
}

func (q *Queue) run(ctx context.Context, l *lane, e *entry) {
	for {
		e.job(ctx)
		q.mu.Lock()
		if e.next != nil && ctx.Err() == nil {
			e.job, e.next = e.next, nil
			q.mu.Unlock()
			continue
		}
		delete(q.keys, e.tenant+"\x00"+e.key)
		l.running--
		q.running--
		if l.running == 0 && len(l.waiting) == 0 {
			delete(q.lanes, e.tenant)
		}
		if ctx.Err() == nil {
			q.start()
		}
		q.idle.Broadcast()
		q.mu.Unlock()
		return
	}
}

// Run runs the jobs, those waiting and those added later, until ctx ends;
// then it waits for the running ones (which see ctx end) and returns.
// Jobs still waiting are dropped.
func (q *Queue) Run(ctx context.Context) {
	q.mu.Lock()
	q.ctx = ctx
	q.start()
	q.mu.Unlock()
	<-ctx.Done()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ctx = nil
	for q.running > 0 {
		q.idle.Wait()
	}
	q.lanes, q.turns, q.keys = map[string]*lane{}, nil, map[string]*entry{}
}

// Wait returns when no job waits or runs (or ctx ends).
func (q *Queue) Wait(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.idle.Broadcast()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.keys) > 0 && ctx.Err() == nil {
		q.idle.Wait()
	}
}

// Stats counts the jobs running and waiting now, of all tenants.
func (q *Queue) Stats() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.keys) - q.running
}
