import Foundation
import GRDB
import Postgres

/// The reads validation makes of the SQLite index, and the validation history.
extension SQLiteIndexStore {
    /// Creates the `validations` table (records as JSON, like jobs).
    static func migrateValidations(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS validations (
                id         TEXT PRIMARY KEY,
                entity     TEXT NOT NULL,
                status     TEXT NOT NULL,
                created_at REAL NOT NULL,
                record     TEXT NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS validations_by_time ON validations (created_at);
            """)
    }

    /// The index that lets validation digest key ranges without reading documents, and the triggers
    /// that clear a document's row hash when anything but the store writes it: an `INSERT` or
    /// `UPDATE` by another connection (an edit, a copied row, `INSERT OR REPLACE`, an older agent
    /// that does not keep checks), so that validation compares that document in full. The store's
    /// own connections run with triggers off (`Configuration.grdb`), so its writes keep their checks.
    /// A third trigger drops a one-chunk document's `embedding` when another writer changes the
    /// content hash, model or chunks it belongs to (an older agent keeps its vector in `chunks`):
    /// a vector is only ever kept for the content it was computed from.
    static func migrateChecks(_ db: Database) throws {
        // Earlier triggers: one on edits only, then ones that let writes marked in `state` through.
        let earlier = try String.fetchAll(
            db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND (name = 'documents_edited' OR sql LIKE '%tidemark.writing%')")
        for name in earlier { try db.execute(sql: "DROP TRIGGER \(name)") }
        // The index also serves sweeps (`lsn`, last); an earlier one without it is replaced.
        let checksIndex = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'documents_checks'")
        if let checksIndex, !checksIndex.contains("lsn") { try db.execute(sql: "DROP INDEX documents_checks") }
        try db.execute(sql: """
            CREATE INDEX IF NOT EXISTS documents_checks ON documents (entity, generation, order_key, render, row_hash, lsn);
            CREATE TRIGGER IF NOT EXISTS documents_written_outside AFTER INSERT ON documents WHEN NEW.row_hash IS NOT NULL
            BEGIN
              UPDATE documents SET row_hash = NULL WHERE rowid = NEW.rowid;
            END;
            CREATE TRIGGER IF NOT EXISTS documents_vector_outside AFTER UPDATE OF content_hash, model, chunk_hashes ON documents
              WHEN NEW.embedding IS NOT NULL
               AND (OLD.content_hash IS NOT NEW.content_hash OR OLD.model IS NOT NEW.model OR NEW.chunk_hashes IS NOT NULL)
            BEGIN
              UPDATE documents SET embedding = NULL WHERE rowid = NEW.rowid;
            END;
            CREATE TRIGGER IF NOT EXISTS documents_updated_outside AFTER UPDATE ON documents WHEN NEW.row_hash IS NOT NULL
            BEGIN
              UPDATE documents SET row_hash = NULL WHERE rowid = NEW.rowid;
            END;
            """)
    }

    /// Appends the conditions that keep documents with an order key in `range`.
    private static func restrict(to range: OrderKeyRange, _ sql: inout String, _ arguments: inout StatementArguments) {
        if let lower = range.lower {
            sql += " AND order_key > ?"
            arguments += [Data(lower)]
        }
        if let upper = range.upper {
            sql += " AND order_key <= ?"
            arguments += [Data(upper)]
        }
        if range.lower == nil && range.upper == nil { sql += " AND order_key IS NOT NULL" }
    }

    /// Ranges digested per read.
    private static let rangesPerRead = 64

    /// One aggregate per range over the `documents_checks` index (no document row is read); the
    /// halves of the row hash are summed separately so that no sum overflows SQLite's integers.
    public func checkedDigests(entity: String, render: Int64, ranges: [OrderKeyRange]) async throws -> [CheckedDigest]? {
        let aggregate = """
            SELECT count(*), coalesce(sum(render = ?1 AND row_hash IS NOT NULL), 0),
                   coalesce(sum(CASE WHEN render = ?1 THEN row_hash >> 32 END), 0),
                   coalesce(sum(CASE WHEN render = ?1 THEN row_hash & 4294967295 END), 0)
              FROM documents WHERE entity = ?2 AND generation = ?3
            """
        do {
            var digests: [CheckedDigest] = []
            digests.reserveCapacity(ranges.count + 1)
            var start = 0
            repeat {
                let stripe = ranges[start..<min(start + Self.rangesPerRead, ranges.count)]
                let last = start + stripe.count == ranges.count
                digests += try await pool.read { db in
                    let generation = try Int.fetchOne(
                        db, sql: "SELECT CAST(value AS INTEGER) FROM state WHERE key = ?", arguments: ["generation.\(entity).active"]) ?? 0
                    var found: [CheckedDigest] = []
                    for range in stripe {
                        var sql = aggregate
                        var arguments: StatementArguments = [render, entity, generation]
                        Self.restrict(to: range, &sql, &arguments)
                        let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
                        let high: Int64 = row?[2] ?? 0
                        let low: Int64 = row?[3] ?? 0
                        found.append(CheckedDigest(documents: row?[0] ?? 0, verified: row?[1] ?? 0, sum: CheckedDigest.sum(high: high, low: low)))
                    }
                    if last {
                        let keyless = try Int.fetchOne(
                            db, sql: "SELECT count(*) FROM documents WHERE entity = ? AND generation = ? AND order_key IS NULL",
                            arguments: [entity, generation]) ?? 0
                        found.append(CheckedDigest(documents: keyless, verified: 0, sum: 0))
                    }
                    return found
                }
                start += stripe.count
            } while start < ranges.count
            return digests
        } catch {
            throw IndexingError(.store, "cannot digest documents of \(entity) in the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    public func uncheckedDocuments(entity: String, render: Int64, range: OrderKeyRange?, content: Bool) async throws -> [ValidationDocument] {
        let columns = content ? "id, source, content, \(Self.contentHashText), metadata" : "id, source"
        var sql = "SELECT \(columns) FROM documents WHERE entity = ? AND \(Self.activeGeneration)"
        var arguments: StatementArguments = [entity, entity]
        if let range {
            sql += " AND (row_hash IS NULL OR render IS NOT ?)"
            arguments += [render]
            Self.restrict(to: range, &sql, &arguments)
        } else {
            sql += " AND order_key IS NULL"
        }
        let query = sql
        let values = arguments
        do {
            return try await pool.read { db in
                try Row.fetchAll(db, sql: query, arguments: values).map { row in
                    var document = ValidationDocument(id: row[0], sourceJSON: row[1])
                    if content {
                        document.content = row[2]
                        document.contentHash = row[3]
                        document.metadataJSON = row[4]
                    }
                    return document
                }
            }
        } catch {
            throw IndexingError(.store, "cannot read documents of \(entity) from the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    /// Pages by id through the unique index on (entity, id, generation); SQLite compares TEXT with
    /// the BINARY collation, which is the byte order of the UTF-8 text.
    public func validationPage(entity: String, after: String?, limit: Int, content: Bool) async throws -> [ValidationDocument] {
        let columns = content ? "id, source, content, \(Self.contentHashText), metadata" : "id, source"
        do {
            return try await pool.read { db in
                // Two forms, so that SQLite seeks the index to `after` (an `OR` would scan from the start).
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT \(columns) FROM documents
                         WHERE entity = ?\(after == nil ? "" : " AND id > ?") AND \(Self.activeGeneration) ORDER BY id LIMIT ?
                        """,
                    arguments: StatementArguments([entity] + (after.map { [$0] } ?? []) + [entity]) + [limit])
                var page: [ValidationDocument] = []
                page.reserveCapacity(limit)
                while let row = try rows.next() {
                    var document = ValidationDocument(id: row[0], sourceJSON: row[1])
                    if content {
                        document.content = row[2]
                        document.contentHash = row[3]
                        document.metadataJSON = row[4]
                    }
                    page.append(document)
                }
                return page
            }
        } catch {
            throw IndexingError(.store, "cannot read documents of \(entity) from the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    public func documentIDs(entity: String, after: String?, limit: Int) async throws -> [String] {
        do {
            return try await pool.read { db in
                try String.fetchAll(
                    db,
                    sql: "SELECT id FROM documents WHERE entity = ?\(after == nil ? "" : " AND id > ?") AND \(Self.activeGeneration) ORDER BY id LIMIT ?",
                    arguments: StatementArguments([entity] + (after.map { [$0] } ?? []) + [entity]) + [limit])
            }
        } catch {
            throw IndexingError(.store, "cannot read document ids of \(entity) from the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    public func validationDocuments(entity: String, ids: [String]) async throws -> [String: ValidationDocument] {
        guard !ids.isEmpty else { return [:] }
        do {
            return try await pool.read { db in
                var result: [String: ValidationDocument] = [:]
                var start = 0
                while start < ids.count {
                    let slice = Array(ids[start..<min(start + 500, ids.count)])
                    start += 500
                    let placeholders = Array(repeating: "?", count: slice.count).joined(separator: ",")
                    let rows = try Row.fetchCursor(
                        db,
                        sql: """
                            SELECT id, source, content, \(Self.contentHashText), metadata, lsn FROM documents
                             WHERE entity = ? AND id IN (\(placeholders)) AND \(Self.activeGeneration)
                            """,
                        arguments: StatementArguments([entity] + slice + [entity]))
                    while let row = try rows.next() {
                        let lsn: Int64 = row[5]
                        let document = ValidationDocument(
                            id: row[0], sourceJSON: row[1], content: row[2], contentHash: row[3], metadataJSON: row[4],
                            lsn: LSN(UInt64(bitPattern: lsn)))
                        result[document.id] = document
                    }
                }
                return result
            }
        } catch {
            throw IndexingError(.store, "cannot read documents of \(entity) from the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    public func saveValidation(_ record: ValidationRecord) async throws {
        do {
            let text = String(decoding: try Self.jobEncoder.encode(record), as: UTF8.self)
            try await pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO validations (id, entity, status, created_at, record) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record
                        """,
                    arguments: [record.id, record.entity, record.status.rawValue, record.createdAt, text])
            }
        } catch {
            throw IndexingError(.store, "cannot record validation \(record.id) in the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    public func validation(_ id: String) async throws -> ValidationRecord? {
        try await validationRecords(where: "id = ?", [id], order: "created_at DESC", limit: 1).first
    }

    public func validations(entity: String?, limit: Int) async throws -> [ValidationRecord] {
        if let entity { return try await validationRecords(where: "entity = ?", [entity], order: "created_at DESC, id DESC", limit: limit) }
        return try await validationRecords(where: "1 = 1", [], order: "created_at DESC, id DESC", limit: limit)
    }

    public func queuedValidations() async throws -> [ValidationRecord] {
        try await validationRecords(where: "status = 'queued'", [], order: "created_at ASC, id ASC", limit: 1_000)
    }

    private func validationRecords(where condition: String, _ arguments: [String], order: String, limit: Int) async throws -> [ValidationRecord] {
        do {
            return try await pool.read { db in
                try String.fetchAll(
                    db, sql: "SELECT record FROM validations WHERE \(condition) ORDER BY \(order) LIMIT \(max(0, limit))",
                    arguments: StatementArguments(arguments)
                ).compactMap { try? JSONDecoder().decode(ValidationRecord.self, from: Data($0.utf8)) }
            }
        } catch {
            throw IndexingError(.store, "cannot read validations from the index at \(configuration.path): \(error)", underlying: error)
        }
    }
}
