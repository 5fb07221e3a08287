package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/eventstream"
	"google.golang.org/protobuf/proto"
)

// publisher hands the group's events to the actor system's event stream
// from a goroutine of its own: Proto.Actor calls subscribers on the
// publishing goroutine, and the events come from the supervisor's Receive,
// which an embedder's subscriber must never hold up. The queue is
// unbounded, so the supervisor never waits either; Stop ends the goroutine.
type publisher struct {
	stream *eventstream.EventStream
	mu     sync.Mutex
	queue  []proto.Message
	wake   chan struct{} // one pending wake-up
	stop   chan struct{}
	done   chan struct{}
}

func startPublisher(stream *eventstream.EventStream) *publisher {
	p := &publisher{stream: stream, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

// publish queues msg; it never blocks.
func (p *publisher) publish(msg proto.Message) {
	p.mu.Lock()
	p.queue = append(p.queue, msg)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		p.mu.Unlock()
		for _, m := range batch {
			p.stream.Publish(m)
		}
	}
}

// close stops the goroutine (events still queued are dropped: the group is
// stopping) and waits for it.
func (p *publisher) close() {
	close(p.stop)
	<-p.done
}
