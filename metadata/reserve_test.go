package metadata

import (
	"context"
	"errors"
	"testing"
)

// TestReserveQuota: reservations of two Stores never add up, with usage,
// to more than the quota; a dropped or closed holder's share comes back;
// the session id names the lease the key lives in.
func TestReserveQuota(t *testing.T) {
	e := newDMEnv(t)
	ctx := context.Background()
	vol, err := e.s.CreateVolume(ctx, VolumeSpec{Name: "q", QuotaBytes: 1000, QuotaInodes: 10, Mode: 0o777})
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := e.s, e.store()
	batch := Reservation{Bytes: 1 << 20, Inodes: 256}
	r, sess, err := s1.ReserveQuota(ctx, vol.ID, Reservation{}, Reservation{Bytes: 100}, batch)
	if err != nil || r != (Reservation{Bytes: 125}) || sess == 0 || sess != s1.Session() {
		t.Fatalf("first grant: %+v session %d (store %d), %v; want 125 bytes (an eighth of the quota)", r, sess, s1.Session(), err)
	}
	// The root directory is one inode: 875 bytes and 9 inodes are left.
	if _, _, err := s2.ReserveQuota(ctx, vol.ID, Reservation{}, Reservation{Bytes: 876}, batch); !errors.Is(err, ErrQuota) {
		t.Fatalf("grant past the quota: %v, want ErrQuota", err)
	}
	if r, _, err := s2.ReserveQuota(ctx, vol.ID, Reservation{}, Reservation{Bytes: 875, Inodes: 9}, batch); err != nil || r != (Reservation{Bytes: 875, Inodes: 9}) {
		t.Fatalf("grant of the rest: %+v %v", r, err)
	}
	if _, _, err := s1.ReserveQuota(ctx, vol.ID, Reservation{Bytes: 125}, Reservation{Bytes: 1}, batch); !errors.Is(err, ErrQuota) {
		t.Fatalf("grant with everything reserved: %v, want ErrQuota", err)
	}
	// Committed growth counts as usage; the holder keeps less.
	f := e.create(vol.Root, "f")
	e.commit(f, 0, 1, 500)
	if _, _, err := s2.ReserveQuota(ctx, vol.ID, Reservation{Bytes: 375, Inodes: 8}, Reservation{Bytes: 1}, batch); !errors.Is(err, ErrQuota) {
		t.Fatalf("grant with 500 used, 125 and 375 reserved: %v, want ErrQuota", err)
	}
	if err := s2.DropQuotaReservation(ctx, vol.ID); err != nil {
		t.Fatal(err)
	}
	if r, _, err := s1.ReserveQuota(ctx, vol.ID, Reservation{Bytes: 125}, Reservation{Bytes: 375}, batch); err != nil || r.Bytes != 500 {
		t.Fatalf("grant after a drop: %+v %v, want 500 bytes", r, err)
	}
	// A closed Store's session ends, and its reservations with it.
	s1.Close()
	if r, _, err := s2.ReserveQuota(ctx, vol.ID, Reservation{}, Reservation{Bytes: 500}, batch); err != nil || r.Bytes != 500 {
		t.Fatalf("grant after the holder closed: %+v %v", r, err)
	}
	e.fsck()
}
