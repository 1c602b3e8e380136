import Postgres

/// What makes a table *the same table* for the replication stream: its OID, its storage, and —
/// for a partitioned table — the OID, storage and attachment of each partition.
///
/// Some source changes leave no trace in the stream, yet change which rows a table holds:
/// - a table replaced by another of the same name (a "table swap" migration: rename the old one,
///   rename a new one into its place) has a new OID, and publications hold OIDs;
/// - a rewriting `ALTER TABLE … ALTER COLUMN … TYPE … USING …` changes every row with no logical
///   change; it gives the table a new `relfilenode` (so do `TRUNCATE`, `VACUUM FULL` and `CLUSTER`);
/// - `ATTACH PARTITION` and `DETACH PARTITION` add or remove rows; a partition detached and
///   attached again keeps its OID, but its `pg_inherits` row is a new one (a new `xmin`).
///
/// Comparing the ``fingerprint`` recorded with the index against the catalog's tells that the
/// table must be read again.
public struct TableIdentity: Sendable, Equatable {
    /// One partition (at any level) of a partitioned table.
    public struct Partition: Sendable, Equatable {
        public var oid: String
        /// `pg_class.relfilenode`: changes whenever the partition's storage is rewritten.
        public var relfilenode: String
        /// `xmin` of the partition's `pg_inherits` row: changes when it is attached again.
        public var attachment: String
    }

    /// `pg_class.oid` of the table.
    public var oid: String
    /// `pg_class.relfilenode` (0 for a partitioned table, which has no storage of its own).
    public var relfilenode: String
    /// Partitions by OID; empty for a table that is not partitioned.
    public var partitions: [Partition]

    public init(oid: String, relfilenode: String, partitions: [Partition] = []) {
        self.oid = oid
        self.relfilenode = relfilenode
        self.partitions = partitions.sorted { ($0.oid.count, $0.oid) < ($1.oid.count, $1.oid) }
    }

    /// A text form that ``init(fingerprint:)`` reads back: `oid/relfilenode|oid/relfilenode/xmin,…`.
    public var fingerprint: String {
        "\(oid)/\(relfilenode)|" + partitions.map { "\($0.oid)/\($0.relfilenode)/\($0.attachment)" }.joined(separator: ",")
    }

    /// Reads a ``fingerprint``; `nil` for any other text.
    public init?(fingerprint: String) {
        let halves = fingerprint.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let table = halves[0].split(separator: "/")
        guard table.count == 2 else { return nil }
        var partitions: [Partition] = []
        for item in halves[1].split(separator: ",") {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3 else { return nil }
            partitions.append(Partition(oid: String(parts[0]), relfilenode: String(parts[1]), attachment: String(parts[2])))
        }
        self.init(oid: String(table[0]), relfilenode: String(table[1]), partitions: partitions)
    }

    /// What changed from `earlier` to this identity, in words for a log line; empty when nothing did.
    public func changes(since earlier: TableIdentity) -> [String] {
        if oid != earlier.oid { return ["the table was replaced by another of the same name (OID \(earlier.oid) → \(oid))"] }
        var changes: [String] = []
        if relfilenode != earlier.relfilenode { changes.append("the table was rewritten or truncated") }
        let before = Dictionary(earlier.partitions.map { ($0.oid, $0) }, uniquingKeysWith: { first, _ in first })
        let now = Dictionary(partitions.map { ($0.oid, $0) }, uniquingKeysWith: { first, _ in first })
        let attached = now.keys.filter { before[$0] == nil }.count
        let detached = before.keys.filter { now[$0] == nil }.count
        let reattached = now.values.filter { part in before[part.oid].map { $0.attachment != part.attachment } ?? false }.count
        let rewritten = now.values.filter { part in before[part.oid].map { $0.relfilenode != part.relfilenode } ?? false }.count
        if attached > 0 { changes.append("\(attached) partition(s) attached") }
        if detached > 0 { changes.append("\(detached) partition(s) detached") }
        if reattached > 0 { changes.append("\(reattached) partition(s) detached and attached again") }
        if rewritten > 0 { changes.append("\(rewritten) partition(s) rewritten or truncated") }
        return changes
    }

    /// The identities of those of `tables` that exist now.
    public static func load(_ tables: [TableName], on connection: PostgresConnection) async throws -> [TableName: TableIdentity] {
        var identities: [TableName: TableIdentity] = [:]
        for table in tables {
            let rows = try await connection.query(
                "SELECT oid::text, relfilenode::text, relkind::text FROM pg_class WHERE oid = to_regclass($1)", [table.quoted])
            guard let row = rows.rows.first, let oid = row[0], let relfilenode = row[1] else { continue }
            var partitions: [Partition] = []
            if row[2] == "p" {
                // Every level: a sub-partitioned partition detached and attached again counts too.
                let tree = try await connection.query(
                    """
                    SELECT c.oid::text, c.relfilenode::text, i.xmin::text
                      FROM pg_partition_tree($1::oid) t
                      JOIN pg_class c ON c.oid = t.relid
                      JOIN pg_inherits i ON i.inhrelid = c.oid
                     WHERE t.level > 0
                    """, [oid])
                partitions = tree.rows.compactMap { row in
                    guard let oid = row[0], let relfilenode = row[1], let xmin = row[2] else { return nil }
                    return Partition(oid: oid, relfilenode: relfilenode, attachment: xmin)
                }
            }
            identities[table] = TableIdentity(oid: oid, relfilenode: relfilenode, partitions: partitions)
        }
        return identities
    }
}
