package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A results.tsv of two rounds: TCP upload (higher is better), its MTU 1500
// row (no veth of its own), a latency (lower is better), a loss and the
// RSS (no ratio), with a helper that failed and one that is n/a.
const chartResults = `tcp4-up	veth	1	ok	10	
tcp4-up	veth	2	ok	12	
tcp4-up	gopasta	1	ok	5	
tcp4-up	gopasta	2	ok	7	
tcp4-up	cpasta	1	fail		boom
tcp4-up	cpasta	2	fail		boom
tcp4-up@1500	veth	1	n/a		
tcp4-up@1500	gopasta	1	ok	2.2	
tcp4-up@1500	cpasta	1	ok	1.1	
tcp4-rr-p50	veth	1	ok	20	
tcp4-rr-p50	gopasta	1	ok	40	
tcp4-rr-p50	cpasta	1	n/a		
udp4-up-loss	veth	1	ok	0	
udp4-up-loss	gopasta	1	ok	3	
rss	gopasta	1	ok	20	
`

func writeResults(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "results.tsv")
	if err := os.WriteFile(path, []byte(chartResults), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChartRows(t *testing.T) {
	data, order, helpers, err := readResults(writeResults(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(helpers, " ") != "veth gopasta cpasta" {
		t.Errorf("helpers %q, want them as they appear", helpers)
	}
	rows := chartRows(data, order, []string{"gopasta", "cpasta"})
	want := []struct {
		title           string
		gopasta, cpasta float64 // 0: no bar
		status          string  // cpasta's, without a bar
	}{
		{"TCP upload, IPv4", 6.0 / 11, 0, "fail"},              // medians 6 and 11
		{"TCP upload, IPv4, MTU 1500", 2.2 / 11, 1.1 / 11, ""}, // the veth's row without @1500
		{"TCP request/response p50, inverse", 20.0 / 40, 0, "n/a"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d (no loss, no RSS): %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.title != w.title || !near(r.ratio["gopasta"], w.gopasta) || !near(r.ratio["cpasta"], w.cpasta) || r.status["cpasta"] != w.status {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestChartSVG runs gnuplot on the program and checks the picture: an SVG
// with the rows' titles, the helpers' names and a value of each bar.
func TestChartSVG(t *testing.T) {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		if os.Getenv("GOPASTA_REQUIRE_ALL") == "1" {
			t.Fatal("gnuplot is not installed (Debian: gnuplot-nox)")
		}
		t.Skip("gnuplot is not installed (Debian: gnuplot-nox)")
	}
	data, order, _, err := readResults(writeResults(t), "")
	if err != nil {
		t.Fatal(err)
	}
	var program bytes.Buffer
	helpers := []string{"gopasta", "cpasta", "slirp4netns"} // slirp4netns: no results at all
	writeChart(&program, `a "quoted" title`, chartRows(data, order, helpers), helpers)
	cmd := exec.Command("gnuplot")
	cmd.Stdin = &program
	var svg, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &svg, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("gnuplot: %v\n%s\n[program]\n%s", err, stderr.String(), program.String())
	}
	var texts []string
	dec := xml.NewDecoder(&svg)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) != "" {
			texts = append(texts, strings.TrimSpace(string(cd)))
		}
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"TCP upload, IPv4", "TCP upload, IPv4, MTU 1500", "TCP request/response p50, inverse",
		"gopasta", "C pasta", "slirp4netns", "0.55", "0.20", "0.10", "0.50", "fail", "n/a", `a "quoted" title`} {
		if !strings.Contains(all, want) {
			t.Errorf("the SVG has no text %q:\n%s", want, all)
		}
	}
}
