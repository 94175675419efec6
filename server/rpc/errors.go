package rpc

import "errors"

var (
	// ErrRecordTooLong means a record's fragments add up to more than the
	// allowed maximum (Config.MaxRecord on the server). The stream cannot
	// be resynchronised, so the connection is closed.
	ErrRecordTooLong = errors.New("rpc: record exceeds maximum size")
	// ErrBadConfig means a Config failed Validate.
	ErrBadConfig = errors.New("rpc: invalid config")
	// ErrBadReply means a reply could not be decoded (client side).
	ErrBadReply = errors.New("rpc: malformed reply")
	// ErrClientClosed means the Client was closed or its connection
	// failed before the reply arrived.
	ErrClientClosed = errors.New("rpc: client closed")
	// ErrDuplicateProgram means two Programs given to NewServer share a
	// program number.
	ErrDuplicateProgram = errors.New("rpc: program registered twice")
)
