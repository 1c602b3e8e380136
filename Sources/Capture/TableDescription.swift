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

    /// A unique index that could identify rows: not partial, no expressions, not deferrable. It
    /// does only when its columns are NOT NULL as well (see ``TableDescription/candidateKeys``).
    public struct UniqueIndex: Sendable, Codable, Equatable {
        public var name: String
        /// Key columns in index order (`INCLUDE` columns left out).
        public var columns: [String]

        public init(name: String, columns: [String]) {
            self.name = name
            self.columns = columns
        }
    }

    public var table: TableName
    public var columns: [Column]
    /// The primary key columns, in key order (empty without a primary key).
    public var primaryKey: [String]
    /// The columns that identify rows for sync: the primary key, else the replica-identity index,
    /// else (under `REPLICA IDENTITY FULL`) the smallest unique index over NOT NULL columns; empty
    /// when the table cannot be synced. Always unique and NOT NULL: rows with NULL or repeated keys
    /// could not be told apart.
    public var keyColumns: [String]
    /// `default`, `full`, `index` or `nothing`.
    public var replicaIdentity: String
    /// The planner's row estimate (`pg_class.reltuples`), 0 when never analysed.
    public var estimatedRows: Int64
    /// Whether the table is in the publication discovery was asked about.
    public var isPublished: Bool
    /// Why the table cannot be synced, or `nil` when it can.
    public var unsyncableReason: String?
    /// Unique indexes other than the primary key that are not partial, have no expressions and are
    /// not deferrable, smallest first.
    public var uniqueIndexes: [UniqueIndex] = []

    public var isSyncable: Bool { unsyncableReason == nil }

    /// Column sets that identify a row: the primary key, and every unique index of
    /// ``uniqueIndexes`` whose columns are all NOT NULL. A configured key must be one of them.
    public var candidateKeys: [[String]] {
        let notNull = Set(columns.filter(\.notNull).map(\.name))
        var keys = primaryKey.isEmpty ? [] : [primaryKey]
        for index in uniqueIndexes where index.columns.allSatisfy(notNull.contains) && !keys.contains(where: { Set($0) == Set(index.columns) }) {
            keys.append(index.columns)
        }
        return keys
    }

    /// Columns of `names` that may hold NULL.
    public func nullableColumns(_ names: [String]) -> [String] {
        names.filter { name in columns.first { $0.name == name }.map { !$0.notNull } ?? false }
    }
}
