/// The one error type of the `Postgres` module.
///
/// Carries a stable ``Code`` to branch on, a message a person can act on, PostgreSQL's SQLSTATE when
/// the server sent one, and the underlying error when another layer failed first.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is. Stable across releases: scripts and callers may match on it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The server could not be reached or refused the connection (bad URL, credentials, TLS).
        public static let connectionFailed = Code("connection_failed")
        /// An established connection broke (server restart, `pg_terminate_backend`, network loss).
        public static let connectionLost = Code("connection_lost")
        /// The server rejected a statement; ``PostgresError/sqlState`` says why.
        public static let queryFailed = Code("query_failed")
        /// A `COPY` did not start or ended with an error.
        public static let copyFailed = Code("copy_failed")
        /// The replication stream could not be started, read or written.
        public static let replicationFailed = Code("replication_failed")
        /// Text that should be an LSN (`16/B374D848`) is not one.
        public static let invalidLSN = Code("invalid_lsn")
        /// The connection was used after ``PostgresConnection/close()``.
        public static let closed = Code("closed")
    }

    public var code: Code
    public var message: String
    /// The five-character SQLSTATE sent by the server, e.g. `42P01` for an undefined table.
    public var sqlState: String?
    /// The server's DETAIL and HINT lines, when it sent them.
    public var detail: String?
    public var hint: String?
    public var underlying: (any Error)?

    public init(
        _ code: Code, _ message: String, sqlState: String? = nil, detail: String? = nil,
        hint: String? = nil, underlying: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.underlying = underlying
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += " DETAIL: \(detail)" }
        if let hint { text += " HINT: \(hint)" }
        if let underlying { text += " [caused by: \(underlying)]" }
        return text
    }
}
