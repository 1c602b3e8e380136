import Foundation
import GRDB
import Indexing

/// The index's SQLite file opened behind the agent's back, to make drift that only a validation
/// can find: documents deleted, orphans inserted, stored source values, content or metadata edited.
/// Every edit applies to the entity's active generation.
final class IndexFile {
    private let queue: DatabaseQueue

    private static let active = "generation = coalesce((SELECT CAST(value AS INTEGER) FROM state WHERE key = 'generation.' || ? || '.active'), 0)"

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        queue = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Deletes documents; returns how many there were.
    @discardableResult
    func deleteDocuments(_ entity: String, ids: [String]) throws -> Int {
        try queue.write { db in
            var deleted = 0
            for id in ids {
                try db.execute(sql: "DELETE FROM chunks WHERE entity = ? AND id = ? AND \(Self.active)", arguments: [entity, id, entity])
                try db.execute(sql: "DELETE FROM documents WHERE entity = ? AND id = ? AND \(Self.active)", arguments: [entity, id, entity])
                deleted += db.changesCount
            }
            return deleted
        }
    }

    /// Inserts copies of a document under ids no row has.
    func insertCopies(_ entity: String, of id: String, as newIDs: [String], keepingChecks: Bool = false) throws {
        let checks = keepingChecks ? ", row_hash, order_key, render" : ""
        try queue.write { db in
            for newID in newIDs {
                try db.execute(
                    sql: """
                        INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at, partition, chunk_hashes, embedding\(checks))
                        SELECT entity, generation, ?, content, content_hash, metadata, source, model, lsn, updated_at, partition, chunk_hashes, embedding\(checks)
                          FROM documents WHERE entity = ? AND id = ? AND \(Self.active)
                        """,
                    arguments: [newID, entity, id, entity])
                try db.execute(
                    sql: """
                        INSERT INTO chunks (entity, id, generation, seq, hash, model, text, vector)
                        SELECT entity, ?, generation, seq, hash, model, text, vector
                          FROM chunks WHERE entity = ? AND id = ? AND \(Self.active)
                        """,
                    arguments: [newID, entity, id, entity])
            }
        }
    }

    /// Changes one of the source values a document keeps (`nil`: NULL).
    func setSourceValue(_ entity: String, id: String, column: String, to value: String?) throws {
        try edit(entity, id: id, column: "source") { text in
            var values = FlatJSON.decode(text)
            values[column] = .some(value)
            return FlatJSON.encode(values)
        }
    }

    /// Changes one of a document's metadata values.
    func setMetadataValue(_ entity: String, id: String, column: String, to value: String?) throws {
        try edit(entity, id: id, column: "metadata") { text in
            var values = FlatJSON.decode(text)
            values[column] = .some(value)
            return FlatJSON.encode(values)
        }
    }

    /// Replaces a document's content (its content hash stays).
    func setContent(_ entity: String, id: String, to content: String) throws {
        try edit(entity, id: id, column: "content") { _ in content }
    }

    func setContentHash(_ entity: String, id: String, to hash: String) throws {
        try edit(entity, id: id, column: "content_hash") { _ in hash }
    }

    /// Removes the checks of the entity's documents (as in a file written before checks existed).
    func dropChecks(_ entity: String) throws {
        try queue.write { db in
            try db.execute(sql: "UPDATE documents SET row_hash = NULL, order_key = NULL, render = NULL WHERE entity = ?", arguments: [entity])
        }
    }

    /// The ids of the entity's active documents.
    func ids(_ entity: String) throws -> [String] {
        try queue.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM documents WHERE entity = ? AND \(Self.active) ORDER BY id", arguments: [entity, entity])
        }
    }

    private func edit(_ entity: String, id: String, column: String, _ change: (String) -> String) throws {
        try queue.write { db in
            guard let text = try String.fetchOne(
                db, sql: "SELECT CASE typeof(\(column)) WHEN 'blob' THEN hex(\(column)) ELSE \(column) END FROM documents WHERE entity = ? AND id = ? AND \(Self.active)",
                arguments: [entity, id, entity])
            else { throw IndexingError(.store, "no document \(id) of \(entity) to edit") }
            try db.execute(
                sql: "UPDATE documents SET \(column) = ? WHERE entity = ? AND id = ? AND \(Self.active)", arguments: [change(text), entity, id, entity])
        }
    }
}
