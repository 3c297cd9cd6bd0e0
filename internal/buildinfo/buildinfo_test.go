package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(version string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: version}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "false"},
		}}
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
	}{
		{"the linker's values win over the toolchain's", "v1.2.3", "feedface", "2026-05-06T07:08:09Z", vcs("v0.0.0-20260102030405-0123456789ab"),
			Info{"v1.2.3", "feedface", "go1.99.1", "2026-05-06T07:08:09Z", platform}},
		{"go install @version reports the module version", "", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.3"}},
			Info{"v1.2.3", "", "go1.99.1", "", platform}},
		{"a build with VCS stamping reports its pseudo-version, revision and commit time", "", "", "", vcs("v0.0.0-20260102030405-0123456789ab+dirty"),
			Info{"v0.0.0-20260102030405-0123456789ab+dirty", rev, "go1.99.1", "2026-01-02T03:04:05Z", platform}},
		{"a build without VCS stamping is dev", "", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}},
			Info{"dev", "", "go1.99.1", "", platform}},
		{"a binary without build info is dev", "", "", "", nil,
			Info{"dev", "", runtime.Version(), "", platform}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(tt.version, tt.commit, tt.date, tt.bi); got != tt.want {
				t.Errorf("get = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInfoString(t *testing.T) {
	tests := []struct {
		name string
		info Info
		want string
	}{
		{"a stamped build names the short commit and the date", Info{"v1.2.3", "0123456789abcdef0123", "go1.26.8", "2026-01-02T03:04:05Z", "linux/arm64"},
			"tailbox v1.2.3 (commit 0123456789ab, built 2026-01-02T03:04:05Z, go1.26.8 linux/arm64)"},
		{"a dev build leaves out what it does not know", Info{"dev", "", "go1.26.8", "", "darwin/amd64"},
			"tailbox dev (go1.26.8 darwin/amd64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.info.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
