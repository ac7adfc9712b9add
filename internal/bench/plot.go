package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// The picture --plot writes: for each value size, throughput against
// concurrency (one line per system and operation, puts and gets apart)
// and below it the p50 (solid) and p99 (dashed) latencies on a log
// scale, from the rows' medians. Hand-written SVG: a few polylines do
// not need a plotting library. The output depends only on the report.

const (
	plotPanelW  = 380.0 // a panel's plot area
	plotPanelH  = 200.0
	plotMarginL = 70.0 // room for the y labels
	plotMarginT = 50.0 // room for a panel's title
	plotMarginB = 40.0 // room for the x labels
	plotLegendW = 300.0
)

// plotPalette colors the series in their order (Tableau 10).
var plotPalette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// plotSeries is one (system, operation) line of a panel.
type plotSeries struct {
	System, Op string
	Kind       string
	Points     []row // by C
}

// plotData groups the put and get rows of one value size into series,
// in table order (rows are sorted), and lists their concurrencies.
func plotData(rows []row, size int) (series []*plotSeries, concs []int) {
	for _, r := range rows {
		if r.Size != size || (r.Kind != kindPut && r.Kind != kindGet) || r.Median.Ops == 0 {
			continue
		}
		if !slices.Contains(concs, r.C) {
			concs = append(concs, r.C)
		}
		i := slices.IndexFunc(series, func(s *plotSeries) bool { return s.System == r.System && s.Op == r.Op })
		if i < 0 {
			series = append(series, &plotSeries{System: r.System, Op: r.Op, Kind: r.Kind})
			i = len(series) - 1
		}
		series[i].Points = append(series[i].Points, r)
	}
	slices.Sort(concs)
	for _, s := range series {
		slices.SortFunc(s.Points, func(a, b row) int { return a.C - b.C })
	}
	return series, concs
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// writePlot draws rep as SVG.
func writePlot(w io.Writer, rep *report) error {
	var sizes []int
	for _, r := range rep.Rows {
		if (r.Kind == kindPut || r.Kind == kindGet) && !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
	}
	slices.Sort(sizes)
	cellW, cellH := plotMarginL+plotPanelW+20, plotMarginT+plotPanelH+plotMarginB
	width := 2*cellW + plotLegendW
	blockH := 2*cellH + 30
	height := 40 + float64(max(len(sizes), 1))*blockH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := "kvmesh bench"
	if h := rep.Header; h.Date != "" {
		title += fmt.Sprintf(": %s, commit %s, %d CPUs, medians of %d rounds", h.Date, h.Commit, h.NumCPU, rep.Config.Rounds)
	}
	fmt.Fprintf(&b, `<text x="10" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", esc(title))
	if len(sizes) == 0 {
		fmt.Fprintf(&b, `<text x="10" y="60">no put or get measured</text>`+"\n")
	}
	for bi, size := range sizes {
		series, concs := plotData(rep.Rows, size)
		y0 := 40 + float64(bi)*blockH
		fmt.Fprintf(&b, `<g class="size" data-size="%d">`+"\n", size)
		for col, kind := range []string{kindPut, kindGet} {
			x0 := float64(col) * cellW
			var ks []*plotSeries
			for _, s := range series {
				if s.Kind == kind {
					ks = append(ks, s)
				}
			}
			plotPanel(&b, x0, y0, fmt.Sprintf("%s throughput, %s values (ops/s)", kind, sizeLabel(size)), ks, concs, series, false)
			plotPanel(&b, x0, y0+cellH, fmt.Sprintf("%s latency, %s values (ms, log; solid p50, dashed p99)", kind, sizeLabel(size)), ks, concs, series, true)
		}
		// Legend: one entry per series, in the colors of every panel.
		lx := 2*cellW + 10
		for i, s := range series {
			ly := y0 + plotMarginT + float64(i)*18
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+24, ly-4, plotPalette[i%len(plotPalette)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s %s</text>`+"\n", lx+30, ly, esc(s.System), esc(s.Op))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// plotPanel draws one panel at (x0, y0): throughput (linear from 0) or
// the p50 and p99 latencies (log10) of ks against C. all gives each
// series its color.
func plotPanel(b *strings.Builder, x0, y0 float64, title string, ks []*plotSeries, concs []int, all []*plotSeries, latency bool) {
	left, top := x0+plotMarginL, y0+plotMarginT
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", left, top-12, esc(title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", left, top, plotPanelW, plotPanelH)
	xOf := func(c int) float64 {
		i := slices.Index(concs, c)
		return left + plotPanelW*(float64(i)+0.5)/float64(len(concs))
	}
	for _, c := range concs {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">C=%d</text>`+"\n", xOf(c), top+plotPanelH+16, c)
	}
	// The y range and its ticks.
	lo, hi := math.Inf(1), 0.0
	for _, s := range ks {
		for _, p := range s.Points {
			for _, v := range plotValues(p.Median, latency) {
				if v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
	}
	if hi == 0 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">no data</text>`+"\n", left+plotPanelW/2, top+plotPanelH/2)
		return
	}
	var yOf func(v float64) float64
	var ticks []float64
	if latency {
		l0, l1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if l1 == l0 {
			l1++
		}
		yOf = func(v float64) float64 { return top + plotPanelH*(1-(math.Log10(v)-l0)/(l1-l0)) }
		for e := l0; e <= l1; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
	} else {
		top1 := niceCeil(hi)
		yOf = func(v float64) float64 { return top + plotPanelH*(1-v/top1) }
		for i := range 6 { // fifths of 1, 2 or 5 times 10^k: round labels
			ticks = append(ticks, top1*float64(i)/5)
		}
	}
	for _, t := range ticks {
		y := yOf(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+plotPanelW, y)
		label := fmtRate(t)
		if latency {
			label = strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", t), "0"), ".")
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, label)
	}
	for _, s := range ks {
		color := plotPalette[slices.Index(all, s)%len(plotPalette)]
		fmt.Fprintf(b, `<g class="series" data-system="%s" data-op="%s" stroke="%s" fill="%s">`+"\n", esc(s.System), esc(s.Op), color, color)
		dashes := []string{""} // throughput; latency: p50 solid, p99 dashed
		if latency {
			dashes = append(dashes, ` stroke-dasharray="6 4"`)
		}
		for vi, dash := range dashes {
			var pts []string
			for _, p := range s.Points {
				if v := plotValues(p.Median, latency)[vi]; v > 0 {
					x, y := xOf(p.C), yOf(v)
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
					fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5"/>`+"\n", x, y)
				}
			}
			fmt.Fprintf(b, `<polyline fill="none" stroke-width="2"%s points="%s"/>`+"\n", dash, strings.Join(pts, " "))
		}
		b.WriteString("</g>\n")
	}
}

// plotValues is what a panel draws of m: throughput, or p50 and p99.
func plotValues(m sample, latency bool) []float64 {
	if latency {
		return []float64{m.P50, m.P99}
	}
	return []float64{m.OpsPerSec}
}

// writePlotFile writes the picture of rep to path.
func writePlotFile(path string, rep *report) error {
	var buf bytes.Buffer
	if err := writePlot(&buf, rep); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
