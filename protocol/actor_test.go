package protocol

import "testing"

func TestActorID(t *testing.T) {
	if got := ActorID("n1", 0); got != "n1" {
		t.Errorf("incarnation 0: %q", got)
	}
	if got := ActorID("n1", 7); got != "n1.7" {
		t.Errorf("incarnation 7: %q", got)
	}
	for _, ok := range []string{"n1", "n1.1", "node-a_b.18446744073709551615"} {
		if err := ValidateActorID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".1", "n1.", "n1.0", "n1.01", "n1.x", "n1.1.2", "n1.-1", "n 1.2", "n1.18446744073709551616"} {
		if err := ValidateActorID(bad); err == nil {
			t.Errorf("%q validated", bad)
		}
	}
	c := Clock{{Node: "n1", Counter: 1}, {Node: "n1.2", Counter: 3}}
	if err := c.Validate(); err != nil {
		t.Errorf("clock with an incarnation actor: %v", err)
	}
}
