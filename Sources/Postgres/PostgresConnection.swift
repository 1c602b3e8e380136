import CLibPQ
import Foundation
import Logging

/// One libpq connection, confined to its own thread.
///
/// The actor runs on a dedicated ``ConnectionExecutor``: every blocking libpq call happens on that
/// thread and never on Swift's cooperative pool. All methods are isolated, so callers `await` them
/// and calls on one connection never overlap.
///
/// A connection is either an ordinary one (queries with bound parameters, `COPY … TO STDOUT`) or a
/// replication connection (`replication=database`), which accepts only the simple query protocol
/// (``simpleQuery(_:)``) and the CopyBoth stream (``startCopyBoth(_:)``).
public actor PostgresConnection {
    /// What kind of session to open.
    public enum Kind: Sendable {
        case regular
        /// `replication=database`: logical replication commands and the simple query protocol only.
        case logicalReplication
    }

    private let executor: ConnectionExecutor
    private var connection: OpaquePointer?
    private let logger: Logger
    /// A `COPY … TO STDOUT` is active (`true`) or has ended but its last piece was still returned.
    private var copyOutActive = false
    private var copyOutEnded = false
    /// The kind this connection was opened as.
    public nonisolated let kind: Kind
    private nonisolated let canceller = QueryCanceller()

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    private init(kind: Kind, logger: Logger) {
        self.kind = kind
        self.logger = logger
        self.executor = ConnectionExecutor(name: "tidemark-pg")
    }

    isolated deinit {
        if let connection { PQfinish(connection) }
        executor.shutdown()
    }

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - connectionString: a URL (`postgres://user@host:5432/db?sslmode=require`) or a conninfo
    ///     string (`host=… dbname=…`). Every libpq setting, TLS included, passes through unchanged.
    ///   - kind: ``Kind/regular`` or ``Kind/logicalReplication``.
    ///   - applicationName: shown in `pg_stat_activity` unless the string sets its own.
    ///   - connectTimeout: seconds libpq waits for the server unless the string sets `connect_timeout`.
    /// - Throws: ``PostgresError`` with code `connectionFailed`; its message is the server's, with
    ///   any password redacted.
    public static func connect(
        _ connectionString: String, kind: Kind = .regular, applicationName: String = "tidemark",
        connectTimeout: Int = 10, logger: Logger
    ) async throws -> PostgresConnection {
        let connection = PostgresConnection(kind: kind, logger: logger)
        try await connection.open(
            connectionString, applicationName: applicationName, connectTimeout: connectTimeout)
        return connection
    }

    private func open(_ connectionString: String, applicationName: String, connectTimeout: Int) throws {
        // Keywords before `dbname` are defaults the string may override; keywords after it win.
        var keywords = ["connect_timeout", "application_name", "dbname"]
        var values = [String(connectTimeout), applicationName, connectionString]
        if kind == .logicalReplication {
            keywords.append("replication")
            values.append("database")
        }
        let conn = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let conn else {
            throw PostgresError(.connectionFailed, "libpq could not allocate a connection")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = Self.errorText(conn)
            PQfinish(conn)
            // libpq's message may quote part of a password it misread as a host or port.
            throw PostgresError(
                .connectionFailed,
                "cannot connect to \(ConnectionString.redacted(connectionString)): \(ConnectionString.scrub(message, secretsOf: connectionString))")
        }
        // libpq writes the server's notices (NOTICE, WARNING) to stderr by default; the caller's
        // log, not a raw stderr line, is where they belong. They carry nothing a statement's result
        // does not, so they are dropped.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        connection = conn
        canceller.attach(conn)
        logger.debug(
            "connected",
            metadata: [
                "pg.server_version": "\(PQserverVersion(conn))",
                "pg.replication": "\(kind == .logicalReplication)",
            ])
    }

    /// The server's version as an integer, e.g. `150004` or `180000`.
    public func serverVersion() throws -> Int {
        Int(PQserverVersion(try handle()))
    }

    /// Closes the connection. Further calls throw ``PostgresError/Code/closed``.
    public func close() {
        canceller.detach()
        if let connection {
            PQfinish(connection)
            self.connection = nil
        }
    }

    /// Whether the connection is open and libpq still believes it is healthy.
    public var isOpen: Bool {
        guard let connection else { return false }
        return PQstatus(connection) == CONNECTION_OK
    }

    /// The server process id of this session (as in `pg_stat_activity.pid`), 0 when closed.
    public nonisolated func backendPID() async -> Int32 {
        await pid()
    }

    private func pid() -> Int32 {
        guard let connection else { return 0 }
        return PQbackendPID(connection)
    }

    // MARK: - Queries

    /// Runs ``query(_:_:)`` so that cancelling the calling task cancels the statement on the server
    /// (a long `CREATE INDEX`, for one): the call then throws `CancellationError`.
    @discardableResult
    public nonisolated func cancellableQuery(_ sql: String, _ parameters: [String?] = []) async throws -> QueryResult {
        try Task.checkCancellation()
        do {
            return try await withTaskCancellationHandler {
                try await self.queryUnlessCancelled(sql, parameters)
            } onCancel: {
                self.canceller.cancel()
            }
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }

    /// A cancellation that came before the statement reached the connection's thread finds nothing
    /// to cancel on the server: such a statement is not sent.
    private func queryUnlessCancelled(_ sql: String, _ parameters: [String?]) throws -> QueryResult {
        try Task.checkCancellation()
        return try query(sql, parameters)
    }

    /// Runs one statement with bound parameters (extended protocol) and returns its text results.
    ///
    /// Values are always bound, never spliced into the SQL. `nil` binds SQL `NULL`.
    /// Not available on replication connections (use ``simpleQuery(_:)``).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> QueryResult {
        let conn = try handle()
        let result = withOptionalCStringArray(parameters) { params in
            PQexecParams(conn, sql, Int32(parameters.count), nil, params, nil, nil, 0)
        }
        return try consume(result, sql: sql)
    }

    /// Runs one or more statements with the simple query protocol and returns the last result.
    ///
    /// The only query form a replication connection accepts. Never pass untrusted values here:
    /// quote identifiers with ``quoteIdentifier(_:)`` and literals with ``quoteLiteral(_:)``.
    @discardableResult
    public func simpleQuery(_ sql: String) throws -> QueryResult {
        let conn = try handle()
        return try consume(PQexec(conn, sql), sql: sql)
    }

    private func consume(_ result: OpaquePointer?, sql: String) throws -> QueryResult {
        guard let result else {
            throw connectionError(.queryFailed, "no result for statement")
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return Self.read(result)
        default:
            throw resultError(result, .queryFailed, statement: sql)
        }
    }

    private static func read(_ result: OpaquePointer) -> QueryResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [QueryResult.Column] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            columns.append(
                .init(
                    name: String(cString: PQfname(result, Int32(column))),
                    typeOID: UInt32(PQftype(result, Int32(column)))))
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) != 0 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
            rows.append(values)
        }
        let tag = String(cString: PQcmdStatus(result))
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return QueryResult(columns: columns, rows: rows, affectedRows: affected, commandTag: tag)
    }

    // MARK: - COPY TO STDOUT

    /// Starts `COPY … TO STDOUT`; read the data with ``readCopyOut(maxBytes:)`` until it returns `nil`.
    ///
    /// Streaming keeps memory bounded whatever the size of the table: only one chunk is held.
    public func startCopyOut(_ sql: String) throws {
        let conn = try handle()
        guard let result = PQexec(conn, sql) else {
            throw connectionError(.copyFailed, "no result for COPY")
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_OUT else {
            throw resultError(result, .copyFailed, statement: sql)
        }
        copyOutActive = true
        copyOutEnded = false
    }

    /// The next piece of a `COPY … TO STDOUT`: whole rows, about `maxBytes` long (at least one row).
    /// Returns `nil` once the COPY finished successfully; throws if it ended with an error.
    public func readCopyOut(maxBytes: Int = 1 << 20) throws -> [UInt8]? {
        let conn = try handle()
        guard copyOutActive else {
            throw PostgresError(.copyFailed, "no COPY in progress: call startCopyOut first")
        }
        if copyOutEnded {
            copyOutActive = false
            return nil
        }
        var chunk: [UInt8] = []
        while chunk.count < maxBytes {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(conn, &buffer, 0)
            if length > 0, let buffer {
                buffer.withMemoryRebound(to: UInt8.self, capacity: Int(length)) {
                    chunk.append(contentsOf: UnsafeBufferPointer(start: $0, count: Int(length)))
                }
                PQfreemem(buffer)
            } else if length == -1 {
                copyOutEnded = true
                do {
                    try finishCopy(conn)
                } catch {
                    copyOutActive = false
                    throw error
                }
                if chunk.isEmpty {
                    copyOutActive = false
                    return nil
                }
                return chunk
            } else {
                copyOutActive = false
                throw connectionError(.copyFailed, "COPY failed while reading")
            }
        }
        return chunk
    }

    private func finishCopy(_ conn: OpaquePointer) throws {
        var failure: PostgresError?
        while let result = PQgetResult(conn) {
            let status = PQresultStatus(result)
            if status != PGRES_COMMAND_OK && failure == nil {
                failure = resultError(result, .copyFailed, statement: nil)
            }
            PQclear(result)
        }
        if let failure { throw failure }
    }

    // MARK: - Replication (CopyBoth)

    /// Sends a replication command such as `START_REPLICATION SLOT … LOGICAL …` and expects the
    /// server to switch to the CopyBoth stream.
    public func startCopyBoth(_ command: String) throws {
        let conn = try handle()
        guard let result = PQexec(conn, command) else {
            throw connectionError(.replicationFailed, "no result for replication command")
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else {
            throw resultError(result, .replicationFailed, statement: command)
        }
        // Non-blocking mode lets status updates go out without waiting on a full socket buffer.
        PQsetnonblocking(conn, 1)
    }

    /// Reads the CopyData messages that arrive within `timeout`.
    ///
    /// Returns as soon as at least one message is in hand and nothing more is buffered, or after
    /// `maxMessages`, or when `timeout` passes with no data (an empty batch), so the caller regains
    /// control regularly to send status updates.
    public func readCopyBoth(timeout: Duration, maxMessages: Int = 4096) throws -> CopyBatch {
        let conn = try handle()
        var batch = CopyBatch()
        let deadline = ContinuousClock.now + timeout
        while batch.count < maxMessages {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(conn, &buffer, 1)
            if length > 0, let buffer {
                batch.append(buffer, count: Int(length))
                PQfreemem(buffer)
                continue
            }
            if length == -1 {
                // End of the COPY stream: collect the final result (an error if the server failed).
                var failure: PostgresError?
                while let result = PQgetResult(conn) {
                    let status = PQresultStatus(result)
                    if status != PGRES_COMMAND_OK && status != PGRES_COPY_OUT && failure == nil {
                        failure = resultError(result, .connectionLost, statement: nil)
                    }
                    PQclear(result)
                }
                if let failure { throw failure }
                batch.ended = true
                return batch
            }
            if length == -2 {
                throw connectionError(.connectionLost, "replication stream broke")
            }
            // Nothing buffered: return what we have, or wait for the socket.
            if !batch.isEmpty { return batch }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return batch }
            try waitReadable(conn, timeout: remaining)
            guard PQconsumeInput(conn) == 1 else {
                throw connectionError(.connectionLost, "replication connection lost")
            }
        }
        return batch
    }

    /// Sends one CopyData message (e.g. a standby status update) and flushes it.
    public func sendCopyData(_ bytes: [UInt8]) throws {
        let conn = try handle()
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                PQputCopyData(conn, $0.baseAddress, Int32($0.count))
            }
        }
        guard status == 1 else {
            throw connectionError(.connectionLost, "cannot send to the replication stream")
        }
        try flush(conn)
    }

    private func flush(_ conn: OpaquePointer) throws {
        // In non-blocking mode PQflush returns 1 while data remains queued; wait for writability.
        while true {
            let status = PQflush(conn)
            if status == 0 { return }
            if status < 0 { throw connectionError(.connectionLost, "cannot flush to server") }
            var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLOUT), revents: 0)
            _ = poll(&descriptor, 1, 1000)
        }
    }

    /// Ends the CopyBoth stream from the client side and reads the server's closing results.
    public func endCopyBoth() {
        guard let connection else { return }
        _ = PQputCopyEnd(connection, nil)
        _ = try? flush(connection)
        PQsetnonblocking(connection, 0)
        while let result = PQgetResult(connection) {
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH {
                // The server may still be sending; drain it.
                var buffer: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(connection, &buffer, 0) > 0 {
                    PQfreemem(buffer)
                }
            }
        }
    }

    private func waitReadable(_ conn: OpaquePointer, timeout: Duration) throws {
        let socket = PQsocket(conn)
        guard socket >= 0 else { throw connectionError(.connectionLost, "replication socket closed") }
        let milliseconds = max(1, Int32(clamping: timeout.components.seconds * 1000
            + timeout.components.attoseconds / 1_000_000_000_000_000))
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, milliseconds)
        if ready < 0 && errno != EINTR {
            throw PostgresError(.connectionLost, "poll failed: errno \(errno)")
        }
    }

    // MARK: - Quoting

    /// `"identifier"` with embedded quotes doubled: safe for any schema, table, slot or column name.
    public nonisolated static func quoteIdentifier(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `'literal'` with embedded quotes doubled, for the simple protocol of replication connections.
    /// Uses the `E''` form when backslashes are present.
    public nonisolated static func quoteLiteral(_ literal: String) -> String {
        let doubled = literal.replacingOccurrences(of: "'", with: "''")
        if doubled.contains("\\") {
            return "E'" + doubled.replacingOccurrences(of: "\\", with: "\\\\") + "'"
        }
        return "'" + doubled + "'"
    }

    // MARK: - Errors

    func handle() throws -> OpaquePointer {
        guard let connection else {
            throw PostgresError(.closed, "the connection is closed")
        }
        return connection
    }

    private static func errorText(_ conn: OpaquePointer) -> String {
        String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func connectionError(_ code: PostgresError.Code, _ context: String) -> PostgresError {
        let text = connection.map(Self.errorText) ?? ""
        let lost = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        return PostgresError(lost ? .connectionLost : code, text.isEmpty ? context : "\(context): \(text)")
    }

    func resultError(_ result: OpaquePointer, _ code: PostgresError.Code, statement: String?)
        -> PostgresError
    {
        func field(_ name: Int32) -> String? {
            guard let value = PQresultErrorField(result, name) else { return nil }
            return String(cString: value)
        }
        let message = field(tidemark_diag_message_primary)
            ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        let lost = connection.map { PQstatus($0) != CONNECTION_OK } ?? false
        let sqlState = field(tidemark_diag_sqlstate)
        // Class 57 (operator intervention: admin shutdown, terminated backend) and 08 (connection
        // exception) mean the session is gone, whatever the statement was.
        let gone = lost || (sqlState.map { $0.hasPrefix("57P") || $0.hasPrefix("08") } ?? false)
        var text = message.isEmpty ? "statement failed" : message
        if let statement, !gone {
            text += " — in: \(statement.prefix(200))"
        }
        return PostgresError(
            gone ? .connectionLost : code, text, sqlState: sqlState,
            detail: field(tidemark_diag_message_detail), hint: field(tidemark_diag_message_hint))
    }
}

// MARK: - C string arrays

private func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers.map { UnsafePointer($0) })
}

private func withOptionalCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers.map { UnsafePointer($0) })
}
