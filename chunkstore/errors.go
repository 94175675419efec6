package chunkstore

import (
	"errors"
	"fmt"
)

// Sentinel errors of the chunk store. Functions wrap them with context (%w);
// test with errors.Is, never by string.
var (
	// ErrBlockNotFound means the node holds no block of that id (or it was
	// quarantined as corrupt and has not been rewritten since).
	ErrBlockNotFound = errors.New("chunkstore: block not found")
	// ErrBlockTooLarge means a raw block exceeds MaxBlockSize or an encoded
	// block exceeds MaxEncodedSize.
	ErrBlockTooLarge = errors.New("chunkstore: block too large")
	// ErrBadRange means a requested raw byte range is empty, negative or
	// reaches past the end of the block.
	ErrBadRange = errors.New("chunkstore: bad byte range")
	// ErrNoSpace means the node refuses the write because it would cross
	// the node's free-space reserve.
	ErrNoSpace = errors.New("chunkstore: out of space")
	// ErrIDMismatch means the id in an encoded block's header is not the id
	// it was stored or requested under.
	ErrIDMismatch = errors.New("chunkstore: block id mismatch")
	// ErrNodeClosed is returned by node operations after Close.
	ErrNodeClosed = errors.New("chunkstore: node closed")
	// ErrInvalidConfig wraps every NodeConfig.Validate failure.
	ErrInvalidConfig = errors.New("chunkstore: invalid config")
)

// CorruptionError reports bytes that fail the block format's checks: a bad
// magic or version, a header or frame CRC32C mismatch, an impossible length
// or frame count, truncation, or trailing bytes. A reader that gets one
// should try another replica; the bytes it came from must not be used.
type CorruptionError struct {
	ID     BlockID // the block concerned, when known (zero otherwise)
	Frame  int     // the frame at fault, or -1 for the header or the whole block
	Reason string  // what check failed
	Err    error   // an underlying cause (for example the lz4 error), may be nil
}

func (e *CorruptionError) Error() string {
	s := "chunkstore: corrupt block"
	if e.ID != (BlockID{}) {
		s += " " + e.ID.String()
	}
	if e.Frame >= 0 {
		s += fmt.Sprintf(" frame %d", e.Frame)
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// IsCorruption reports whether err is, or wraps, a *CorruptionError.
func IsCorruption(err error) bool {
	var ce *CorruptionError
	return errors.As(err, &ce)
}

func corruptf(frame int, format string, args ...any) *CorruptionError {
	return &CorruptionError{Frame: frame, Reason: fmt.Sprintf(format, args...)}
}
