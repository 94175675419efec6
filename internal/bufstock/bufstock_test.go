package bufstock

import "testing"

func TestGetPut(t *testing.T) {
	s := New(1<<20, 2)
	b := s.Get()
	if len(b) != 0 || cap(b) != 1<<20 {
		t.Fatalf("Get: len %d cap %d, want 0 and %d", len(b), cap(b), 1<<20)
	}
	for i, c := range b[:cap(b)] {
		if c != 0 {
			t.Fatalf("fresh buffer has %d at %d", c, i)
		}
	}
	b = append(b, "written"...)
	s.Put(b)
	if s.Len() != 1 {
		t.Fatalf("Len after Put = %d, want 1", s.Len())
	}
	again := s.Get()
	if len(again) != 0 || &again[:1][0] != &b[0] {
		t.Fatal("Get after Put did not hand back the kept buffer, emptied")
	}
	s.Put(make([]byte, 10, 1<<19)) // another size: not kept
	if s.Len() != 0 {
		t.Fatalf("a buffer of another capacity was kept")
	}
	for range 3 {
		s.Put(make([]byte, 0, 1<<20))
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d after three Puts into a stock keeping 2", s.Len())
	}
}

func TestFill(t *testing.T) {
	s := New(64<<10, 4)
	s.Fill(3, nil)
	if s.Len() != 3 {
		t.Fatalf("Fill(3): Len %d", s.Len())
	}
	s.Fill(10, nil) // stops at what the stock keeps
	if s.Len() != 4 {
		t.Fatalf("Fill(10) into a stock keeping 4: Len %d", s.Len())
	}
	stopped := New(64<<10, 4)
	stop := make(chan struct{})
	close(stop)
	stopped.Fill(4, stop)
	if stopped.Len() != 0 {
		t.Fatalf("Fill with stop closed added %d buffers", stopped.Len())
	}
}
