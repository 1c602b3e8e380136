import Capture
import Indexing
import Logging
import Postgres

/// Loads every existing row of the entities from one consistent snapshot: the snapshot exported when
/// the replication slot was created, so streaming from the slot's consistent point continues with no
/// gap and no duplicate.
///
/// Reads with a server-side cursor in pages, so memory stays bounded; the read runs in one
/// REPEATABLE READ transaction for the length of the load (the backfill design in
/// `Docs/backfill.md` replaces this with chunked, resumable reads).
public struct InitialLoad: Sendable {
    public struct Configuration: Sendable {
        /// Rows per FETCH. Default 5000.
        public var pageSize = 5_000
        public init() {}
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Reads all rows of `entities` as of `snapshot` (already imported in `connection`'s open
    /// transaction) and feeds them to `pipeline` as inserts at `lsn`. Returns the number of rows.
    public func load(_ entities: [EntityMapping], on connection: PostgresConnection, lsn: LSN, pipeline: Pipeline) async throws -> Int {
        var total = 0
        for entity in entities {
            let columns = entity.selectColumns
            let schema = RelationSchema(
                id: 0, table: entity.table,
                columns: columns.map { .init(name: $0, typeOID: 0, isReplicaIdentity: entity.keyColumns.contains($0)) },
                replicaIdentity: "d", keyIndexes: entity.keyColumns.compactMap { columns.firstIndex(of: $0) })
            let list = columns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
            try await connection.simpleQuery("DECLARE tidemark_load NO SCROLL CURSOR FOR SELECT \(list) FROM \(entity.table.quoted)")
            var rows = 0
            while true {
                let page = try await connection.simpleQuery("FETCH FORWARD \(configuration.pageSize) FROM tidemark_load")
                if page.rows.isEmpty { break }
                let changes = page.rows.map { row -> RowChange in
                    let values = row.map { $0.map(ColumnValue.text) ?? .null }
                    return RowChange(
                        operation: .insert, schema: schema, key: schema.keyIndexes.map { values[$0] }, newValues: values,
                        oldKey: nil, oldValues: nil, xid: 0, commitLSN: lsn, commitTime: 0)
                }
                try await pipeline.ingest(changes)
                rows += page.rows.count
            }
            try await connection.simpleQuery("CLOSE tidemark_load")
            logger.info("initial load of entity done", metadata: ["entity": "\(entity.name)", "rows": "\(rows)"])
            total += rows
        }
        return total
    }
}
