package cli

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args, pos []string
		v         string
	}{
		{[]string{"a", "-v", "x", "b"}, []string{"a", "b"}, "x"},
		{[]string{"-v", "x", "a"}, []string{"a"}, "x"},
		{[]string{"a", "--", "-v", "x"}, []string{"a", "-v", "x"}, ""},
		{nil, nil, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		v := fs.String("v", "", "")
		pos, err := ParseInterspersed(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || *v != c.v {
			t.Errorf("%q: pos %q v %q err %v, want %q and %q", c.args, pos, *v, err, c.pos, c.v)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ue UsageError
	if _, err := ParseInterspersed(fs, []string{"a", "--nope"}); !errors.As(err, &ue) {
		t.Errorf("unknown flag: %v, want a UsageError", err)
	}
	if _, err := ParseInterspersed(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestSplitList(t *testing.T) {
	if got := SplitList(" a, b ,,c,"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("SplitList = %q", got)
	}
	if got := SplitList(""); got != nil {
		t.Errorf("SplitList of nothing = %q", got)
	}
}

func TestParseFlagsOnly(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	v := fs.String("v", "", "")
	if err := ParseFlagsOnly(fs, []string{"-v", "x"}); err != nil || *v != "x" {
		t.Errorf("flags alone: v %q err %v", *v, err)
	}
	var ue UsageError
	err := ParseFlagsOnly(fs, []string{"-v", "x", "extra"})
	if !errors.As(err, &ue) || err.Error() != `unexpected argument "extra"` {
		t.Errorf("an argument: %v, want a UsageError naming it", err)
	}
}
