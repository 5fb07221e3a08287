package replica

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lni/dragonboat/v3"
	"google.golang.org/protobuf/proto"

	"github.com/actorkv/actorkv/messages"
)

// The replica never blocks its mailbox on Raft or storage. Proposals and
// ReadIndex requests return a dragonboat RequestState at once; the replica
// hands it, with the requester's PID, to a waiter goroutine it owns, which
// answers when the request completes. Requests complete in about the order
// they were made, so one FIFO goroutine per kind waits for them all — no
// goroutine per request. Not always, though: after a leader fails, the
// proposals and ReadIndex requests a follower forwarded to it are lost and
// complete only at their timeout, while later ones, to the new leader,
// complete at once. So when the oldest request keeps the others waiting for
// sweepAfter, the waiter answers whichever of them have completed. Reads run
// on a small pool of owned workers.

// sweepAfter is how long the oldest request in flight may hold back the
// answers of the later ones before the waiter looks for completed ones.
const sweepAfter = 10 * time.Millisecond

// pending is one request in flight.
type pending struct {
	rs    *dragonboat.RequestState // nil: nothing to wait for
	reply *actor.PID
	// done builds the answer from the request's result (ok false: it did
	// not complete, with the error saying why).
	done func(r dragonboat.RequestResult) proto.Message
	// deliver, when set, answers instead of reply and done: an entry of
	// several writes answers each of their requesters.
	deliver func(r dragonboat.RequestResult)
	// seq orders the requests of one replica; abandon, when set, answers
	// the request with err without waiting for it (see fifoWaiter.abandon).
	seq     uint64
	abandon func(err error)
}

// fifoWaiter answers pending requests from one goroutine, in order unless
// the oldest is slow (see sweepAfter).
type fifoWaiter struct {
	root     *actor.RootContext
	queue    chan pending
	next     func(p pending) // where a completed request goes; nil: answer it here
	inFlight atomic.Int64    // added and not yet answered
	wg       sync.WaitGroup

	abandonMu   sync.Mutex    // guards abandonUpTo and abandonErr, set by the replica
	abandonUpTo uint64        // requests with a seq up to it are answered abandonErr at once
	abandonErr  error         //
	wake        chan struct{} // capacity 1: an abandon is due
}

func newFIFOWaiter(root *actor.RootContext, size int, next func(pending)) *fifoWaiter {
	w := &fifoWaiter{root: root, queue: make(chan pending, size), next: next, wake: make(chan struct{}, 1)}
	w.wg.Add(1)
	go w.run()
	return w
}

var errOverloaded = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica overloaded: too many requests in flight")

// abandon has every request added with a seq up to upto, and still
// waiting, answered err now (through its abandon function) instead of when
// it completes: when leadership moves, a proposal or ReadIndex round sent
// to the old leader completes only at its timeout, and its client should
// move on at once. It does not block.
func (w *fifoWaiter) abandon(upto uint64, err error) {
	w.abandonMu.Lock()
	if upto > w.abandonUpTo {
		w.abandonUpTo, w.abandonErr = upto, err
	}
	w.abandonMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// full reports whether as many requests as the queue holds are in flight.
// The replica actor is the only producer, so after full returns false an add
// does not block.
func (w *fifoWaiter) full() bool { return w.inFlight.Load() >= int64(cap(w.queue)) }

// len is the number of requests waiting.
func (w *fifoWaiter) len() int { return int(w.inFlight.Load()) }

// add queues p; call full first.
func (w *fifoWaiter) add(p pending) {
	w.inFlight.Add(1)
	w.queue <- p
}

func (w *fifoWaiter) run() {
	defer w.wg.Done()
	var window []pending // taken from the queue, not answered, oldest first
	timer := time.NewTimer(sweepAfter)
	timer.Stop()
	for {
		if len(window) == 0 {
			p, ok := <-w.queue
			if !ok {
				return // closed, and every request answered
			}
			window = append(window, p)
		}
		r, ok := w.wait(window[0], timer)
		if !ok {
			window = w.sweep(window)
			continue
		}
		w.finish(window[0], r)
		window[0] = pending{}
		window = window[1:]
	}
}

// wait returns the result of head, or false if it has not completed within
// sweepAfter.
func (w *fifoWaiter) wait(head pending, timer *time.Timer) (dragonboat.RequestResult, bool) {
	if head.rs == nil {
		return dragonboat.RequestResult{}, true
	}
	select {
	case r := <-head.rs.ResultC():
		return r, true
	default:
	}
	timer.Reset(sweepAfter)
	select {
	case r := <-head.rs.ResultC():
		timer.Stop()
		return r, true
	case <-timer.C:
		return dragonboat.RequestResult{}, false
	case <-w.wake:
		timer.Stop()
		return dragonboat.RequestResult{}, false
	}
}

// sweep takes every queued request into window and answers those behind the
// head that have completed; it returns what is left.
func (w *fifoWaiter) sweep(window []pending) []pending {
	for drained := false; !drained; {
		select {
		case p, ok := <-w.queue:
			if !ok {
				drained = true // closed: what is left is in window
				break
			}
			window = append(window, p)
		default:
			drained = true
		}
	}
	window = w.abandoned(window)
	if len(window) == 0 {
		return window
	}
	kept := window[:1]
	for _, p := range window[1:] {
		if p.rs == nil {
			w.finish(p, dragonboat.RequestResult{})
			continue
		}
		select {
		case r := <-p.rs.ResultC():
			w.finish(p, r)
		default:
			kept = append(kept, p)
		}
	}
	clear(window[len(kept):])
	return kept
}

// abandoned answers the requests of window that are to be abandoned (see
// abandon) and returns the others.
func (w *fifoWaiter) abandoned(window []pending) []pending {
	w.abandonMu.Lock()
	upto, err := w.abandonUpTo, w.abandonErr
	w.abandonMu.Unlock()
	kept := window[:0]
	for _, p := range window {
		if p.abandon != nil && p.seq <= upto {
			w.inFlight.Add(-1)
			p.abandon(err) // its request state completes later, unread
			continue
		}
		kept = append(kept, p)
	}
	clear(window[len(kept):])
	return kept
}

// finish answers p, or hands it on, with its result.
func (w *fifoWaiter) finish(p pending, r dragonboat.RequestResult) {
	if p.rs != nil {
		p.rs.Release()
		p.rs = nil
	}
	w.inFlight.Add(-1)
	if p.deliver != nil {
		p.deliver(r)
		return
	}
	if w.next != nil {
		p2 := p
		p2.done = func(dragonboat.RequestResult) proto.Message { return p.done(r) }
		w.next(p2)
		return
	}
	if p.reply != nil {
		w.root.Send(p.reply, p.done(r))
	}
}

// stop ends the goroutine once every queued request is answered. Nothing may
// be added after it; every request state must complete (the NodeHost is
// stopped first, which terminates them all).
func (w *fifoWaiter) stop() {
	close(w.queue)
	w.wg.Wait()
}

// workerPool runs reads on n owned goroutines.
type workerPool struct {
	root  *actor.RootContext
	queue chan pending
	wg    sync.WaitGroup
}

func newWorkerPool(root *actor.RootContext, n, size int) *workerPool {
	p := &workerPool{root: root, queue: make(chan pending, size)}
	p.wg.Add(n)
	for range n {
		go p.run()
	}
	return p
}

func (p *workerPool) add(x pending) bool {
	select {
	case p.queue <- x:
		return true
	default:
		return false
	}
}

// addWait queues x, waiting for room: for the ReadIndex waiter, which must
// not drop a read whose round already completed.
func (p *workerPool) addWait(x pending) { p.queue <- x }

func (p *workerPool) run() {
	defer p.wg.Done()
	for x := range p.queue {
		msg := x.done(dragonboat.RequestResult{})
		if x.reply != nil {
			p.root.Send(x.reply, msg)
		}
	}
}

func (p *workerPool) stop() {
	close(p.queue)
	p.wg.Wait()
}
