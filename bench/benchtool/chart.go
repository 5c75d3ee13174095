package main

// The chart of a benchmark run: each row of the table as a ratio to the
// bare veth's value, the kernel's own path, with the helpers side by side
// as horizontal bars. benchtool writes a gnuplot program, data included,
// and bench/run.sh pipes it into gnuplot (Debian's gnuplot-nox), which
// draws the SVG: the program is all there is to the picture, and it needs
// no plotting code of ours nor a Go plotting library in the module.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

const (
	baseline    = "veth" // the kernel's own path: every ratio's denominator
	barHeight   = 0.8    // of a bar, in units of the space between bars
	chartWidth  = 960    // pixels
	pixelsPerY  = 13     // per bar and per gap between rows
	chartMargin = 150    // pixels of title, axis and legend
)

// helperColors are the bars' colours; gopasta's stands out.
var helperColors = map[string]string{
	"gopasta":     "#1f5fbf",
	"cpasta":      "#e07b24",
	"cpasta25":    "#f2b447",
	"cpasta12":    "#a65d1c",
	"slirp4netns": "#8c8c8c",
}

// chartRow is one row of the chart: each helper's median as a ratio to
// the baseline's, or why there is none.
type chartRow struct {
	title  string
	ratio  map[string]float64
	status map[string]string // "fail", "timeout", "n/a", for helpers without a ratio
}

// noRatio says why a row is left out of the chart: loss and RSS have no
// kernel value worth dividing by (the veth loses nothing, runs no helper).
func noRatio(t string) bool {
	base, _, _ := strings.Cut(t, "@")
	return strings.HasSuffix(base, "-loss") || base == "rss"
}

// lowerIsBetter tells the rows where a smaller value is better: there the
// ratio is the baseline's value over the helper's, so that 1 is the
// kernel's own speed and less is slower in every row.
func lowerIsBetter(t string) bool {
	return rowSpecOf(t).unit == "us"
}

// chartRows computes the rows of the chart from the results. A row at MTU
// 1500 (TEST@1500) takes the veth's value of TEST: the veth's MTU is 1500.
func chartRows(data map[string]map[string][]sample, order, helpers []string) []chartRow {
	var rows []chartRow
	for _, t := range order {
		if noRatio(t) {
			continue
		}
		base, _, _ := strings.Cut(t, "@")
		_, ref, ok, _ := summarize(data[base][baseline], 2)
		if !ok || ref == 0 {
			continue
		}
		spec := rowSpecOf(t)
		r := chartRow{title: spec.title, ratio: map[string]float64{}, status: map[string]string{}}
		if lowerIsBetter(t) {
			r.title += ", inverse"
		}
		for _, h := range helpers {
			cell, m, ok, _ := summarize(data[t][h], spec.prec)
			switch {
			case !ok:
				r.status[h] = cell
			case lowerIsBetter(t) && m != 0:
				r.ratio[h] = ref / m
			case lowerIsBetter(t):
				r.status[h] = "fail"
			default:
				r.ratio[h] = m / ref
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// hasRatio tells whether helper h has a bar in any row.
func hasRatio(rows []chartRow, h string) bool {
	for _, r := range rows {
		if _, ok := r.ratio[h]; ok {
			return true
		}
	}
	return false
}

// hasMissing tells whether any row has a helper without a bar.
func hasMissing(rows []chartRow) bool {
	for _, r := range rows {
		if len(r.status) > 0 {
			return true
		}
	}
	return false
}

// quote makes s a gnuplot string (in double quotes, where \n is a line
// break).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// writeChart writes the gnuplot program drawing rows, the helpers in
// order; bar j of row i is at y = -(i*(len(helpers)+1) + j).
func writeChart(w io.Writer, title string, rows []chartRow, helpers []string) {
	n := len(helpers) + 1
	y := func(i, j int) int { return -(i*n + j) }
	maxRatio := 1.0
	for _, r := range rows {
		for _, v := range r.ratio {
			maxRatio = math.Max(maxRatio, v)
		}
	}
	height := len(rows)*n*pixelsPerY + chartMargin
	fmt.Fprintf(w, "set terminal svg size %d,%d dynamic font \"sans,11\" background rgb \"white\"\n", chartWidth, height)
	fmt.Fprintf(w, "set title %s noenhanced\n", quote(title+"\neach helper's result divided by the bare veth's: 1 is the kernel's own path, higher is better"))
	fmt.Fprintln(w, `set xlabel "ratio to the bare veth (rows marked inverse: the veth's latency over the helper's)" noenhanced`)
	fmt.Fprintln(w, "set style fill solid 0.9 noborder")
	fmt.Fprintln(w, "set key outside bottom center horizontal samplen 2 noenhanced")
	fmt.Fprintln(w, "set bmargin 6")
	fmt.Fprintln(w, "set grid xtics lc rgb \"#dddddd\"")
	fmt.Fprintf(w, "set xrange [0:%.2f]\n", maxRatio*1.12)
	fmt.Fprintf(w, "set yrange [%d:1]\n", y(len(rows)-1, n-1))
	var tics []string
	for i, r := range rows {
		tics = append(tics, fmt.Sprintf("%s %.1f", quote(r.title), float64(y(i, 0)+y(i, len(helpers)-1))/2))
	}
	fmt.Fprintf(w, "set ytics scale 0 noenhanced (%s)\n", strings.Join(tics, ", "))
	fmt.Fprintln(w, "set arrow from 1, graph 0 to 1, graph 1 nohead dashtype 2 lc rgb \"black\"")
	for j, h := range helpers {
		fmt.Fprintf(w, "$bars%d << EOD\n", j)
		for i, r := range rows {
			if v, ok := r.ratio[h]; ok {
				fmt.Fprintf(w, "%d %.4f\n", y(i, j), v)
			}
		}
		fmt.Fprintln(w, "EOD")
	}
	fmt.Fprintln(w, "$missing << EOD")
	for i, r := range rows {
		for j, h := range helpers {
			if st, ok := r.status[h]; ok {
				fmt.Fprintf(w, "%d %s\n", y(i, j), quote(st))
			}
		}
	}
	fmt.Fprintln(w, "EOD")
	var plots []string
	for j, h := range helpers {
		color, ok := helperColors[h]
		if !ok {
			color = "#555555"
		}
		name := quote(nameOf(helperNames, h))
		if !hasRatio(rows, h) { // gnuplot warns about an empty data block: only the key
			plots = append(plots, fmt.Sprintf("keyentry with boxxyerror lc rgb %s title %s", quote(color), name))
			continue
		}
		plots = append(plots,
			fmt.Sprintf("$bars%d using ($2/2):1:($2/2):(%.2f) with boxxyerror lc rgb %s title %s", j, barHeight/2, quote(color), name),
			fmt.Sprintf("$bars%d using 2:1:(sprintf(\"%%.2f\", $2)) with labels left offset 0.4,0 font \",8\" notitle", j))
	}
	if hasMissing(rows) {
		plots = append(plots, "$missing using (0):1:2 with labels left offset 0.4,0 font \",8\" tc rgb \"#b00000\" notitle")
	}
	fmt.Fprintf(w, "plot %s\n", strings.Join(plots, ", \\\n     "))
}

// chart writes the gnuplot program of a run's chart on standard output.
func chart(args []string) error {
	fs := flag.NewFlagSet("chart", flag.ExitOnError)
	helpersFlag := fs.String("helpers", "", "bars of each row, in order (default: as they appear); veth is the baseline")
	testsFlag := fs.String("tests", "", "row order (default: as they appear)")
	title := fs.String("title", "gopasta benchmark", "the chart's title")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: chart [flags] RESULTS.tsv")
	}
	data, order, helpers, err := readResults(fs.Arg(0), *testsFlag)
	if err != nil {
		return err
	}
	if *helpersFlag != "" {
		helpers = strings.Fields(*helpersFlag)
	}
	var bars []string
	for _, h := range helpers {
		if h != baseline {
			bars = append(bars, h)
		}
	}
	rows := chartRows(data, order, bars)
	if len(rows) == 0 {
		return errors.New("no row has a value for the veth to compare with")
	}
	writeChart(os.Stdout, *title, rows, bars)
	return nil
}
