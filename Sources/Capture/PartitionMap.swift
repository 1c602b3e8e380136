import Postgres

/// The leaf partitions of partitioned tables, as the catalog lists them now.
///
/// Tidemark publishes partitioned tables *without* `publish_via_partition_root`: pgoutput then
/// reports each change under the leaf partition that holds the row, and — unlike with the option,
/// where a partition-level `TRUNCATE` is not published at all — a partition's `TRUNCATE` too. This
/// map turns leaf names back into their root (the configured table) and tells which partition a
/// document's row lives in, so that a partition's `TRUNCATE` removes exactly its documents.
///
/// Inheritance children (`INHERITS`) are not partitions: they are tables of their own, never read
/// through their parent (backfill reads `FROM ONLY` the parent) and never published with it.
public struct PartitionMap: Sendable, Equatable {
    /// One leaf partition.
    public struct Leaf: Sendable, Hashable, Codable {
        /// The relation's OID as text: what a change's relation id and a row's `tableoid` give.
        public var oid: String
        public var table: TableName

        public init(oid: String, table: TableName) {
            self.oid = oid
            self.table = table
        }
    }

    /// Leaves by partitioned root; tables that are not partitioned are absent.
    public private(set) var leaves: [TableName: [Leaf]]
    private var rootOfLeaf: [TableName: TableName]

    public init(leaves: [TableName: [Leaf]] = [:]) {
        self.leaves = leaves
        var roots: [TableName: TableName] = [:]
        for (root, list) in leaves {
            for leaf in list { roots[leaf.table] = root }
        }
        rootOfLeaf = roots
    }

    /// Whether `table` is a partitioned table (the root of a partition tree).
    public func isPartitioned(_ table: TableName) -> Bool { leaves[table] != nil }

    /// The partitioned root that `table` is a leaf of, if any.
    public func root(of table: TableName) -> TableName? { rootOfLeaf[table] }

    /// Adds a leaf learnt from the stream (a partition attached since the map was read).
    public mutating func add(_ leaf: Leaf, root: TableName) {
        guard rootOfLeaf[leaf.table] == nil else { return }
        leaves[root, default: []].append(leaf)
        rootOfLeaf[leaf.table] = root
    }

    /// Reads the leaves of those of `tables` that are partitioned (also the leaves of
    /// sub-partitioned partitions), one query per table. Tables that do not exist are skipped.
    public static func load(_ tables: [TableName], on connection: PostgresConnection) async throws -> PartitionMap {
        var leaves: [TableName: [Leaf]] = [:]
        for table in tables {
            // One row per leaf; a partitioned table without partitions yet gives one row of NULLs.
            let rows = try await connection.query(
                """
                SELECT l.oid::text, l.nspname, l.relname
                  FROM pg_class c
                  LEFT JOIN LATERAL (
                       SELECT lc.oid, ln.nspname, lc.relname
                         FROM pg_partition_tree(c.oid) t
                         JOIN pg_class lc ON lc.oid = t.relid
                         JOIN pg_namespace ln ON ln.oid = lc.relnamespace
                        WHERE t.isleaf AND t.level > 0) l ON true
                 WHERE c.oid = to_regclass($1) AND c.relkind = 'p'
                 ORDER BY l.oid
                """, [table.quoted])
            guard !rows.rows.isEmpty else { continue }
            leaves[table] = rows.rows.compactMap { row in
                guard let oid = row[0], let schema = row[1], let name = row[2] else { return nil }
                return Leaf(oid: oid, table: TableName(schema: schema, name: name))
            }
        }
        return PartitionMap(leaves: leaves)
    }

    /// The partitioned root of relation `oid` when it is a partition of one of `roots`.
    public static func root(ofRelation oid: UInt32, among roots: Set<TableName>, on connection: PostgresConnection) async throws -> TableName? {
        let rows = try await connection.query(
            """
            SELECT n.nspname, c.relname FROM pg_partition_ancestors($1::oid) a
              JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace
            """, [String(oid)])
        for row in rows.rows {
            guard let schema = row[0], let name = row[1] else { continue }
            let table = TableName(schema: schema, name: name)
            if roots.contains(table) { return table }
        }
        return nil
    }
}
