import Capture
import Indexing
import Postgres

/// Checks the configured entities against the source catalog and turns them into ``EntityMapping``s.
///
/// Every mismatch stops start-up with a message naming the key path and the fix: a missing table, a
/// table that cannot be synced, a key or a template or metadata column that does not exist.
public enum EntityResolver {
    public static func resolve(_ entities: [AgentConfiguration.Entity], catalog: [TableDescription]) throws(SyncError) -> [EntityMapping] {
        let byTable = Dictionary(catalog.map { ($0.table, $0) }, uniquingKeysWith: { first, _ in first })
        var mappings: [EntityMapping] = []
        for entity in entities {
            let path = "entities.\(entity.name)"
            guard let table = byTable[entity.table] else {
                let close = catalog.map(\.table).first { $0.name.lowercased() == entity.table.name.lowercased() }?.description
                    ?? Suggestion.closest(to: entity.table.description, in: catalog.map(\.table.description), maximum: 3)
                let hint = close.map { " (did you mean \($0)?)" } ?? ""
                throw SyncError(.schema, "\(path).table: table \(entity.table) does not exist in the source database\(hint)")
            }
            let columnNames = table.columns.map(\.name)
            func requireColumns(_ names: [String], _ key: String, _ what: String) throws(SyncError) {
                for name in names where !columnNames.contains(name) {
                    throw SyncError(
                        .schema,
                        "\(path).\(key): \(what) \"\(name)\" is not a column of \(entity.table) (columns: \(columnNames.joined(separator: ", ")))")
                }
            }
            let keyColumns: [String]
            if let configured = entity.key, !configured.isEmpty {
                try requireColumns(configured, "key", "key column")
                try checkConfiguredKey(configured, of: table, path: "\(path).key")
                keyColumns = configured
            } else {
                guard table.isSyncable else {
                    throw SyncError(.schema, "\(path).table: \(entity.table) cannot be synced: \(table.unsyncableReason ?? "no key")")
                }
                keyColumns = table.keyColumns
            }
            let template: ContentTemplate
            do {
                template = try ContentTemplate(entity.content)
            } catch {
                throw SyncError(.configuration, "\(path).content: \(error.message)")
            }
            // Logical replication does not carry generated columns (PostgreSQL before 18, and 18
            // without publish_generated_columns): every streamed change would miss the value.
            let generated = Set(table.columns.filter(\.isGenerated).map(\.name))
            for name in template.columns where generated.contains(name) {
                throw SyncError(
                    .schema,
                    "\(path).content: {{\(name)}} is a generated column of \(entity.table), which logical replication does not carry, so every streamed change would lack it. Fix: render from the columns it is computed from")
            }
            for name in entity.metadata where generated.contains(name) {
                throw SyncError(
                    .schema,
                    "\(path).metadata: \"\(name)\" is a generated column of \(entity.table), which logical replication does not carry. Fix: use the columns it is computed from")
            }
            for name in template.columns where !columnNames.contains(name) {
                throw SyncError(
                    .schema,
                    "\(path).content: the template uses {{\(name)}}, which is not a column of \(entity.table) (columns: \(columnNames.joined(separator: ", ")))")
            }
            try requireColumns(entity.metadata, "metadata", "metadata column")
            let booleans = Set(table.columns.filter { $0.typeOID == 16 }.map(\.name))
            mappings.append(EntityMapping(
                name: entity.name, table: entity.table, keyColumns: keyColumns, template: template,
                metadataColumns: entity.metadata, booleanColumns: booleans,
                keyTypes: keyColumns.map { name in table.columns.first { $0.name == name }?.type ?? "text" }))
        }
        return mappings
    }

    /// A configured key must identify rows: be the primary key or the columns of a unique index
    /// (not partial, no expressions, not deferrable) over NOT NULL columns. Rows with a NULL key are
    /// skipped by the backfill's key comparisons (and then swept away), rows with equal keys
    /// collapse into one document. Deletes must carry it too.
    static func checkConfiguredKey(_ configured: [String], of table: TableDescription, path: String) throws(SyncError) {
        let name = table.table
        let sql = name.readableSQL
        let list = configured.map(TableName.readableIdentifier).joined(separator: ", ")
        // The columns deletes carry (under FULL: all of them).
        let identityKey: [String]
        switch table.replicaIdentity {
        case "full", "nothing": identityKey = []
        case "index": identityKey = table.keyColumns.isEmpty ? table.primaryKey : table.keyColumns
        default: identityKey = table.primaryKey
        }
        // Under any identity but FULL, deletes carry only the replica identity's columns.
        let identityFix = table.replicaIdentity == "full" || Set(identityKey) == Set(configured)
            ? "" : "; deletes of \(name) carry only its replica identity (\(identityKey.joined(separator: ", "))), so also ALTER TABLE \(sql) REPLICA IDENTITY FULL"
        let usePrimaryKey = table.primaryKey.isEmpty ? "" : " to use the primary key (\(table.primaryKey.joined(separator: ", ")))"
        if !table.candidateKeys.contains(where: { Set($0) == Set(configured) }) {
            let nullable = table.nullableColumns(configured)
            let alter = nullable.map { "ALTER COLUMN \(TableName.readableIdentifier($0)) SET NOT NULL" }.joined(separator: ", ")
            let uniqueIndex = table.uniqueIndexes.first { Set($0.columns) == Set(configured) }
            if let uniqueIndex, !nullable.isEmpty {
                throw SyncError(
                    .schema,
                    "\(path): key column \(nullable.map { "\"\($0)\"" }.joined(separator: ", ")) of \(name) may be NULL (unique index \(uniqueIndex.name) allows it), and rows with a NULL key cannot be told apart: the backfill would skip them. Fix: ALTER TABLE \(sql) \(alter), or remove the key setting\(usePrimaryKey)\(identityFix)")
            }
            var fix = "CREATE UNIQUE INDEX ON \(sql) (\(list))"
            if !nullable.isEmpty { fix += " and ALTER TABLE \(sql) \(alter)" }
            throw SyncError(
                .schema,
                "\(path): (\(configured.joined(separator: ", "))) is not unique\(nullable.isEmpty ? "" : " and NOT NULL") in \(name): a key must be the primary key or the columns of a unique index (not partial, no expressions, not deferrable) over NOT NULL columns, or rows with equal keys collapse into one document. Fix: remove the key setting\(usePrimaryKey), or \(fix)\(identityFix)")
        }
        guard table.replicaIdentity == "full" || Set(configured) == Set(identityKey) else {
            throw SyncError(
                .schema,
                "\(path): deletes of \(name) carry only its replica identity (\(identityKey.joined(separator: ", "))), not \(configured.joined(separator: ", ")). Fix: remove the key setting, or ALTER TABLE \(table.table.quoted) REPLICA IDENTITY FULL")
        }
        if let problem = CatalogDiscovery.orderingProblem(configured, table.columns) {
            throw SyncError(.schema, "\(path): \(problem). Fix: configure a key of orderable columns")
        }
    }
}
