// Package version says which build of hnsec is running: the module version, the VCS commit and the Go
// version, read from the binary's build information.
package version

import (
	"fmt"
	"runtime/debug"
)

// Info is a build's identity.
type Info struct {
	Version, Commit, GoVersion string
	// Modified is true when the commit's tree had uncommitted changes.
	Modified bool
}

// release and commit are set at link time by `make build` (-ldflags -X), for builds whose build
// information lacks them (a workspace build records no VCS information).
var release, commit string

// Get reads the running binary's build information; parts it lacks are "unknown".
func Get() Info {
	info := Info{Version: "unknown", Commit: "unknown", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		switch v := bi.Main.Version; v {
		case "":
		case "(devel)":
			info.Version = "devel"
		default:
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if release != "" {
		info.Version = release
	}
	if commit != "" && info.Commit == "unknown" {
		info.Commit = commit
	}
	return info
}

// String is the one-line form `hnsec version` prints.
func (i Info) String() string {
	c := i.Commit
	if i.Modified {
		c += " (modified)"
	}
	return fmt.Sprintf("hnsec %s, commit %s, %s", i.Version, c, i.GoVersion)
}
