/// What catalog discovery knows about one table.
public struct TableDescription: Sendable, Codable, Equatable {
    public struct Column: Sendable, Codable, Equatable {
        public var name: String
        /// `format_type` text, e.g. `character varying(200)`.
        public var type: String
        public var typeOID: UInt32
        public var notNull: Bool
        /// Text, varchar, char, citext, json, jsonb, xml: worth rendering into content.
        public var isTextLike: Bool
        /// A generated column (not carried by logical replication before PostgreSQL 18).
        public var isGenerated: Bool
        /// The type has a default btree operator class, so it can be ordered and compared as a key.
        public var isOrderable: Bool
    }

    public var table: TableName
    public var columns: [Column]
    /// The primary key columns, in key order (empty without a primary key).
    public var primaryKey: [String]
    /// The columns that identify rows for sync: the primary key, else the replica-identity index,
    /// else (under `REPLICA IDENTITY FULL`) every column; empty when the table cannot be synced.
    public var keyColumns: [String]
    /// `default`, `full`, `index` or `nothing`.
    public var replicaIdentity: String
    /// The planner's row estimate (`pg_class.reltuples`), 0 when never analysed.
    public var estimatedRows: Int64
    /// Whether the table is in the publication discovery was asked about.
    public var isPublished: Bool
    /// Why the table cannot be synced, or `nil` when it can.
    public var unsyncableReason: String?

    public var isSyncable: Bool { unsyncableReason == nil }
}
