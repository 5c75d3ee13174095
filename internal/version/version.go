// Package version holds the version of gopasta's programs, pasta and
// pesto, which are built and released together.
package version

// String is what --version prints first.
const String = "gopasta 0.1.0"
