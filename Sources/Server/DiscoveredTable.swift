import Capture

/// A table as `GET /api/ai/bulk-sync/discover` shows it: what catalog discovery found, and the
/// entity configured for it, if any.
struct DiscoveredTable: Codable, Sendable {
    struct Column: Codable, Sendable {
        var name: String
        var type: String
        var notNull: Bool
        var textLike: Bool
        var generated: Bool
    }

    var table: String
    var estimatedRows: Int64
    var keyColumns: [String]
    var replicaIdentity: String
    var columns: [Column]
    var textColumns: [String]
    var published: Bool
    var syncable: Bool
    /// Why it cannot be synced, and the fix.
    var reason: String?
    /// The configured entity reading this table.
    var entity: String?

    init(_ description: TableDescription, entity: String?) {
        table = description.table.description
        estimatedRows = description.estimatedRows
        keyColumns = description.keyColumns
        replicaIdentity = description.replicaIdentity
        columns = description.columns.map {
            Column(name: $0.name, type: $0.type, notNull: $0.notNull, textLike: $0.isTextLike, generated: $0.isGenerated)
        }
        textColumns = description.columns.filter(\.isTextLike).map(\.name)
        published = description.isPublished
        syncable = description.isSyncable
        reason = description.unsyncableReason
        self.entity = entity
    }
}
