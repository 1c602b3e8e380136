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

    public init(url: String, logger: Logger) {
        self.url = url
        self.logger = logger
        self.connection = LazyConnection(url: url, applicationName: "tidemark-rows", logger: logger)
    }

    /// The rows that still exist, by document id, with the entity's select columns as text.
    public func fetch(_ entity: EntityMapping, ids: [String]) async throws -> [String: [String: String?]] {
        let columns = entity.selectColumns
        let list = columns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
        let condition = entity.keyColumns.enumerated()
            .map { "\(PostgresConnection.quoteIdentifier($0.element))::text = $\($0.offset + 1)" }
            .joined(separator: " AND ")
        let sql = "SELECT \(list) FROM \(entity.table.quoted) WHERE \(condition)"
        var rows: [String: [String: String?]] = [:]
        let conn = try await connection.get()
        for id in ids {
            guard let key = DocumentID.parse(id, keyCount: entity.keyColumns.count) else { continue }
            let result = try await conn.query(sql, key)
            guard let row = result.rows.first else { continue }
            var values: [String: String?] = [:]
            for (index, column) in columns.enumerated() { values[column] = row[index] }
            rows[id] = values
        }
        return rows
    }

    /// The partitioned table among `roots` that relation `oid` is a partition of, if any.
    public func partitionRoot(ofRelation oid: UInt32, among roots: Set<TableName>) async throws -> TableName? {
        try await PartitionMap.root(ofRelation: oid, among: roots, on: try await connection.get())
    }

    public func close() async { await connection.close() }
}

/// A connection opened on first use and reopened after it broke.
final class LazyConnection: Sendable {
    private let url: String
    private let logger: Logger
    private let state = Mutex<PostgresConnection?>(nil)

    private let applicationName: String

    init(url: String, applicationName: String = "tidemark", logger: Logger) {
        self.url = url
        self.applicationName = applicationName
        self.logger = logger
    }

    func get() async throws -> PostgresConnection {
        if let existing = state.withLock({ $0 }), await existing.isOpen { return existing }
        let connection = try await PostgresConnection.connect(url, applicationName: applicationName, logger: logger)
        state.withLock { $0 = connection }
        return connection
    }

    func close() async {
        let connection = state.withLock { current -> PostgresConnection? in
            defer { current = nil }
            return current
        }
        await connection?.close()
    }
}
