import Foundation
import Indexing
import Postgres

/// The schema, the agent's configuration, and the oracle: the source rendered through the same
/// templates, compared with the exported index.
enum DifferentialSchema {
    /// The unconfigured table: same columns as `accounts` and overlapping ids, so a write to it that
    /// reached the index would show up as an extra or stale `account` document.
    static let unconfiguredTable = "audit_log"

    /// DDL of the whole schema, including the helper that makes incompressible TOAST values (chains
    /// of md5 digests, > 2 kB, stored out of line).
    static let ddl = """
        CREATE FUNCTION toast_text(seed text, blocks int) RETURNS text LANGUAGE sql IMMUTABLE
            AS $$ SELECT string_agg(md5(seed || ':' || g), '' ORDER BY g) FROM generate_series(1, blocks) g $$;
        CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, bio text, tier text, score int, revision int NOT NULL DEFAULT 0);
        CREATE TABLE notes (id uuid PRIMARY KEY, title text NOT NULL, body text, tag text, revision int NOT NULL DEFAULT 0);
        CREATE TABLE order_lines (order_id int, line_code text, sku text NOT NULL, qty int, note text, status text,
            revision int NOT NULL DEFAULT 0, PRIMARY KEY (order_id, line_code));
        CREATE TABLE events (id bigint, region text, kind text NOT NULL, payload text, severity int, revision int NOT NULL DEFAULT 0,
            PRIMARY KEY (id, region)) PARTITION BY LIST (region);
        CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
        CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
        CREATE TABLE events_ap PARTITION OF events FOR VALUES IN ('ap');
        CREATE TABLE audit_log (id bigint PRIMARY KEY, name text, bio text, tier text, score int);
        """

    /// The agent's configuration file: one entity per configured table, small batches and chunks so
    /// that a few hundred rows already take several of each.
    static func configuration(sourceURL: String, slot: String, indexPath: String) -> String {
        var yaml = """
            source: { url: \(yamlString(sourceURL)), slot: \(yamlString(slot)), heartbeat_interval: 200ms }
            index: { kind: sqlite, path: \(yamlString(indexPath)) }
            pipeline: { batch_size: 200, batch_delay: 20ms }
            backfill: { chunk_duration: 50ms }
            entities:

            """
        for table in SourceTable.allCases {
            yaml += "  \(table.entity):\n"
            yaml += "    table: public.\(table.rawValue)\n"
            yaml += "    content: \(yamlString(table.template))\n"
            yaml += "    metadata: [\(table.metadata.joined(separator: ", "))]\n"
        }
        return yaml
    }

    /// A double-quoted YAML scalar.
    static func yamlString(_ text: String) -> String {
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: "\\t")
        return "\"" + escaped + "\""
    }

    /// What a document should be: rendered from the row's latest committed version.
    struct ExpectedDocument: Sendable {
        var content: String
        var metadata: [String: String?]
    }

    /// The source rendered through the entity's template, by document id.
    static func expectedDocuments(of table: SourceTable, on connection: PostgresConnection) async throws -> [String: ExpectedDocument] {
        let template = try ContentTemplate(table.template)
        let columns = table.oracleColumns
        let list = columns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
        let result = try await connection.query("SELECT \(list) FROM \(table.rawValue)")
        var expected: [String: ExpectedDocument] = [:]
        for row in result.rows {
            var values: [String: String?] = [:]
            for (index, column) in columns.enumerated() { values[column] = row[index] }
            let id = DocumentID.make(table.keyColumns.map { values[$0] ?? nil })
            var metadata: [String: String?] = [:]
            for column in table.metadata { metadata[column] = values[column] ?? nil }
            expected[id] = ExpectedDocument(content: template.render(values), metadata: metadata)
        }
        return expected
    }

    /// Every document of the entity's active generation, by id.
    static func indexedDocuments(of table: SourceTable, in store: any IndexStore) async throws -> [String: ExportedDocument] {
        var documents: [String: ExportedDocument] = [:]
        var after: String?
        while true {
            let page = try await store.export(entity: table.entity, after: after, limit: 2_000)
            guard let last = page.last else { break }
            for document in page { documents[document.id] = document }
            after = last.id
        }
        return documents
    }

    /// Compares the index with the source for one entity.
    static func compare(_ table: SourceTable, expected: [String: ExpectedDocument], indexed: [String: ExportedDocument]) -> EntityDifference {
        var difference = EntityDifference(table: table, sourceRows: expected.count, documents: indexed.count)
        for (id, document) in expected {
            guard let actual = indexed[id] else {
                difference.missing.append(id)
                continue
            }
            var problems: [String] = []
            if actual.content != document.content {
                problems.append("content: expected \(snippet(document.content)), indexed \(snippet(actual.content))")
            }
            if actual.contentHash != EntityMapping.hash(actual.content) {
                problems.append("content_hash is not the hash of the content")
            }
            if actual.metadata != document.metadata {
                problems.append("metadata: expected \(FlatJSON.encode(document.metadata)), indexed \(FlatJSON.encode(actual.metadata))")
            }
            if !problems.isEmpty { difference.stale.append((id, problems.joined(separator: "; "))) }
        }
        difference.extra = indexed.keys.filter { expected[$0] == nil }
        difference.missing.sort()
        difference.extra.sort()
        difference.stale.sort { $0.id < $1.id }
        return difference
    }

    /// A short, unambiguous rendering of a long text: its length and its start.
    static func snippet(_ text: String) -> String {
        let start = text.prefix(60).replacingOccurrences(of: "\n", with: "\\n")
        return "\(text.count) chars \"\(start)\(text.count > 60 ? "…" : "")\""
    }
}
