package messages

import "google.golang.org/protobuf/proto"

// ErrorResponse returns the response message of request req carrying err as
// its status, or nil when req is not a request of the KV API. Actors use it
// to answer a request they cannot serve.
func ErrorResponse(req proto.Message, err error) proto.Message {
	op := OpOf(req)
	if op == nil {
		return nil
	}
	return op.Response(err)
}

// Statused is every response message: each carries a Status.
type Statused interface {
	proto.Message
	GetStatus() *Status
}
