// Command perfreport turns the results compare.sh collects into the
// whole-server section of docs/performance.md (QPS, latency and server CPU
// per call, with ratios to plain grpc-go, and greeter bench checked against
// ghz), between the markers it keeps, and docs/performance.png (a chart).
//
// It reads, from --results:
//
//	<target>.<round>.json  greeter bench --json against each target, rounds
//	                       1 to --rounds; the round of median QPS is reported
//	<target>.<round>.cpu   the target's CPU time (user and system) during
//	                       that round, in 1/100 s
//	<target>.rss        the target's peak resident set (VmHWM), in kB
//	ghz-max.json, bench-max.json    ghz and greeter bench, no rate limit,
//	                                against greeter serve
//	ghz-rate.json, bench-rate.json  the same at a fixed --rps
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-greeter/greeter/bench/internal/paired"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// target is one server compare.sh loaded.
type target struct {
	file, label string
}

var targets = []target{
	{"greeter", "greeter serve"},
	{"grpc-go", "plain grpc-go"},
	{"python", "Python tutorial"},
}

// benchReport is the part of greeter bench --json that is used here.
type benchReport struct {
	Count     int64            `json:"count"`
	OK        int64            `json:"ok"`
	DurationS float64          `json:"duration_s"`
	QPS       float64          `json:"qps"`
	Errors    map[string]int64 `json:"errors"`
	LatencyMs struct {
		P50, P90, P99, Max float64
	} `json:"latency_ms"`
}

// ghzReport is the part of ghz's JSON output that is used here. Times are
// in nanoseconds.
type ghzReport struct {
	Count   int64   `json:"count"`
	Total   int64   `json:"total"`
	RPS     float64 `json:"rps"`
	Slowest int64   `json:"slowest"`
	Latency []struct {
		Percentage int   `json:"percentage"`
		Latency    int64 `json:"latency"`
	} `json:"latencyDistribution"`
	Status map[string]int64 `json:"statusCodeDistribution"`
}

func (g ghzReport) percentile(p int) float64 {
	for _, l := range g.Latency {
		if l.Percentage == p {
			return float64(l.Latency) / 1e6
		}
	}
	return 0
}

func main() {
	results := flag.String("results", "", "`dir`ectory of results written by compare.sh")
	md := flag.String("md", "docs/performance.md", "markdown `file` whose marked section to rewrite")
	png := flag.String("png", "docs/performance.png", "PNG `file` to write")
	settings := flag.String("settings", "", "greeter bench settings used, for the text")
	rounds := flag.Int("rounds", 1, "how many rounds each target was loaded")
	rate := flag.String("rate", "", "the --rps used for the validation at a fixed rate, for the text")
	machine := flag.String("machine", "", "a description of the machine, for the text")
	flag.Parse()
	if err := run(*results, *md, *png, *settings, *rounds, *rate, *machine); err != nil {
		fmt.Fprintf(os.Stderr, "perfreport: %v\n", err)
		os.Exit(1)
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func run(dir, mdPath, pngPath, settings string, rounds int, rate, machine string) error {
	reps := make([]benchReport, len(targets))
	rss := make([]float64, len(targets))
	qpsRounds := make([][]float64, len(targets))
	cpuRounds := make([][]float64, len(targets)) // µs of server CPU per call
	for i, t := range targets {
		var runs []benchReport
		for r := 1; r <= rounds; r++ {
			var rep benchReport
			if err := readJSON(filepath.Join(dir, fmt.Sprintf("%s.%d.json", t.file, r)), &rep); err != nil {
				return err
			}
			runs = append(runs, rep)
			qpsRounds[i] = append(qpsRounds[i], rep.QPS)
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.%d.cpu", t.file, r)))
			if err != nil {
				return err
			}
			ticks, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			if err != nil || rep.Count == 0 {
				return fmt.Errorf("%s round %d: CPU %q, %d calls", t.file, r, b, rep.Count)
			}
			cpuRounds[i] = append(cpuRounds[i], ticks*1e4/float64(rep.Count))
		}
		slices.SortFunc(runs, func(a, b benchReport) int { return cmp.Compare(a.QPS, b.QPS) })
		reps[i] = runs[len(runs)/2]
		if b, err := os.ReadFile(filepath.Join(dir, t.file+".rss")); err == nil {
			rss[i], _ = strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		}
	}
	var benchMax, benchRate benchReport
	var ghzMax, ghzRate ghzReport
	for path, v := range map[string]any{
		"bench-max.json": &benchMax, "bench-rate.json": &benchRate,
		"ghz-max.json": &ghzMax, "ghz-rate.json": &ghzRate,
	} {
		if err := readJSON(filepath.Join(dir, path), v); err != nil {
			return err
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s; every server and the load generator share it, on 127.0.0.1. ", machine)
	fmt.Fprintf(&b, "Each server was loaded with `greeter bench %s`, %d times, the servers taking turns. ", settings, rounds)
	fmt.Fprintf(&b, "QPS and latencies are from each server's round of median QPS; CPU per call is the server's own user and system time, ")
	fmt.Fprintf(&b, "read from /proc around each round, median of the rounds; the ratios to plain grpc-go are the medians of the rounds' ratios ")
	fmt.Fprintf(&b, "(rounds of the same number ran seconds apart, so a slow spell of the machine weighs on both).\n\n")
	fmt.Fprintf(&b, "| server | QPS | p50 | p90 | p99 | CPU per call | peak RSS | QPS vs grpc-go | CPU per call vs grpc-go |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, t := range targets {
		r := reps[i]
		qpsRatio, _ := paired.Ratio(qpsRounds[i], qpsRounds[1], func(x, b float64) bool { return x >= b })
		cpuRatio, _ := paired.Ratio(cpuRounds[i], cpuRounds[1], func(x, b float64) bool { return x <= b })
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %.0f µs | %s | %.2fx | %.2fx |\n", t.label, r.QPS,
			ms(r.LatencyMs.P50), ms(r.LatencyMs.P90), ms(r.LatencyMs.P99), paired.Median(cpuRounds[i]), mib(rss[i]), qpsRatio, cpuRatio)
	}
	if n := reps[0].Count - reps[0].OK + reps[1].Count - reps[1].OK + reps[2].Count - reps[2].OK; n > 0 {
		fmt.Fprintf(&b, "\n%d calls failed in the rounds shown.\n", n)
	}

	fmt.Fprintf(&b, "\n`greeter bench` checked against ghz, both loading `greeter serve` with the same settings, ")
	fmt.Fprintf(&b, "at a fixed rate (`--rps %s`, where the two should agree) and with no limit ", rate)
	fmt.Fprintf(&b, "(where a cheaper client leaves more of the shared cores to the server):\n\n")
	fmt.Fprintf(&b, "| run | tool | QPS | p50 | p90 | p99 | calls |\n|---|---|---:|---:|---:|---:|---:|\n")
	row := func(run, tool string, qps, p50, p90, p99 float64, n int64) {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %d |\n", run, tool, qps, ms(p50), ms(p90), ms(p99), n)
	}
	row("--rps "+rate, "greeter bench", benchRate.QPS, benchRate.LatencyMs.P50, benchRate.LatencyMs.P90, benchRate.LatencyMs.P99, benchRate.Count)
	row("--rps "+rate, "ghz", ghzRate.RPS, ghzRate.percentile(50), ghzRate.percentile(90), ghzRate.percentile(99), ghzRate.Count)
	row("no limit", "greeter bench", benchMax.QPS, benchMax.LatencyMs.P50, benchMax.LatencyMs.P90, benchMax.LatencyMs.P99, benchMax.Count)
	row("no limit", "ghz", ghzMax.RPS, ghzMax.percentile(50), ghzMax.percentile(90), ghzMax.percentile(99), ghzMax.Count)
	fmt.Fprintf(&b, "\n(ghz counts the calls in flight when its time is up as Canceled; greeter bench lets them finish.)\n")

	if err := replaceSection(mdPath, b.String()); err != nil {
		return err
	}
	return chart(pngPath, reps)
}

// The markers around the part of the markdown file that perfreport writes;
// the rest of the file is left as it is.
const (
	beginMarker = "<!-- begin: written by bench/compare.sh -->"
	endMarker   = "<!-- end: written by bench/compare.sh -->"
)

// replaceSection replaces what lies between beginMarker and endMarker in
// the file at path with text.
func replaceSection(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	before, rest, ok1 := strings.Cut(string(old), beginMarker)
	_, after, ok2 := strings.Cut(rest, endMarker)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s: no %q ... %q section to replace", path, beginMarker, endMarker)
	}
	return os.WriteFile(path, []byte(before+beginMarker+"\n"+text+endMarker+after), 0o644)
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func mib(kb float64) string {
	if kb == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", kb/1024)
}

// chart draws QPS per server on the left and p50/p90/p99 per server on the
// right, side by side.
func chart(path string, reps []benchReport) error {
	names := make([]string, len(targets))
	qps := make(plotter.Values, len(targets))
	for i, t := range targets {
		names[i], qps[i] = t.label, reps[i].QPS
	}
	colors := []color.Color{
		color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	}

	left := plot.New()
	left.Title.Text = "Throughput (higher is better)"
	left.Y.Label.Text = "calls per second"
	left.Y.Min = 0
	bars, err := plotter.NewBarChart(qps, vg.Points(40))
	if err != nil {
		return err
	}
	bars.Color = colors[0]
	bars.LineStyle.Width = 0
	left.Add(bars)
	left.Y.Max = 1.12 * maxOf(qps) // room for the labels
	left.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(min, max)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = fmt.Sprintf("%.0f", ticks[i].Value)
			}
		}
		return ticks
	})
	left.NominalX(names...)
	if err := labelBars(left, qps, func(v float64) string { return fmt.Sprintf("%.0f", v) }, 0); err != nil {
		return err
	}

	right := plot.New()
	right.Title.Text = "Latency (lower is better)"
	right.Y.Label.Text = "milliseconds"
	right.Y.Min = 0
	w := vg.Points(20)
	for j, p := range []string{"p50", "p90", "p99"} {
		vs := make(plotter.Values, len(targets))
		for i, r := range reps {
			vs[i] = []float64{r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99}[j]
		}
		bc, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return err
		}
		bc.Color = colors[j]
		bc.LineStyle.Width = 0
		bc.Offset = vg.Length(j-1) * w
		right.Add(bc)
		right.Legend.Add(p, bc)
		if err := labelBars(right, vs, func(v float64) string {
			if v < 1 {
				return fmt.Sprintf("%.2f", v)
			}
			return fmt.Sprintf("%.1f", v)
		}, float64(j-1)*0.22); err != nil {
			return err
		}
	}
	right.Y.Max = 1.12 * max(maxOf(plotValues(reps, func(r benchReport) float64 { return r.LatencyMs.P99 })),
		maxOf(plotValues(reps, func(r benchReport) float64 { return r.LatencyMs.P90 })))
	right.Legend.Top = true
	right.Legend.Left = true
	right.NominalX(names...)

	const width, height = 10 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110))
	dc := draw.New(img)
	canvases := plot.Align([][]*plot.Plot{{left, right}}, draw.Tiles{
		Rows: 1, Cols: 2, PadX: vg.Inch / 2, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8,
		PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8,
	}, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func maxOf(vs plotter.Values) float64 {
	var m float64
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

func plotValues(reps []benchReport, f func(benchReport) float64) plotter.Values {
	vs := make(plotter.Values, len(reps))
	for i, r := range reps {
		vs[i] = f(r)
	}
	return vs
}

// labelBars writes each value above its bar; dx shifts the labels along x,
// in bar-slot units, for grouped bars.
func labelBars(p *plot.Plot, vs plotter.Values, format func(float64) string, dx float64) error {
	var xys plotter.XYLabels
	for i, v := range vs {
		xys.XYs = append(xys.XYs, plotter.XY{X: float64(i) + dx, Y: v})
		xys.Labels = append(xys.Labels, format(v))
	}
	l, err := plotter.NewLabels(xys)
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].YAlign = draw.YBottom
		l.TextStyle[i].Font.Size = vg.Points(8)
	}
	p.Add(l)
	return nil
}
