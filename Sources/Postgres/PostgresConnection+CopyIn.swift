import CLibPQ

extension PostgresConnection {
    /// Runs `COPY … FROM STDIN` (text, CSV or binary, as `sql` says) with `data` as its whole input,
    /// and returns the number of rows copied.
    ///
    /// The data goes to the server in pieces of 1 MiB; a server error (a malformed row, a constraint)
    /// ends the COPY and is thrown with its SQLSTATE. Inside a transaction, a failure leaves the
    /// transaction aborted, as any failed statement does.
    @discardableResult
    public func copyIn(_ sql: String, data: [UInt8]) throws -> Int {
        let conn = try handle()
        guard let start = PQexec(conn, sql) else {
            throw connectionError(.copyFailed, "no result for COPY")
        }
        let status = PQresultStatus(start)
        guard status == PGRES_COPY_IN else {
            defer { PQclear(start) }
            throw resultError(start, .copyFailed, statement: sql)
        }
        PQclear(start)
        var offset = 0
        var sent = true
        while offset < data.count {
            let end = min(offset + (1 << 20), data.count)
            let result = data[offset..<end].withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(conn, $0.baseAddress, Int32($0.count)) }
            }
            if result != 1 {
                sent = false
                break
            }
            offset = end
        }
        let ended = PQputCopyEnd(conn, sent ? nil : "client failed to send COPY data")
        var failure: PostgresError?
        var rows = 0
        while let result = PQgetResult(conn) {
            let resultStatus = PQresultStatus(result)
            if resultStatus == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if failure == nil {
                failure = resultError(result, .copyFailed, statement: sql)
            }
            PQclear(result)
        }
        if let failure { throw failure }
        guard sent, ended == 1 else { throw connectionError(.copyFailed, "COPY data could not be sent") }
        return rows
    }

    /// Runs `body` inside `BEGIN … COMMIT` on this connection; any error rolls back and is rethrown.
    ///
    /// `body` runs isolated to the connection: no other call on it can come between its statements,
    /// so the transaction holds exactly what `body` did.
    public func withTransaction<T: Sendable>(_ body: @Sendable (isolated PostgresConnection) throws -> T) throws -> T {
        try simpleQuery("BEGIN")
        do {
            let result = try body(self)
            try simpleQuery("COMMIT")
            return result
        } catch {
            if isOpen { _ = try? simpleQuery("ROLLBACK") }
            throw error
        }
    }
}
