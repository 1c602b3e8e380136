import Postgres

/// The shape of a replicated table as the stream last described it, plus the key to identify rows.
public struct RelationSchema: Sendable, Equatable {
    /// A published column.
    public struct Column: Sendable, Equatable {
        public var name: String
        public var typeOID: UInt32
        /// Flagged as part of the replica identity by the server.
        public var isReplicaIdentity: Bool

        public init(name: String, typeOID: UInt32, isReplicaIdentity: Bool) {
            self.name = name
            self.typeOID = typeOID
            self.isReplicaIdentity = isReplicaIdentity
        }
    }

    public var id: UInt32
    public var table: TableName
    public var columns: [Column]
    /// `d` default, `n` nothing, `f` full, `i` index.
    public var replicaIdentity: Character
    /// Positions in ``columns`` of the columns that identify a row, in key order.
    public var keyIndexes: [Int]

    /// Names of the key columns, in key order.
    public var keyColumns: [String] { keyIndexes.map { columns[$0].name } }

    /// Builds the schema from a Relation message.
    ///
    /// - Parameter keyColumns: the row key to use (e.g. the primary key from the catalog). When `nil`
    ///   or when a named column is not published, the columns the server flags as replica identity
    ///   are used, which is the primary key unless the identity is `FULL` or a unique index.
    public init(_ relation: PgOutputMessage.Relation, keyColumns: [String]?) {
        id = relation.id
        table = TableName(schema: relation.namespace, name: relation.name)
        let columns = relation.columns.map { Column(name: $0.name, typeOID: $0.typeOID, isReplicaIdentity: $0.isKey) }
        self.columns = columns
        replicaIdentity = Character(UnicodeScalar(relation.replicaIdentity))
        let names = columns.map(\.name)
        let positions = (keyColumns ?? []).compactMap { names.firstIndex(of: $0) }
        if let keyColumns, !keyColumns.isEmpty, positions.count == keyColumns.count {
            keyIndexes = positions
        } else {
            keyIndexes = columns.indices.filter { columns[$0].isReplicaIdentity }
        }
    }

    public init(id: UInt32, table: TableName, columns: [Column], replicaIdentity: Character, keyIndexes: [Int]) {
        self.id = id
        self.table = table
        self.columns = columns
        self.replicaIdentity = replicaIdentity
        self.keyIndexes = keyIndexes
    }

    /// Position of the column named `name`.
    public func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }
}
