package replica

import (
	"sync"

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
// goroutine per request. Reads run on a small pool of owned workers.

// pending is one request in flight.
type pending struct {
	rs    *dragonboat.RequestState // nil: nothing to wait for
	reply *actor.PID
	// done builds the answer from the request's result (ok false: it did
	// not complete, with the error saying why).
	done func(r dragonboat.RequestResult) proto.Message
}

// fifoWaiter answers pending requests in FIFO order from one goroutine.
type fifoWaiter struct {
	root  *actor.RootContext
	queue chan pending
	next  func(p pending) // where a completed request goes; nil: answer it here
	wg    sync.WaitGroup
}

func newFIFOWaiter(root *actor.RootContext, size int, next func(pending)) *fifoWaiter {
	w := &fifoWaiter{root: root, queue: make(chan pending, size), next: next}
	w.wg.Add(1)
	go w.run()
	return w
}

var errOverloaded = messages.Errorf(messages.StatusCode_UNAVAILABLE, "replica overloaded: too many requests in flight")

// full reports whether the queue has no room. The replica actor is the only
// producer, so after full returns false an add does not block.
func (w *fifoWaiter) full() bool { return len(w.queue) == cap(w.queue) }

// len is the number of requests waiting.
func (w *fifoWaiter) len() int { return len(w.queue) }

// add queues p; call full first.
func (w *fifoWaiter) add(p pending) { w.queue <- p }

func (w *fifoWaiter) run() {
	defer w.wg.Done()
	for p := range w.queue {
		var r dragonboat.RequestResult
		if p.rs != nil {
			r = <-p.rs.ResultC()
			p.rs.Release()
			p.rs = nil
		}
		if w.next != nil {
			p2 := p
			p2.done = func(dragonboat.RequestResult) proto.Message { return p.done(r) }
			w.next(p2)
			continue
		}
		if p.reply != nil {
			w.root.Send(p.reply, p.done(r))
		}
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
