package xdr

import "errors"

var (
	// ErrShort means the input ended inside a field.
	ErrShort = errors.New("xdr: input too short")
	// ErrTooLong means a variable-length field is longer than its bound.
	ErrTooLong = errors.New("xdr: length exceeds bound")
	// ErrBadBool means a boolean was neither 0 nor 1.
	ErrBadBool = errors.New("xdr: boolean not 0 or 1")
	// ErrPadding means the padding after opaque data was not zero.
	ErrPadding = errors.New("xdr: nonzero padding")
	// ErrInvalid means a value is outside the range its type allows (an
	// unknown enum or union discriminant); decoders set it with SetErr.
	ErrInvalid = errors.New("xdr: invalid value")
)
