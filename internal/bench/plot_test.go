package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strings"
	"testing"
)

// plotReport is a fixed report with every kind of line the picture has.
func plotReport() *report {
	mk := func(system, op, kind string, c, size int, tput, p50, p99 float64) row {
		return row{System: system, Op: op, Kind: kind, C: c, Size: size,
			Median: sample{Ops: 100, OpsPerSec: tput, P50: p50, P99: p99}}
	}
	var rows []row
	for i, c := range []int{1, 16, 64} {
		f := float64(i + 1)
		for _, size := range []int{100, 10240} {
			rows = append(rows,
				mk(sysKvmesh, "put W=2", kindPut, c, size, 2000*f, 0.4*f, 2*f),
				mk(sysKvmesh, "get R=2", kindGet, c, size, 8000*f, 0.2*f, 1*f),
				mk(sysKvmesh, "get R=1", kindGet, c, size, 12000*f, 0.1*f, 0.9*f),
				mk(sysKvmeshR, "put W=2", kindPut, c, size, 1500*f, 0.5*f, 3*f),
				mk(sysKvmeshR, "get R=2", kindGet, c, size, 5000*f, 0.3*f, 2.5*f),
				mk(sysJSSync, kindPut, kindPut, c, size, 1800*f, 0.45*f, 2.2*f),
				mk(sysJSSync, kindGet, kindGet, c, size, 11000*f, 0.09*f, 0.7*f),
				mk(sysKvmesh, "mix90 R=2 W=2", kindMix90, c, size, 9000*f, 0.2*f, 1*f),
			)
		}
	}
	sortRows(rows)
	return &report{Header: header{Date: "2026-12-07T00:00:00Z", Commit: "abc1234 <&>", NumCPU: 2},
		Config: config{Rounds: 3}, Rows: rows}
}

func TestPlotIsDeterministicSVGWithASeriesPerSystem(t *testing.T) {
	var a, b bytes.Buffer
	if err := writePlot(&a, plotReport()); err != nil {
		t.Fatal(err)
	}
	if err := writePlot(&b, plotReport()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two renderings of the same report differ")
	}
	// It parses as XML, with an svg root; collect the series groups.
	type key struct{ system, op string }
	series := map[key]int{}
	polylines := 0
	dec := xml.NewDecoder(bytes.NewReader(a.Bytes()))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, a.String())
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root == "" {
			root = se.Name.Local
		}
		attr := func(name string) string {
			for _, at := range se.Attr {
				if at.Name.Local == name {
					return at.Value
				}
			}
			return ""
		}
		switch se.Name.Local {
		case "g":
			if attr("class") == "series" {
				series[key{attr("data-system"), attr("data-op")}]++
			}
		case "polyline":
			polylines++
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	// Each put or get series is in a throughput and a latency panel, for
	// both sizes; the mix is not drawn.
	for _, k := range []key{
		{sysKvmesh, "put W=2"}, {sysKvmesh, "get R=2"}, {sysKvmesh, "get R=1"},
		{sysKvmeshR, "put W=2"}, {sysKvmeshR, "get R=2"}, {sysJSSync, kindPut}, {sysJSSync, kindGet},
	} {
		if series[k] != 4 {
			t.Errorf("series %v drawn %d times, want 4 (2 panels x 2 sizes)", k, series[k])
		}
	}
	if len(series) != 7 {
		t.Errorf("series %v", series)
	}
	// Per size: 7 throughput lines, 7 p50 and 7 p99 lines.
	if polylines != 2*7*3 {
		t.Errorf("%d polylines", polylines)
	}
	if !strings.Contains(a.String(), "abc1234 &lt;&amp;&gt;") {
		t.Error("title not escaped")
	}

	var empty bytes.Buffer
	if err := writePlot(&empty, &report{}); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(empty.Bytes(), new(struct{})); err != nil {
		t.Errorf("empty picture: %v", err)
	}
}

func TestPlotFlag(t *testing.T) {
	cfg, err := parseFlags([]string{"--plot", "x.svg"}, io.Discard)
	if err != nil || cfg.plotPath != "x.svg" {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := parseFlags([]string{"--plot", "x.svg", "--ops", "mix90"}, io.Discard); err == nil {
		t.Error("--plot without puts or gets: no error")
	}
	if !slices.Contains(cfg.Systems, sysKvmeshR) {
		t.Error("kvmesh-raw not in the default systems")
	}
}
