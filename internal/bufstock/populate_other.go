//go:build !linux

package bufstock

func populate(b []byte) {}
