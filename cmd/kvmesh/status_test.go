package main

import (
	"fmt"
	"testing"
)

func TestAgreement(t *testing.T) {
	for _, c := range []struct {
		roots []string
		want  string
	}{
		{[]string{"a", "a", "a"}, "yes"},
		{[]string{"a", "b", "a"}, "NO"},
		{[]string{"a", "", "b"}, "?"}, // an owner without a tree cannot be compared
		{[]string{"", ""}, "?"},
	} {
		var os []aeOwner
		for i, r := range c.roots {
			os = append(os, aeOwner{node: fmt.Sprintf("n%d", i+1), root: r})
		}
		if got := agreement(os); got != c.want {
			t.Errorf("roots %q: %s, want %s", c.roots, got, c.want)
		}
	}
}
