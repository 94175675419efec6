package csi

import (
	"context"
	"errors"
	"fmt"

	"github.com/rwxfs/rwxfs/metadata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors of the package (outside gRPC answers, which carry codes).
var (
	// ErrConfig is an invalid Config.
	ErrConfig = errors.New("csi: invalid configuration")
	// ErrEndpoint is an endpoint that is not unix://PATH or tcp://HOST:PORT.
	ErrEndpoint = errors.New("csi: bad endpoint")
	// ErrNoRecord is a volume without a driver record (Records.Get).
	ErrNoRecord = errors.New("csi: no volume record")
)

// codeTable maps the metadata sentinels to gRPC codes. toStatus is the only
// place where errors of other packages become gRPC codes.
var codeTable = []struct {
	err  error
	code codes.Code
}{
	{metadata.ErrNotExist, codes.NotFound},
	{metadata.ErrExist, codes.AlreadyExists},
	{metadata.ErrInvalid, codes.InvalidArgument},
	{metadata.ErrNameTooLong, codes.InvalidArgument},
	{metadata.ErrQuota, codes.ResourceExhausted},
	{metadata.ErrNoSpace, codes.ResourceExhausted},
	{metadata.ErrNotSupported, codes.Unimplemented},
	{metadata.ErrConflict, codes.Aborted},
	{metadata.ErrBusy, codes.FailedPrecondition},
	{metadata.ErrUnavailable, codes.Unavailable},
	{metadata.ErrReadOnly, codes.FailedPrecondition},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// toStatus turns err into a gRPC status error whose message says what was
// being done (what) and why; an error that already is a status keeps its
// code.
func toStatus(err error, what string) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	code := codes.Internal
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	return status.Errorf(code, "%s: %v", what, err)
}

// invalid is an InvalidArgument answer.
func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}
