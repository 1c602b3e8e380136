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
                let identity = table.replicaIdentity
                let identityKey = table.keyColumns
                guard identity == "full" || Set(configured) == Set(identityKey) else {
                    throw SyncError(
                        .schema,
                        "\(path).key: deletes of \(entity.table) carry only its replica identity (\(identityKey.joined(separator: ", "))), not \(configured.joined(separator: ", ")). Fix: remove the key setting, or ALTER TABLE \(entity.table.quoted) REPLICA IDENTITY FULL")
                }
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
}
