// Package xdr encodes and decodes the External Data Representation of
// RFC 4506 for the hot paths of the NFS server: unsigned and signed 32- and
// 64-bit integers, booleans, fixed and variable-length opaque data and
// strings, each padded to a multiple of four bytes.
//
// A Reader decodes from one byte slice without copying (Opaque and
// FixedOpaque return sub-slices of it). Errors are sticky: after the first
// malformed or short field every further call returns a zero value, and Err
// reports what went wrong, so a decoder reads all its fields and checks Err
// once. Lengths are checked against the bytes left before anything is
// allocated, so a lying length costs nothing.
//
// A Writer appends to a growing byte slice; it is reused through Reset.
package xdr
