//go:build race

package nfs_test

// raceEnabled makes the slowest fixtures smaller under the race detector
// (every etcd transaction costs several times more there).
const raceEnabled = true
