//go:build !race

package nfs_test

const raceEnabled = false
