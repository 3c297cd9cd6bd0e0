package main

import (
	"os"
	"syscall"
	"time"
)

// changeTime is fi's change time (ctime), which a rename sets: the end of
// a checkpoint save, which writes a temporary file and renames it.
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
