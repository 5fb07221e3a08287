package messages

import (
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Message size limits of the gRPC API, for kvserver and its clients alike:
// the largest request is an atomic commit of 8 MiB (DESIGN.md) plus room for
// its framing; a response may carry up to 10,000 range entries, within
// limits.max_range_bytes. A message over a limit fails with
// RESOURCE_EXHAUSTED and, on a Batch stream, breaks the stream.
const (
	MaxRequestMessageBytes  = 9 << 20
	MaxResponseMessageBytes = 64 << 20
)

// grpcCodes is the one-to-one mapping between StatusCode and gRPC codes.
var grpcCodes = [...]codes.Code{
	StatusCode_OK:                    codes.OK,
	StatusCode_INVALID_ARGUMENT:      codes.InvalidArgument,
	StatusCode_TOO_LARGE:             codes.ResourceExhausted,
	StatusCode_UNKNOWN_COLUMN_FAMILY: codes.NotFound,
	StatusCode_CONFLICT:              codes.Aborted,
	StatusCode_TRANSACTION_TOO_OLD:   codes.FailedPrecondition,
	StatusCode_UNAVAILABLE:           codes.Unavailable,
	StatusCode_TIMEOUT:               codes.DeadlineExceeded,
	StatusCode_INTERNAL:              codes.Internal,
	StatusCode_CANCELLED:             codes.Canceled,
	StatusCode_SESSION_EXPIRED:       codes.OutOfRange,
	StatusCode_PERMISSION_DENIED:     codes.PermissionDenied,
	StatusCode_RESOURCE_EXHAUSTED:    codes.ResourceExhausted, // shared with TOO_LARGE: see ToGRPC
}

// GRPCCode returns the gRPC code of c.
func (c StatusCode) GRPCCode() codes.Code {
	if int(c) >= 0 && int(c) < len(grpcCodes) {
		return grpcCodes[c]
	}
	return codes.Internal
}

// StatusCodeFromGRPC is the inverse of GRPCCode (for RESOURCE_EXHAUSTED,
// which shares TOO_LARGE's gRPC code, it gives TOO_LARGE: FromGRPC reads the
// exact code from the status details); gRPC codes outside the mapping become
// INTERNAL.
func StatusCodeFromGRPC(c codes.Code) StatusCode {
	for sc, gc := range grpcCodes {
		if gc == c {
			return StatusCode(sc)
		}
	}
	return StatusCode_INTERNAL
}

// ToGRPC converts err to a gRPC status error (nil stays nil).
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	code := CodeOf(err)
	st := grpcstatus.New(code.GRPCCode(), err.Error())
	if StatusCodeFromGRPC(code.GRPCCode()) != code { // a shared gRPC code: say which
		if withCode, derr := st.WithDetails(protoadapt.MessageV1Of(&Status{Code: code})); derr == nil {
			st = withCode
		}
	}
	return st.Err()
}

// FromGRPC converts an error returned by a gRPC call into an actorkv error
// that matches its sentinel.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := grpcstatus.FromError(err)
	if !ok {
		return &Error{Code: CodeOf(err), Message: err.Error()}
	}
	code := StatusCodeFromGRPC(st.Code())
	for _, d := range st.Details() {
		if s, ok := d.(*Status); ok && s.GetCode().GRPCCode() == st.Code() {
			code = s.GetCode()
		}
	}
	return &Error{Code: code, Message: st.Message()}
}
