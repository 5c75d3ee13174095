#!/bin/sh
# publish.sh - put a benchmark run's chart and table into the README:
#
#   bench/publish.sh [RESULTS_DIR]    (default: the newest bench/results/*)
#
# It copies RESULTS_DIR/chart.svg to docs/bench.svg and replaces what is
# between the README's markers "<!-- bench:begin -->" and
# "<!-- bench:end -->" with the chart and RESULTS_DIR/table.md. The prose
# around the markers (how to read the run) is left for a person to write.
# `sudo PUBLISH=1 bench/run.sh` runs it at the end of a run.
set -eu
cd "$(dirname "$0")/.."
die() { echo "publish.sh: $*" >&2; exit 1; }
dir=${1:-$(ls -d bench/results/*/ 2>/dev/null | sort | tail -n 1)}
[ -n "$dir" ] || die "no results under bench/results"
[ -f "$dir/table.md" ] || die "no $dir/table.md"
[ -f "$dir/chart.svg" ] || die "no $dir/chart.svg"
grep -q '^<!-- bench:begin -->$' README.md && grep -q '^<!-- bench:end -->$' README.md ||
	die "README.md has no <!-- bench:begin --> and <!-- bench:end --> lines"

cp "$dir/chart.svg" docs/bench.svg
awk -v table="$dir/table.md" '
$0 == "<!-- bench:begin -->" {
	print
	print ""
	print "![Each helper'"'"'s result as a ratio to the bare veth, row by row](docs/bench.svg)"
	print ""
	while ((getline line < table) > 0) print line
	print ""
	skip = 1
	next
}
$0 == "<!-- bench:end -->" { skip = 0 }
!skip { print }
' README.md >README.md.new
mv README.md.new README.md
echo "docs/bench.svg and README.md now show $dir"
