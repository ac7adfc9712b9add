package client

import "testing"

// TestPatternPrefix: the listing Current starts from is the pattern's
// literal tokens before its first wildcard, or the key itself.
func TestPatternPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		">":               "",
		"*":               "",
		"orders.>":        "orders.",
		"orders.*.state":  "orders.",
		"a.b.*":           "a.b.",
		"orders.42":       "orders.42",
		"one":             "one",
		"eu.orders.*.>":   "eu.orders.",
		"with space.x.>":  "with space.x.",
		"orders.42.items": "orders.42.items",
	} {
		if got := patternPrefix(pattern); got != want {
			t.Errorf("patternPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}
