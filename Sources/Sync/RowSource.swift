import Capture
import Indexing
import Logging
import Postgres
import Synchronization

/// Reads current rows of an entity by key from the source database: to fill unchanged TOAST values
/// the index does not know, and to retry dead letters.
public final class RowSource: Sendable {
    private let url: String
    private let logger: Logger
    private let connection: LazyConnection
    private let partitionedTables = Mutex<Set<TableName>>([])

    public init(url: String, logger: Logger) {
        self.url = url
        self.logger = logger
        self.connection = LazyConnection(url: url, applicationName: "tidemark-rows", logger: logger)
    }

    /// Ids per query: large enough to make few round trips, small enough for a quick plan.
    static let sliceSize = 2_000

    /// The rows that still exist, by document id, with the entity's select columns as text.
    ///
    /// Binds the keys with their column types (``EntityMapping/keyTypes``), so the key's index
    /// serves the lookup, and reads up to ``sliceSize`` ids per query: `"id" = ANY($1::bigint[])`
    /// for one key column, `(a, b) IN (SELECT * FROM unnest($1::t1[], $2::t2[]))` for several.
    /// Ids that do not parse for the entity's key are skipped; rows that no longer exist are absent.
    public func fetch(_ entity: EntityMapping, ids: [String]) async throws -> [String: [String: String?]] {
        let keyCount = entity.keyColumns.count
        var keys: [[String?]] = []
        keys.reserveCapacity(ids.count)
        for id in ids {
            guard let key = DocumentID.parse(id, keyCount: keyCount), !key.contains(where: { $0 == nil }) else { continue }
            keys.append(key)
        }
        var rows: [String: [String: String?]] = [:]
        guard !keys.isEmpty else { return rows }
        let wanted = Set(ids)
        let columns = entity.selectColumns
        let keyPositions = entity.keyColumns.compactMap { columns.firstIndex(of: $0) }
        let conn = try await connection.get()
        let partitioned = partitionedTables.withLock { $0.contains(entity.table) }
        var start = 0
        while start < keys.count {
            let slice = keys[start..<min(start + Self.sliceSize, keys.count)]
            start += Self.sliceSize
            let result: QueryResult
            do {
                result = try await conn.query(Self.sql(entity, typed: true, partitioned: partitioned), Self.arrays(slice, keyCount))
            } catch let error as PostgresError where error.sqlState?.hasPrefix("22") == true {
                // A key that is not a valid value of its column type (e.g. an id stored before the
                // column's type changed) matches no row: compare as text for this slice instead.
                result = try await conn.query(Self.sql(entity, typed: false, partitioned: partitioned), Self.arrays(slice, keyCount))
            }
            for row in result.rows {
                let id = DocumentID.make(keyPositions.map { row[$0] })
                guard wanted.contains(id) else { continue }
                var values: [String: String?] = [:]
                for (index, column) in columns.enumerated() { values[column] = row[index] }
                rows[id] = values
            }
        }
        return rows
    }

    /// Waits until the transactions `xids` (32-bit, as the stream reports them) are visible to new
    /// snapshots. A commit is streamed as soon as its record is in the WAL, a moment — or, waiting
    /// for a synchronous standby, much longer — before other sessions can see it; a row read before
    /// that would look deleted. Throws when they are still invisible after `timeout`.
    public func waitUntilVisible(_ xids: Set<UInt32>, timeout: Duration = .seconds(10)) async throws {
        let pending = xids.subtracting([0])
        guard !pending.isEmpty else { return }
        let conn = try await connection.get()
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.milliseconds(1)
        while true {
            let text = try await conn.query("SELECT pg_current_snapshot()::text").rows.first?.first ?? nil
            guard let text, let snapshot = BackfillCoordinator.Snapshot(text) else { return }
            let invisible = pending.filter(snapshot.isInvisible)
            if invisible.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw SyncError(
                    .apply,
                    "transactions \(invisible.sorted()) committed in the stream but are still not visible after \(timeout) (a synchronous standby not answering?)")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    /// The partitioned table among `roots` that relation `oid` is a partition of, if any.
    public func partitionRoot(ofRelation oid: UInt32, among roots: Set<TableName>) async throws -> TableName? {
        try await PartitionMap.root(ofRelation: oid, among: roots, on: try await connection.get())
    }

    /// Declares which tables are partitioned: those are read through the root (any leaf), every
    /// other table `FROM ONLY` itself, so an inheritance child's row never stands in for the parent's.
    public func setPartitionedTables(_ tables: Set<TableName>) {
        partitionedTables.withLock { $0 = tables }
    }

    /// The lookup query; `typed` compares with the key columns' own types (index-friendly), else
    /// their text forms.
    static func sql(_ entity: EntityMapping, typed: Bool, partitioned: Bool = false) -> String {
        let list = entity.selectColumns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
        // Each key column with the type to bind it as (its own, or text when unknown).
        let keys = entity.keyColumns.enumerated().map { index, name -> (column: String, type: String) in
            let quoted = PostgresConnection.quoteIdentifier(name)
            if typed, index < entity.keyTypes.count { return (quoted, entity.keyTypes[index]) }
            return ("\(quoted)::text", "text")
        }
        let condition: String
        if keys.count == 1 {
            condition = "\(keys[0].column) = ANY($1::\(keys[0].type)[])"
        } else {
            let arrays = keys.enumerated().map { "$\($0.offset + 1)::\($0.element.type)[]" }.joined(separator: ", ")
            condition = "(\(keys.map(\.column).joined(separator: ", "))) IN (SELECT * FROM unnest(\(arrays)))"
        }
        return "SELECT \(list) FROM \(partitioned ? "" : "ONLY ")\(entity.table.quoted) WHERE \(condition)"
    }

    /// One array literal per key column, for binding.
    static func arrays(_ keys: ArraySlice<[String?]>, _ keyCount: Int) -> [String?] {
        (0..<keyCount).map { column in CatalogDiscovery.textArray(keys.map { $0[column] ?? "" }) }
    }

    public func close() async { await connection.close() }
}
