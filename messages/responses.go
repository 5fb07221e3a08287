package messages

import "google.golang.org/protobuf/proto"

// ErrorResponse returns the response message of request req carrying err as
// its status, or nil when req is not a request of the KV API. Actors use it
// to answer a request they cannot serve.
func ErrorResponse(req proto.Message, err error) proto.Message {
	st := StatusOf(err)
	switch req.(type) {
	case *GetRequest:
		return &GetResponse{Status: st}
	case *PutRequest:
		return &PutResponse{Status: st}
	case *DeleteRequest:
		return &DeleteResponse{Status: st}
	case *ClearRangeRequest:
		return &ClearRangeResponse{Status: st}
	case *ListKeysRequest:
		return &ListKeysResponse{Status: st}
	case *GetRangeRequest:
		return &GetRangeResponse{Status: st}
	case *AtomicCommitRequest:
		return &AtomicCommitResponse{Status: st}
	case *GetReadVersionRequest:
		return &GetReadVersionResponse{Status: st}
	case *SnapshotReadRequest:
		return &SnapshotReadResponse{Status: st}
	case *SnapshotGetRangeRequest:
		return &SnapshotGetRangeResponse{Status: st}
	case *SetFaultInjectionRequest:
		return &SetFaultInjectionResponse{Status: st}
	case *StatusRequest:
		return &StatusResponse{Status: st}
	case *OpenSessionRequest:
		return &OpenSessionResponse{Status: st}
	}
	return nil
}

// Statused is every response message: each carries a Status.
type Statused interface {
	proto.Message
	GetStatus() *Status
}
