import Capture
import Foundation
import Indexing
import Logging
import Postgres

/// The source side of a validation, on a connection of its own (`application_name`
/// `tidemark-validation`): key range boundaries, digests of key ranges, listings of small ranges and
/// re-reads by key.
///
/// Row hashes (``RowHash``) are computed inside PostgreSQL, so a range of any size crosses the wire
/// as one digest row; only boundaries, listings of small differing ranges and re-reads carry keys or
/// values. Every statement runs in its own autocommit transaction and is bounded
/// (``Configuration``), except a re-read, which is one short REPEATABLE READ transaction (its
/// snapshot is needed). Ranges are compared by the key columns' own types, so the key's index
/// serves every statement.
struct SourceDigest: Sendable {
    struct Configuration: Sendable {
        /// Most ranges one digest statement covers (a `UNION ALL` of one aggregate per range). Default 64.
        var rangesPerStatement = 64
        /// Most key index entries one boundary walk statement passes. Default 262 144.
        var walkEntriesPerStatement = 262_144
        /// Most rows one listing statement should return (ranges are grouped by their digest
        /// counts). Default 16 384.
        var listedRowsPerStatement = 16_384
    }

    /// A row as a listing returns it: its key texts and row hash.
    struct ListedRow: Sendable, Equatable {
        var key: [String]
        var hash: UInt64
    }

    /// Rows read by key in one transaction, with its snapshot.
    struct Read: Sendable {
        var snapshot: BackfillCoordinator.Snapshot
        /// By document id: the entity's select columns as text.
        var rows: [String: [String: String?]]
    }

    let configuration: Configuration
    let entity: EntityMapping
    let connection: PostgresConnection
    /// The table is partitioned: read through its root (every partition); otherwise `FROM ONLY` it.
    let partitioned: Bool
    /// SQL for the row hash of the current row.
    let hashExpression: String
    /// What this side read so far.
    var reads = ValidationResult.Reads()

    private var source: String { partitioned ? entity.table.quoted : "ONLY \(entity.table.quoted)" }
    private var keys: [String] { entity.keyColumns.map(PostgresConnection.quoteIdentifier) }
    private var keyList: String { keys.joined(separator: ", ") }
    private var keyTuple: String { "(" + keyList + ")" }

    /// Connects and prepares: reads the table's kind and column types, and checks that the server
    /// hashes text like ``RowHash`` (a UTF8 database on a little-endian server).
    ///
    /// - Throws: ``SyncError`` `validation` when the server cannot (another encoding, another hash).
    static func open(url: String, entity: EntityMapping, configuration: Configuration = Configuration(), logger: Logger) async throws -> SourceDigest {
        let connection = try await PostgresConnection.connect(url, applicationName: "tidemark-validation", logger: logger)
        do {
            try await checkHashing(connection)
            let kind = try await connection.query("SELECT relkind::text FROM pg_class WHERE oid = $1::regclass", [entity.table.quoted])
            let types = try await connection.query(
                """
                SELECT a.attname::text, t.typname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
                """, [entity.table.quoted])
            var typeNames: [String: String] = [:]
            for row in types.rows { if let name = row[0], let type = row[1] { typeNames[name] = type } }
            return SourceDigest(
                configuration: configuration, entity: entity, connection: connection,
                partitioned: kind.rows.first?.first == "p", hashExpression: hashSQL(entity, typeNames: typeNames))
        } catch {
            await connection.close()
            throw error
        }
    }

    func close() async { await connection.close() }

    /// Another side on a connection of its own, for the same entity (to digest ranges in parallel;
    /// the server was checked already), starting from this side's ``reads``.
    func sibling(url: String, logger: Logger) async throws -> SourceDigest {
        let connection = try await PostgresConnection.connect(url, applicationName: "tidemark-validation", logger: logger)
        var side = SourceDigest(
            configuration: configuration, entity: entity, connection: connection, partitioned: partitioned, hashExpression: hashExpression)
        side.reads = reads
        return side
    }

    /// The SQL row hash (``RowHash``): `hashtextextended` chained over the key columns, then the
    /// source columns, each as its output text (`concat`; text columns as they are), NULL marked in
    /// the seed's lowest bit.
    static func hashSQL(_ entity: EntityMapping, typeNames: [String: String]) -> String {
        var expression = "0::bigint"
        for column in entity.keyColumns + entity.sourceColumns {
            let quoted = PostgresConnection.quoteIdentifier(column)
            // `text`/`varchar` are their own output text; every other type goes through its output
            // function (`concat` calls it; a cast to text would not for bool, char(n) or inet).
            let text = ["text", "varchar"].contains(typeNames[column] ?? "") ? "coalesce(\(quoted), '')" : "concat(\(quoted))"
            expression = "hashtextextended(\(text) COLLATE \"C\", (\(expression)) # (\(quoted) IS NULL)::int::bigint)"
        }
        return expression
    }

    /// Probe strings whose hashes the server and ``RowHash`` must agree on.
    static let probes: [(text: String, seed: Int64)] = [
        ("", 0), ("a", 1), ("tidemark", -1), ("naïve café 🌊 \\ \"q\"", 42), (String(repeating: "0123456789", count: 7), 1 << 40),
    ]

    private static func checkHashing(_ connection: PostgresConnection) async throws {
        let encoding = try await connection.query("SELECT current_setting('server_encoding')").rows.first?.first ?? nil
        guard encoding == "UTF8" else {
            throw SyncError(
                .validation,
                "the source database's encoding is \(encoding ?? "unknown"), not UTF8: validation hashes the UTF-8 text the index keeps and needs a UTF8 database")
        }
        for probe in probes {
            let text = try await connection.query("SELECT hashtextextended($1 COLLATE \"C\", $2::bigint)::text", [probe.text, String(probe.seed)])
            var copy = probe.text
            let expected = copy.withUTF8 { RowHash.hash(UnsafeRawBufferPointer($0), seed: UInt64(bitPattern: probe.seed)) }
            guard let value = text.rows.first?.first ?? nil, Int64(value) == RowHash.signed(expected) else {
                throw SyncError(
                    .validation,
                    "the source server's hashtextextended differs from the agent's (a big-endian server, or a PostgreSQL that changed it): validation needs them equal")
            }
        }
    }

    // MARK: - Boundaries

    /// Keys that split `range` into consecutive ranges of `every` rows (the last one up to `every`
    /// more), ascending: the key of every `every`-th row after `range.lower`, strictly below
    /// `range.upper`. Walks the key's index a bounded stretch per statement.
    mutating func boundaries(every: Int, within range: KeyRange = .all) async throws -> [[String]] {
        let step = max(1, every)
        let perStatement = max(1, configuration.walkEntriesPerStatement / step)
        var found: [[String]] = []
        var cursor = range.lower
        while true {
            var parameters: [String?] = []
            var first: [String] = []
            if let cursor { first.append("\(keyTuple) > (\(bind(cursor, &parameters)))") }
            var upperCondition = ""
            if let upper = range.upper {
                let bound = "\(keyTuple) < (\(bind(upper, &parameters)))"
                first.append(bound)
                upperCondition = " AND " + bound
            }
            let aliases = keys.indices.map { "c\($0 + 1)" }
            let next = zip(keys, aliases).map { "n.\($0.0)" }.joined(separator: ", ")
            let previous = "(" + aliases.map { "walk.\($0)" }.joined(separator: ", ") + ")"
            let sql = """
                WITH RECURSIVE walk(\(aliases.joined(separator: ", ")), i) AS (
                    (SELECT \(keyList), 1 FROM \(source) WHERE \(first.isEmpty ? "true" : first.joined(separator: " AND "))
                      ORDER BY \(keyList) OFFSET \(step - 1) LIMIT 1)
                  UNION ALL
                    SELECT \(next), walk.i + 1 FROM walk CROSS JOIN LATERAL (
                        SELECT \(keyList) FROM \(source) WHERE \(keyTuple) > \(previous)\(upperCondition)
                         ORDER BY \(keyList) OFFSET \(step - 1) LIMIT 1) AS n
                     WHERE walk.i < \(perStatement))
                SELECT \(aliases.map { "concat(\($0))" }.joined(separator: ", ")) FROM walk ORDER BY i
                """
            let result = try await query(sql, parameters)
            let keys = result.rows.map { row in row.map { $0 ?? "" } }
            found += keys
            guard keys.count == perStatement, let last = keys.last else { return found }
            cursor = last
        }
    }

    // MARK: - Digests and listings

    /// The digest of each range, in order, computed inside PostgreSQL. (`OFFSET 0` keeps the
    /// planner from pulling the subquery up, which would compute each row's hash once per sum.)
    mutating func digests(_ ranges: [KeyRange]) async throws -> [RangeDigest] {
        var digests: [RangeDigest] = []
        digests.reserveCapacity(ranges.count)
        var start = 0
        while start < ranges.count {
            let stripe = ranges[start..<min(start + configuration.rangesPerStatement, ranges.count)]
            var parameters: [String?] = []
            let sql = stripe.enumerated().map { offset, range in
                """
                SELECT \(offset), count(*)::text, coalesce(sum(h >> 32), 0)::text, coalesce(sum(h & 4294967295), 0)::text
                  FROM (SELECT \(hashExpression) AS h FROM \(source) WHERE \(predicate(range, &parameters)) OFFSET 0) AS r
                """
            }.joined(separator: "\nUNION ALL ")
            let result = try await query(sql, parameters)
            var stripeDigests = Array(repeating: RangeDigest(), count: stripe.count)
            for row in result.rows {
                guard let offset = row[0].flatMap({ Int($0) }), offset < stripe.count, let count = row[1].flatMap({ Int($0) }),
                    let high = row[2].flatMap({ Int64($0) }), let low = row[3].flatMap({ Int64($0) })
                else { throw SyncError(.validation, "the source returned a malformed digest row for \(entity.table)") }
                stripeDigests[offset] = RangeDigest(count: count, high: high, low: low)
                reads.rows += count
            }
            digests += stripeDigests
            start += stripe.count
        }
        return digests
    }

    /// The digest of each range, in order, spread over `connections` connections: consecutive
    /// shares of the ranges, the first on this side's connection, the others on siblings opened for
    /// the call. Returns the digests and what all of them read (this side's ``reads`` included).
    func digests(_ ranges: [KeyRange], connections: Int, url: String, logger: Logger) async throws -> (digests: [RangeDigest], reads: ValidationResult.Reads) {
        let connections = max(1, connections)
        let share = (ranges.count + connections - 1) / connections
        let start = self
        return try await withThrowingTaskGroup(of: (Int, [RangeDigest], ValidationResult.Reads).self) { group in
            for part in 0..<connections {
                let slice = Array(ranges[min(ranges.count, part * share)..<min(ranges.count, (part + 1) * share)])
                group.addTask {
                    var side = part == 0 ? start : try await start.sibling(url: url, logger: logger)
                    let digests: [RangeDigest]
                    do {
                        digests = try await side.digests(slice)
                    } catch {
                        if part > 0 { await side.close() }
                        throw error
                    }
                    if part > 0 { await side.close() }
                    return (part, digests, side.reads)
                }
            }
            var parts: [(Int, [RangeDigest], ValidationResult.Reads)] = []
            for try await part in group { parts.append(part) }
            parts.sort { $0.0 < $1.0 }
            var reads = start.reads
            for part in parts { reads.add(part.2, since: start.reads) }
            return (parts.flatMap(\.1), reads)
        }
    }

    /// Every row of each range (key texts and row hash), by range; `expected` (the ranges' digest
    /// counts) groups ranges into statements of about ``Configuration/listedRowsPerStatement`` rows.
    mutating func rows(in ranges: [KeyRange], expected: [Int]) async throws -> [[ListedRow]] {
        var listed = Array(repeating: [ListedRow](), count: ranges.count)
        var start = 0
        while start < ranges.count {
            var end = start
            var total = 0
            while end < ranges.count && (end == start || total + (end < expected.count ? expected[end] : 0) <= configuration.listedRowsPerStatement) {
                total += end < expected.count ? expected[end] : 0
                end += 1
            }
            var parameters: [String?] = []
            let texts = keys.map { "concat(\($0))" }.joined(separator: ", ")
            let sql = (start..<end).map { index in
                "SELECT \(index - start), \(texts), (\(hashExpression))::text FROM \(source) WHERE \(predicate(ranges[index], &parameters))"
            }.joined(separator: "\nUNION ALL ")
            let result = try await query(sql, parameters)
            let keyCount = keys.count
            for row in result.rows {
                guard let offset = row[0].flatMap({ Int($0) }), start + offset < end, row.count == keyCount + 2,
                    let hash = row[keyCount + 1].flatMap({ Int64($0) })
                else { throw SyncError(.validation, "the source returned a malformed row listing for \(entity.table)") }
                listed[start + offset].append(ListedRow(key: row[1...keyCount].map { $0 ?? "" }, hash: UInt64(bitPattern: hash)))
            }
            reads.rows += result.rows.count
            start = end
        }
        return listed
    }

    // MARK: - Re-reads

    /// The rows with these document ids (missing ones absent), and the snapshot they were read under,
    /// in one REPEATABLE READ transaction. Ids that are no valid key of their column type match no
    /// row (they are compared as text instead).
    mutating func read(ids: [String]) async throws -> Read {
        let keyCount = keys.count
        var keyTexts: [[String?]] = []
        for id in ids {
            guard let key = SourceValueScanner.keyTexts(id, keyCount: keyCount) else { continue }
            keyTexts.append(key)
        }
        do {
            return try await read(keyTexts, typed: true)
        } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
            return try await read(keyTexts, typed: false)
        }
    }

    private mutating func read(_ keyTexts: [[String?]], typed: Bool) async throws -> Read {
        try await connection.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let snapshotText = try await connection.query("SELECT pg_current_snapshot()::text").rows.first?.first ?? nil
            reads.queries += 1
            guard let snapshotText, let snapshot = BackfillCoordinator.Snapshot(snapshotText) else {
                throw SyncError(.validation, "the source returned no transaction snapshot")
            }
            var rows: [String: [String: String?]] = [:]
            let columns = entity.selectColumns
            let keyPositions = entity.keyColumns.compactMap { columns.firstIndex(of: $0) }
            var start = 0
            while start < keyTexts.count {
                let slice = keyTexts[start..<min(start + RowSource.sliceSize, keyTexts.count)]
                start += RowSource.sliceSize
                let result = try await query(
                    RowSource.sql(entity, typed: typed, partitioned: partitioned), RowSource.arrays(slice, keys.count))
                for row in result.rows {
                    var values: [String: String?] = [:]
                    for (index, column) in columns.enumerated() where index < row.count { values[column] = row[index] }
                    rows[DocumentID.make(keyPositions.map { row[$0] })] = values
                }
                reads.rows += result.rows.count
            }
            try await connection.simpleQuery("COMMIT")
            return Read(snapshot: snapshot, rows: rows)
        } catch {
            _ = try? await connection.simpleQuery("ROLLBACK")
            throw error
        }
    }

    // MARK: - Positions

    /// Writes a logical message (transactional, so it is flushed and streamed at once) and returns its
    /// position: every transaction visible to a snapshot taken before this call committed before it,
    /// and the index's checkpoint passes it once the pipeline has applied them all.
    mutating func mark() async throws -> LSN {
        let text = try await query("SELECT pg_logical_emit_message(true, 'tidemark.validation', 'compare')::text", []).rows.first?.first ?? nil
        guard let text, let lsn = LSN(text) else { throw SyncError(.validation, "the source returned no WAL position") }
        return lsn
    }

    /// The current snapshot (its in-progress transactions are the ones a re-check waits for).
    mutating func snapshot() async throws -> BackfillCoordinator.Snapshot {
        let text = try await query("SELECT pg_current_snapshot()::text", []).rows.first?.first ?? nil
        guard let text, let snapshot = BackfillCoordinator.Snapshot(text) else {
            throw SyncError(.validation, "the source returned no transaction snapshot")
        }
        return snapshot
    }

    /// Waits until every transaction that `snapshot` could not see although it may have
    /// *committed* — its commit record written, its snapshot entry not yet gone: for a moment after
    /// every commit, or for as long as a synchronous standby does not answer — is visible.
    ///
    /// PostgreSQL reports such a transaction as in progress, like one still running its statements,
    /// so every transaction invisible to the snapshot is waited for (its running `xip`, and the
    /// sessions' `pg_stat_activity.backend_xid`s at or past its `xmax`), except those that cannot
    /// be committing: sessions `idle in transaction`, prepared transactions, and sessions of other
    /// databases (they cannot change this table). The agent's role should see every session's
    /// `backend_xid` (superuser, the sessions' owner, or `pg_read_all_stats`); a running transaction
    /// it cannot see is waited for too. Returns `false` after `timeout` (a long statement, a stuck
    /// standby), and the candidates then stay unsettled.
    mutating func waitForEnd(of snapshot: BackfillCoordinator.Snapshot, timeout: Duration) async throws -> Bool {
        var pending = snapshot.inProgress
        var excluded = Set<UInt64>()
        let sessions = try await query(
            """
            SELECT backend_xid::text, (datname IS DISTINCT FROM current_database() OR state LIKE 'idle in transaction%')::text
              FROM pg_stat_activity WHERE backend_xid IS NOT NULL
            UNION ALL SELECT transaction::text, 'true' FROM pg_prepared_xacts
            """, [])
        for row in sessions.rows {
            guard let text = row[0], let xid = UInt32(text) else { continue }
            let full = Self.fullXid(xid, near: snapshot)
            if row[1] == "true" {
                excluded.insert(full)
            } else if full >= snapshot.xmax {
                pending.insert(full)
            }
        }
        pending.subtract(excluded)
        guard !pending.isEmpty else { return true }
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(1)
        while true {
            let now = try await self.snapshot()
            // Visible now: below the new snapshot's horizon and not running in it.
            pending = pending.filter { $0 >= now.xmax || now.inProgress.contains($0) }
            if pending.isEmpty { return true }
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    /// The 64-bit id of a recent 32-bit transaction id, from the epoch of a snapshot taken about then.
    static func fullXid(_ xid: UInt32, near snapshot: BackfillCoordinator.Snapshot) -> UInt64 {
        var full = (snapshot.xmax & ~0xFFFF_FFFF) | UInt64(xid)
        if full > snapshot.xmax &+ (1 << 31) && full >= (1 << 32) { full -= 1 << 32 }
        return full
    }

    // MARK: - SQL

    /// `(keys) > (lower) AND (keys) <= (upper)`, binding the bounds with the key columns' types.
    private func predicate(_ range: KeyRange, _ parameters: inout [String?]) -> String {
        var parts: [String] = []
        if let lower = range.lower { parts.append("\(keyTuple) > (\(bind(lower, &parameters)))") }
        if let upper = range.upper { parts.append("\(keyTuple) <= (\(bind(upper, &parameters)))") }
        return parts.isEmpty ? "true" : parts.joined(separator: " AND ")
    }

    private func bind(_ key: [String], _ parameters: inout [String?]) -> String {
        key.enumerated().map { index, value in
            parameters.append(value)
            return "$\(parameters.count)" + (index < entity.keyTypes.count ? "::\(entity.keyTypes[index])" : "")
        }.joined(separator: ", ")
    }

    private mutating func query(_ sql: String, _ parameters: [String?]) async throws -> QueryResult {
        let started = ContinuousClock.now
        let result = try await connection.query(sql, parameters)
        reads.seconds += (ContinuousClock.now - started).inSeconds
        reads.queries += 1
        for row in result.rows {
            for value in row { reads.bytes += value?.utf8.count ?? 0 }
        }
        return result
    }
}

extension ValidationResult.Reads {
    /// Adds what `other` read since `start` (`other` began as a copy of `start`).
    mutating func add(_ other: ValidationResult.Reads, since start: ValidationResult.Reads) {
        rows += other.rows - start.rows
        bytes += other.bytes - start.bytes
        queries += other.queries - start.queries
        seconds += other.seconds - start.seconds
    }
}
