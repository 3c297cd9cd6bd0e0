package connector

import "github.com/tailbox-cdc/tailbox/pkg/binlog"

// trackerProgress shows a session's tracker to observe.Metrics as an
// observe.Progress. It goes once the tracker has exported methods (then the
// tracker itself is the Progress).
type trackerProgress struct{ t *tracker }

// ReadPoint returns the point after everything the tracker was handed.
func (p trackerProgress) ReadPoint() binlog.Point { return p.t.readPoint() }
