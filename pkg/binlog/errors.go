package binlog

import "errors"

// Sentinel errors of the binlog package. Errors returned by this package wrap
// one of them where the caller has a decision to make; test with errors.Is.
var (
	// ErrClosed is returned by Next and Start after Close, and by the
	// Inspector's CheckGTID, CheckFile and AtTime after its Close.
	ErrClosed = errors.New("binlog reader closed")

	// ErrNotStarted is returned by Next before Start.
	ErrNotStarted = errors.New("binlog reader not started")

	// ErrPositionUnavailable is returned when the server cannot stream from
	// the requested position: purged, beyond the end, or not a valid
	// position in that file (server error 1236). Fatal: a retry cannot fix it.
	ErrPositionUnavailable = errors.New("binlog position not available on the server")

	// ErrUnsupported is returned when the binlog holds something tailbox
	// must not skip and cannot process: an XA transaction, a DML statement
	// in STATEMENT format, a MINIMAL row image, or a schema change without
	// FULL row metadata on a captured table; or a captured table with a
	// column in a character set tailbox cannot convert to UTF-8 (armscii8,
	// dec8, geostd8, hp8, keybcs2, macce, swe7) or with an unknown collation
	// id. Fatal.
	ErrUnsupported = errors.New("unsupported binlog content for a captured table")

	// ErrMetadata is returned when column names are not in the binlog
	// (binlog_row_metadata is not FULL) and Config.AllowMinimalMetadata is
	// false, or when information_schema does not match the TABLE_MAP. Fatal.
	ErrMetadata = errors.New("binlog row metadata missing or inconsistent")

	// ErrServerChanged is returned by Start and Next when another server
	// now answers at the source address (a failover address moved) than
	// the one the position to stream from was read on, and the position
	// is a file position without GTIDs, which means nothing on another
	// server. Fatal: a position on the new server must be chosen.
	ErrServerChanged = errors.New("another server answers at the source address")

	// ErrConnection wraps failures to reach or talk to the server. The
	// Reader retries these itself while streaming; Open, Inspect and the
	// Inspector's methods return them.
	// Retriable.
	ErrConnection = errors.New("mysql connection failed")

	// ErrServerIDInUse is what the Reader logs, and Next returns after
	// Config.MaxReconnects attempts, when the server dropped the stream
	// because another replica registered with the same Config.ServerID
	// (MariaDB error 4052, MySQL error 1236 "A replica with the same
	// server_uuid/server_id"). The message names the id, the replica that
	// holds it when the server lists it, and the fix. The Reader retries
	// it with a back-off that successful reconnects do not reset: the
	// other replica may be leaving (an HA replica handing over, a process
	// being replaced), and two connectors that share an id each stream
	// part of the time rather than taking turns every second.
	ErrServerIDInUse = errors.New("replica server_id in use by another replica")

	// ErrAuthentication is returned, wrapping ErrConnection as well, by
	// Open, Inspect, Start and the Inspector's methods, and by Next after
	// Config.MaxReconnects attempts, when the server refuses the login: a
	// wrong user or password, no account for the user from this host, a
	// locked account or an expired password. The message names the account
	// as the server saw it ('user'@'host') and the settings to fix, without
	// the client library's call chain. Retriable like ErrConnection (an
	// operator may fix the account meanwhile), but worth an error log.
	ErrAuthentication = errors.New("mysql login refused")

	// ErrTLS is returned by Open, Inspect and FileStartTime when
	// Config.TLS cannot work as configured: an unreadable CA or client
	// certificate file; a server that offers no TLS, or whose certificate
	// is refused, under TLSRequired, TLSVerifyCA or TLSVerifyIdentity; or,
	// under TLSDisabled, a server that refuses the plaintext login but
	// accepts it over TLS.
	// The message names the source.tls setting to change. Fatal: a retry
	// cannot fix it.
	ErrTLS = errors.New("source tls not usable as configured")
)
