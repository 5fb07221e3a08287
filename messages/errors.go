package messages

import (
	"context"
	"errors"
	"fmt"
)

// The sentinel errors, one per non-OK StatusCode. Errors returned by actorkv
// wrap exactly one of them, so callers compare with errors.Is.
var (
	// ErrInvalidArgument: bad key, limit, range or malformed message.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: a value or an atomic commit over its size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnknownColumnFamily: the column family is not configured.
	ErrUnknownColumnFamily = errors.New("unknown column family")
	// ErrConflict: an atomic commit conflicted and changed nothing.
	ErrConflict = errors.New("conflict")
	// ErrTransactionTooOld: a version outside the retention window.
	ErrTransactionTooOld = errors.New("transaction too old")
	// ErrUnavailable: no quorum, no leader, or a stopped replica; retryable.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: the deadline passed with the outcome unknown; retryable
	// with the same request id.
	ErrTimeout = errors.New("timeout")
	// ErrInternal: storage failure, injected fault or broken invariant.
	ErrInternal = errors.New("internal error")
	// ErrCancelled: the caller cancelled the request.
	ErrCancelled = errors.New("cancelled")
	// ErrSessionExpired: the write's client session is unknown to the state
	// machine (never opened, or forgotten); it was not applied now, and an
	// earlier attempt's outcome is unknown. Not retryable under that id.
	ErrSessionExpired = errors.New("session expired")
	// ErrPermissionDenied: an admin operation the server does not allow
	// this caller, or a request id of another identity's session; nothing
	// was done.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrResourceExhausted: the server had no room for the call within its
	// deadline; nothing was done. Retryable after a pause.
	ErrResourceExhausted = errors.New("resource exhausted")
)

// sentinels is indexed by StatusCode; it is the single mapping between codes
// and Go errors.
var sentinels = [...]error{
	StatusCode_OK:                    nil,
	StatusCode_INVALID_ARGUMENT:      ErrInvalidArgument,
	StatusCode_TOO_LARGE:             ErrTooLarge,
	StatusCode_UNKNOWN_COLUMN_FAMILY: ErrUnknownColumnFamily,
	StatusCode_CONFLICT:              ErrConflict,
	StatusCode_TRANSACTION_TOO_OLD:   ErrTransactionTooOld,
	StatusCode_UNAVAILABLE:           ErrUnavailable,
	StatusCode_TIMEOUT:               ErrTimeout,
	StatusCode_INTERNAL:              ErrInternal,
	StatusCode_CANCELLED:             ErrCancelled,
	StatusCode_SESSION_EXPIRED:       ErrSessionExpired,
	StatusCode_PERMISSION_DENIED:     ErrPermissionDenied,
	StatusCode_RESOURCE_EXHAUSTED:    ErrResourceExhausted,
}

// Sentinel returns the sentinel error of code (nil for OK). An unknown code
// maps to ErrInternal.
func (c StatusCode) Sentinel() error {
	if int(c) >= 0 && int(c) < len(sentinels) {
		return sentinels[c]
	}
	return ErrInternal
}

// Error is an error carrying a StatusCode and a message; it matches its
// sentinel with errors.Is. Errors decoded from a Status are of this type.
type Error struct {
	Code    StatusCode
	Message string
}

// Error returns the message, or the sentinel's text when there is none.
// Messages made by Errorf already start with the sentinel's text.
func (e *Error) Error() string {
	s := e.Code.Sentinel()
	if s == nil {
		return e.Message
	}
	if e.Message == "" {
		return s.Error()
	}
	return e.Message
}

// Unwrap returns the sentinel of the code.
func (e *Error) Unwrap() error { return e.Code.Sentinel() }

// Errorf returns an error of code whose message is "<sentinel>: <format>".
func Errorf(code StatusCode, format string, args ...any) error {
	s := code.Sentinel()
	if s == nil || int(code) >= len(sentinels) {
		s = ErrInternal
		code = StatusCode_INTERNAL
	}
	return &Error{Code: code, Message: s.Error() + ": " + fmt.Sprintf(format, args...)}
}

// CodeOf returns the StatusCode of err: OK for nil, the code of the sentinel
// it wraps, TIMEOUT and CANCELLED for the context errors, INTERNAL otherwise.
func CodeOf(err error) StatusCode {
	if err == nil {
		return StatusCode_OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for code, s := range sentinels {
		if s != nil && errors.Is(err, s) {
			return StatusCode(code)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return StatusCode_TIMEOUT
	case errors.Is(err, context.Canceled):
		return StatusCode_CANCELLED
	}
	return StatusCode_INTERNAL
}

// StatusOf converts err to a Status; nil gives an OK status.
func StatusOf(err error) *Status {
	if err == nil {
		return &Status{Code: StatusCode_OK}
	}
	return &Status{Code: CodeOf(err), Message: err.Error()}
}

// Err converts a Status back to an error; nil and OK give nil.
func (s *Status) Err() error {
	if s == nil || s.Code == StatusCode_OK {
		return nil
	}
	return &Error{Code: s.Code, Message: s.Message}
}

// IsRetryable reports whether retrying err (with the same request id, for a
// write) may succeed: UNAVAILABLE, TIMEOUT and RESOURCE_EXHAUSTED are.
func IsRetryable(err error) bool {
	switch CodeOf(err) {
	case StatusCode_UNAVAILABLE, StatusCode_TIMEOUT, StatusCode_RESOURCE_EXHAUSTED:
		return true
	}
	return false
}
