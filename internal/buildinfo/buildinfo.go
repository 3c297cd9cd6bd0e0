// Package buildinfo says which build of tailbox is running: its version,
// commit, build date and Go version, for `tailbox version`, the start-up log
// line and the tailbox_build_info metric.
//
// `make build`, `make release` and the Dockerfile stamp the version, commit
// and date with the linker:
//
//	-X github.com/tailbox-cdc/tailbox/internal/buildinfo.version=v1.2.3
//	-X github.com/tailbox-cdc/tailbox/internal/buildinfo.commit=<40 hex digits>
//	-X github.com/tailbox-cdc/tailbox/internal/buildinfo.date=2026-01-02T03:04:05Z
//
// (scripts/version.sh derives them from git; the date is the commit's time,
// so that two builds of one commit are byte-identical). A binary built
// without them — plain `go build` or `go install` — reports what the Go
// toolchain recorded instead: the module version (`go install ...@v1.2.3`),
// the VCS revision and commit time when built with -buildvcs, else "dev".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-ldflags -X); empty when the build did not set them.
var (
	version string
	commit  string
	date    string
)

// Info describes a build. Fields the build did not record are empty, except
// Version, which is "dev" then.
type Info struct {
	// Version is the release version ("v1.2.3"), a version past the
	// latest tag ("v1.2.3-4-gabcdef123456"), "-dirty" appended when the
	// work tree had uncommitted changes; or "dev".
	Version string `json:"version"`
	// Commit is the full commit hash the binary was built from.
	Commit string `json:"commit"`
	// Go is the Go toolchain version ("go1.26.8").
	Go string `json:"go"`
	// Date is the build date in RFC 3339, UTC: the commit's time for a
	// stamped build, not the moment of the build.
	Date string `json:"date"`
	// Platform is GOOS/GOARCH ("linux/amd64").
	Platform string `json:"platform"`
}

// Get returns this binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(version, commit, date, bi)
}

// Version is Get().Version.
func Version() string { return Get().Version }

// String is the one-line form `tailbox version` prints:
// "tailbox v1.2.3 (commit abcdef123456, built 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)".
func (i Info) String() string {
	s := "tailbox " + i.Version + " ("
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += "commit " + c + ", "
	}
	if i.Date != "" {
		s += "built " + i.Date + ", "
	}
	return fmt.Sprintf("%s%s %s)", s, i.Go, i.Platform)
}

// get is Get with the linker's values and the toolchain's build info (nil
// when the binary has none) given.
func get(version, commit, date string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Commit: commit, Go: runtime.Version(), Date: date, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if info.Version == "" {
			info.Version = "dev"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if info.Commit == "" {
				info.Commit = s.Value
			}
		case "vcs.time":
			if info.Date == "" {
				info.Date = s.Value
			}
		}
	}
	if info.Version == "" {
		// go install ...@v1.2.3 records that version; go build with VCS
		// stamping a pseudo-version past the latest tag, "+dirty"
		// appended for uncommitted changes; without it, "(devel)".
		info.Version = "dev"
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
	}
	return info
}
