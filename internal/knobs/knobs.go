// Package knobs holds the Go runtime settings of a tailbox process, which
// the binary's main applies (and the benchmark's in-process connector, to
// measure what the binary runs). Library packages never change them.
package knobs

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage-collection target of a tailbox process when GOGC
// is not set. The connector's live heap is small and bounded (records in
// flight, the reader's event cache), so a target above Go's 100 trades a
// bounded amount of memory for fewer collections per event; `make bench`
// reports both the CPU and the peak RSS it gives.
const GCPercent = 250

// SetGCPercent applies GCPercent unless the user set GOGC.
func SetGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(GCPercent)
	}
}
