import Foundation
import Logging
import Postgres

/// Reads the tables of a database from `pg_catalog`: keys, columns, replica identity, row estimates,
/// publication membership, and for each table that cannot be synced, the reason and the fix.
public struct CatalogDiscovery: Sendable {
    public struct Configuration: Sendable {
        /// Schemas to list; empty (default) means every schema except the system ones.
        public var schemas: [String] = []
        /// Publication whose membership to report; `nil` (default) reports none as published.
        public var publication: String?

        public init(schemas: [String] = [], publication: String? = nil) {
            self.schemas = schemas
            self.publication = publication
        }
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    private static let tablesSQL = """
        SELECT c.oid::text, n.nspname, c.relname, c.relreplident::text,
               GREATEST(c.reltuples, 0)::bigint::text,
               (SELECT array_to_json(array_agg(a.attname ORDER BY k.ord))::text
                  FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= i.indnkeyatts),
               (SELECT array_to_json(array_agg(a.attname ORDER BY k.ord))::text
                  FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisreplident AND k.ord <= i.indnkeyatts),
               -- Unique indexes that could be keys: not partial, no expressions, not deferrable.
               (SELECT json_agg(json_build_object('name', ic.relname, 'columns', (
                         SELECT json_agg(a.attname ORDER BY k.ord)
                           FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                          WHERE k.ord <= i.indnkeyatts))
                       ORDER BY i.indnkeyatts, ic.relname)::text
                  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary AND i.indimmediate
                   AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL),
               -- A DEFERRABLE primary key (its name), which cannot serve as a key.
               (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = c.oid AND i.indisprimary AND NOT i.indimmediate)
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
           AND ($1::text[] IS NULL OR n.nspname = ANY($1::text[]))
         ORDER BY n.nspname, c.relname
        """

    private static let columnsSQL = """
        SELECT a.attrelid::text, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::text,
               a.attnotnull::text, (a.attgenerated <> '')::text,
               (t.typcategory = 'S' OR bt.typname IN ('json', 'jsonb', 'xml', 'citext'))::text,
               EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                        WHERE am.amname = 'btree' AND oc.opcdefault
                          AND (oc.opcintype IN (a.atttypid, bt.oid)
                               -- varchar sorts with text's class (a binary-coercible cast), enums with anyenum's
                               OR EXISTS (SELECT 1 FROM pg_cast pc WHERE pc.castsource = bt.oid
                                             AND pc.casttarget = oc.opcintype AND pc.castmethod = 'b')
                               OR (bt.typtype = 'e' AND oc.opcintype = 'anyenum'::regtype)))::text
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_type t ON t.oid = a.atttypid
          JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
         WHERE a.attnum > 0 AND NOT a.attisdropped
           AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
           AND ($1::text[] IS NULL OR n.nspname = ANY($1::text[]))
         ORDER BY a.attrelid, a.attnum
        """

    /// Lists the tables. Runs three catalog queries on `connection` (an ordinary connection).
    public func discover(on connection: PostgresConnection) async throws -> [TableDescription] {
        let schemaFilter = configuration.schemas.isEmpty ? nil : Self.textArray(configuration.schemas)
        do {
            let tables = try await connection.query(Self.tablesSQL, [schemaFilter])
            let columns = try await connection.query(Self.columnsSQL, [schemaFilter])
            var published: Set<TableName> = []
            if let publication = configuration.publication {
                let rows = try await connection.query(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", [publication])
                for row in rows.rows {
                    if let schema = row[0], let name = row[1] { published.insert(TableName(schema: schema, name: name)) }
                }
            }
            var columnsByTable: [String: [TableDescription.Column]] = [:]
            for row in columns.rows {
                guard let oid = row[0], let name = row[1] else { continue }
                columnsByTable[oid, default: []].append(.init(
                    name: name, type: row[2] ?? "", typeOID: UInt32(row[3] ?? "") ?? 0,
                    notNull: row[4] == "true", isTextLike: row[6] == "true", isGenerated: row[5] == "true",
                    isOrderable: row[7] == "true"))
            }
            return tables.rows.compactMap { row in
                guard let oid = row[0], let schema = row[1], let name = row[2] else { return nil }
                return Self.describe(
                    table: TableName(schema: schema, name: name), columns: columnsByTable[oid] ?? [],
                    identity: row[3] ?? "d", estimate: Int64(row[4] ?? "") ?? 0,
                    primaryKey: Self.jsonNames(row[5]), identityIndex: Self.jsonNames(row[6]),
                    uniqueIndexes: Self.jsonIndexes(row[7]), deferrablePrimaryKey: row.count > 8 ? row[8] : nil,
                    published: published.contains(TableName(schema: schema, name: name)))
            }
        } catch {
            throw CaptureError(.catalog, "cannot read the catalog: \(error)", underlying: error)
        }
    }

    static func describe(
        table: TableName, columns: [TableDescription.Column], identity: String, estimate: Int64,
        primaryKey: [String], identityIndex: [String], uniqueIndexes: [TableDescription.UniqueIndex] = [],
        deferrablePrimaryKey: String? = nil, published: Bool
    ) -> TableDescription {
        let identityName: String
        switch identity {
        case "f": identityName = "full"
        case "i": identityName = "index"
        case "n": identityName = "nothing"
        default: identityName = "default"
        }
        var description = TableDescription(
            table: table, columns: columns, primaryKey: primaryKey, keyColumns: [], replicaIdentity: identityName,
            estimatedRows: estimate, isPublished: published, unsyncableReason: nil, uniqueIndexes: uniqueIndexes)
        let sql = table.readableSQL
        var key: [String]
        var reason: String?
        switch identityName {
        case "nothing":
            key = []
            reason = "REPLICA IDENTITY NOTHING: updates and deletes carry no key. Fix: ALTER TABLE \(table.quoted) REPLICA IDENTITY DEFAULT (with a primary key) or FULL"
        case "index":
            // PostgreSQL accepts only a unique, immediate, non-partial index over NOT NULL columns.
            key = identityIndex.isEmpty ? primaryKey : identityIndex
            if key.isEmpty {
                reason = "its replica identity index was dropped, and it has no primary key: updates and deletes carry no key. Fix: ALTER TABLE \(sql) REPLICA IDENTITY USING INDEX with a unique index over NOT NULL columns, or add a primary key"
            }
        case "full":
            // Every column identifies a row only if no two rows are equal and none holds NULL: use
            // a real key instead, the primary key or a unique index over NOT NULL columns.
            key = description.candidateKeys.first ?? []
            if key.isEmpty {
                if let index = uniqueIndexes.first {
                    let nullable = description.nullableColumns(index.columns)
                    let alter = nullable.map { "ALTER COLUMN \(TableName.readableIdentifier($0)) SET NOT NULL" }.joined(separator: ", ")
                    reason = "REPLICA IDENTITY FULL without a primary key, and its unique index \(index.name) allows NULL in \(nullable.joined(separator: ", ")): rows with NULLs cannot be told apart. Fix: ALTER TABLE \(sql) \(alter), or add a primary key"
                } else {
                    reason = "REPLICA IDENTITY FULL without a primary key or a unique index over NOT NULL columns: rows with NULLs or equal values cannot be told apart. Fix: add a primary key (ALTER TABLE \(sql) ADD PRIMARY KEY (…)), or a unique index over NOT NULL columns (CREATE UNIQUE INDEX ON \(sql) (…))"
                }
            }
        default:
            key = primaryKey
            if primaryKey.isEmpty {
                reason = "no primary key and REPLICA IDENTITY DEFAULT: updates and deletes cannot be matched to a row. Fix: add a primary key, or ALTER TABLE \(table.quoted) REPLICA IDENTITY FULL with a unique index over NOT NULL columns"
            }
        }
        if reason == nil, let constraint = deferrablePrimaryKey, !key.isEmpty, key == primaryKey {
            // Checked only at commit: inside a transaction two rows may hold one key for a moment
            // (UPDATE … SET id = id + 1), and the stream's per-row changes then delete each other.
            reason = "its primary key \(constraint) is DEFERRABLE: inside a transaction two rows may hold the same key for a moment, and their changes can then not be told apart. Fix: ALTER TABLE \(sql) ALTER CONSTRAINT \(TableName.readableIdentifier(constraint)) NOT DEFERRABLE"
        }
        if reason == nil, let problem = orderingProblem(key, columns) {
            reason = problem + ". Fix: give the table a primary key of an orderable type"
        }
        if reason != nil { key = [] }
        description.keyColumns = key
        description.unsyncableReason = reason
        return description
    }

    /// Why `key` cannot order rows (a column type without a default btree ordering), or `nil`.
    public static func orderingProblem(_ key: [String], _ columns: [TableDescription.Column]) -> String? {
        let byName = Dictionary(columns.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        guard let bad = key.first(where: { byName[$0].map { !$0.isOrderable } ?? false }), let column = byName[bad] else { return nil }
        return "key column \"\(bad)\" has type \(column.type), which has no default btree ordering; chunked backfill and validation need an orderable key"
    }

    static func jsonIndexes(_ text: String?) -> [TableDescription.UniqueIndex] {
        guard let text, let data = text.data(using: .utf8),
            let indexes = try? JSONDecoder().decode([TableDescription.UniqueIndex].self, from: data)
        else { return [] }
        return indexes
    }

    static func jsonNames(_ text: String?) -> [String] {
        guard let text, let data = text.data(using: .utf8),
            let names = try? JSONDecoder().decode([String].self, from: data)
        else { return [] }
        return names
    }

    /// A PostgreSQL text-array literal (`{"a","b"}`) for binding as one parameter.
    public static func textArray(_ values: [String]) -> String {
        "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
