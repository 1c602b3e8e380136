import Foundation
import Postgres

/// The reads validation makes of the pgvector index, single-document lookups, and the validation
/// history.
extension PgVectorIndexStore {
    static func validationsSQL(_ s: String) -> String {
        """
        CREATE TABLE IF NOT EXISTS \(s).validations (
            id         text PRIMARY KEY,
            entity     text NOT NULL,
            status     text NOT NULL,
            created_at double precision NOT NULL,
            record     jsonb NOT NULL
        );
        CREATE INDEX IF NOT EXISTS validations_by_time ON \(s).validations (created_at);
        """
    }

    /// The documents' checks (``DocumentCheck``), the index validation digests them through, and
    /// the trigger that clears a document's row hash when anything but the pipeline writes it: the
    /// pipeline's write transactions set `tidemark.writing` (`SET LOCAL`), so an `INSERT` or
    /// `UPDATE` in any other transaction (an edit, a copied row, an older agent that does not keep
    /// checks) sends that document through the full comparison.
    static func checksSQL(_ s: String) -> String {
        let table = "\(s).documents"
        return """
            ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS row_hash bigint, ADD COLUMN IF NOT EXISTS order_key bytea,
                ADD COLUMN IF NOT EXISTS render bigint;
            CREATE INDEX IF NOT EXISTS documents_checks ON \(table) (entity, generation, order_key) INCLUDE (render, row_hash);
            CREATE OR REPLACE FUNCTION \(s).documents_written_outside() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                NEW.row_hash := NULL;
                RETURN NEW;
            END
            $body$;
            DROP TRIGGER IF EXISTS documents_edited ON \(table);
            DROP FUNCTION IF EXISTS \(s).documents_edited();
            DO $body$
            BEGIN
                -- The condition is the trigger's WHEN, evaluated without calling PL/pgSQL for the pipeline's rows.
                IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'documents_written_outside' AND tgrelid = \(literal(table))::regclass
                                  AND tgqual IS NOT NULL) THEN
                    DROP TRIGGER IF EXISTS documents_written_outside ON \(table);
                    CREATE TRIGGER documents_written_outside BEFORE INSERT OR UPDATE ON \(table) FOR EACH ROW
                        WHEN (NEW.row_hash IS NOT NULL AND current_setting('tidemark.writing', true) IS DISTINCT FROM 'on')
                        EXECUTE FUNCTION \(s).documents_written_outside();
                END IF;
            END
            $body$;
            """
    }

    private static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Ranges digested per statement (a `UNION ALL` of one aggregate per range).
    private static let rangesPerStatement = 64

    /// One aggregate per range over `documents_checks` (an index-only scan where the visibility map
    /// allows).
    public func checkedDigests(entity: String, render: Int64, ranges: [OrderKeyRange]) async throws -> [CheckedDigest]? {
        let s = self.s
        let active = activeGenerationSQL(1)
        var digests: [CheckedDigest] = []
        digests.reserveCapacity(ranges.count + 1)
        var start = 0
        repeat {
            let stripe = Array(ranges[start..<min(start + Self.rangesPerStatement, ranges.count)])
            let last = start + stripe.count == ranges.count
            var parameters: [String?] = [entity, String(render)]
            var parts: [String] = []
            for (offset, range) in stripe.enumerated() {
                var conditions: [String] = []
                Self.restrict(to: range, &conditions, &parameters)
                parts.append("""
                    SELECT \(offset), count(*), count(*) FILTER (WHERE render = $2::bigint AND row_hash IS NOT NULL),
                           coalesce(sum(row_hash >> 32) FILTER (WHERE render = $2::bigint), 0),
                           coalesce(sum(row_hash & 4294967295) FILTER (WHERE render = $2::bigint), 0)
                      FROM \(s).documents WHERE entity = $1 AND generation = \(active) AND \(conditions.joined(separator: " AND "))
                    """)
            }
            if last {
                parts.append("""
                    SELECT \(stripe.count), count(*), 0, 0, 0
                      FROM \(s).documents WHERE entity = $1 AND generation = \(active) AND order_key IS NULL
                    """)
            }
            let sql = parts.joined(separator: "\nUNION ALL ")
            let bound = parameters
            let rows = try await read { connection in try await connection.query(sql, bound).rows }
            var found = Array(repeating: CheckedDigest(documents: 0, verified: 0, sum: 0), count: stripe.count + (last ? 1 : 0))
            for row in rows {
                guard let offset = row[0].flatMap({ Int($0) }), offset < found.count else { continue }
                found[offset] = CheckedDigest(
                    documents: row[1].flatMap { Int($0) } ?? 0, verified: row[2].flatMap { Int($0) } ?? 0,
                    sum: CheckedDigest.sum(high: row[3].flatMap { Int64($0) } ?? 0, low: row[4].flatMap { Int64($0) } ?? 0))
            }
            digests += found
            start += stripe.count
        } while start < ranges.count
        return digests
    }

    public func uncheckedDocuments(entity: String, render: Int64, range: OrderKeyRange?, content: Bool) async throws -> [ValidationDocument] {
        let s = self.s
        let columns = content ? "id, source, content, content_hash, metadata::text" : "id, source"
        var parameters: [String?] = [entity]
        var conditions: [String] = []
        if let range {
            parameters.append(String(render))
            conditions.append("(row_hash IS NULL OR render IS DISTINCT FROM $2::bigint)")
            Self.restrict(to: range, &conditions, &parameters)
        } else {
            conditions.append("order_key IS NULL")
        }
        let sql = """
            SELECT \(columns) FROM \(s).documents
             WHERE entity = $1 AND generation = \(activeGenerationSQL(1)) AND \(conditions.joined(separator: " AND "))
            """
        let bound = parameters
        let rows = try await read { connection in try await connection.query(sql, bound).rows }
        return rows.map { Self.validationDocument($0, content: content) }
    }

    /// A document from a row of `id, source[, content, content_hash, metadata]`.
    static func validationDocument(_ row: [String?], content: Bool) -> ValidationDocument {
        var document = ValidationDocument(id: row[0] ?? "", sourceJSON: row[1] ?? "{}")
        if content {
            document.content = row[2]
            document.contentHash = row[3]
            document.metadataJSON = row[4]
        }
        return document
    }

    /// Appends the conditions that keep documents with an order key in `range`, binding its bounds.
    private static func restrict(to range: OrderKeyRange, _ conditions: inout [String], _ parameters: inout [String?]) {
        if let lower = range.lower {
            parameters.append(byteaText(lower))
            conditions.append("order_key > $\(parameters.count)::bytea")
        }
        if let upper = range.upper {
            parameters.append(byteaText(upper))
            conditions.append("order_key <= $\(parameters.count)::bytea")
        }
        if range.lower == nil && range.upper == nil { conditions.append("order_key IS NOT NULL") }
    }

    /// `bytea`'s hex input form.
    static func byteaText(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        text.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Pages by id through the primary key (entity, id, generation); ids are `COLLATE "C"`, the
    /// byte order of their UTF-8 text.
    public func validationPage(entity: String, after: String?, limit: Int, content: Bool) async throws -> [ValidationDocument] {
        let s = self.s
        let active = activeGenerationSQL(1)
        let columns = content ? "id, source, content, content_hash, metadata::text" : "id, source"
        let rows = try await read { connection in
            try await connection.query(
                """
                SELECT \(columns) FROM \(s).documents
                 WHERE entity = $1 AND generation = \(active) AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3
                """,
                [entity, after, String(limit)]
            ).rows
        }
        return rows.map { Self.validationDocument($0, content: content) }
    }

    public func documentIDs(entity: String, after: String?, limit: Int) async throws -> [String] {
        let s = self.s
        let active = activeGenerationSQL(1)
        return try await read { connection in
            try await connection.query(
                """
                SELECT id FROM \(s).documents
                 WHERE entity = $1 AND generation = \(active) AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3
                """,
                [entity, after, String(limit)]
            ).rows.compactMap { $0[0] }
        }
    }

    public func validationDocuments(entity: String, ids: [String]) async throws -> [String: ValidationDocument] {
        guard !ids.isEmpty else { return [:] }
        let s = self.s
        let active = activeGenerationSQL(1)
        let rows = try await read { connection in
            try await connection.query(
                """
                SELECT id, source, content, content_hash, metadata::text, lsn FROM \(s).documents
                 WHERE entity = $1 AND generation = \(active) AND id = ANY($2::text[])
                """,
                [entity, PostgresArrayLiteral.make(ids)]
            ).rows
        }
        var result: [String: ValidationDocument] = [:]
        for row in rows {
            guard let id = row[0] else { continue }
            result[id] = ValidationDocument(
                id: id, sourceJSON: row[1] ?? "{}", content: row[2], contentHash: row[3], metadataJSON: row[4], lsn: Self.lsn(row[5]))
        }
        return result
    }

    public func document(entity: String, id: String) async throws -> ExportedDocument? {
        let s = self.s
        let active = activeGenerationSQL(1)
        let row = try await read { connection in
            try await connection.query(
                """
                SELECT d.id, d.content, d.content_hash, d.metadata::text, d.model, d.lsn,
                       CASE WHEN d.chunk_hashes IS NULL THEN NULL ELSE
                            (SELECT array_agg(coalesce(c.text, '') ORDER BY c.seq) FROM \(s).chunks c
                              WHERE c.entity = d.entity AND c.id = d.id AND c.generation = d.generation) END
                  FROM \(s).documents d WHERE d.entity = $1 AND d.generation = \(active) AND d.id = $2
                """,
                [entity, id]
            ).rows.first
        }
        guard let row else { return nil }
        return ExportedDocument(
            id: row[0] ?? "", content: row[1] ?? "", contentHash: row[2] ?? "", metadata: FlatJSON.decode(row[3] ?? "{}"),
            model: row[4] ?? "", lsn: Self.lsn(row[5]).description, chunks: row[6].flatMap(PostgresArrayLiteral.parse))
    }

    public func saveValidation(_ record: ValidationRecord) async throws {
        let s = self.s
        let text = String(decoding: try Self.jobEncoder.encode(record), as: UTF8.self)
        try await write { connection in
            try connection.query(
                """
                INSERT INTO \(s).validations (id, entity, status, created_at, record) VALUES ($1, $2, $3, $4, $5::jsonb)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record
                """,
                [record.id, record.entity, record.status.rawValue, String(record.createdAt), text])
        }
    }

    public func validation(_ id: String) async throws -> ValidationRecord? {
        try await validationRecords(where: "id = $1", [id], order: "created_at DESC", limit: 1).first
    }

    public func validations(entity: String?, limit: Int) async throws -> [ValidationRecord] {
        if let entity { return try await validationRecords(where: "entity = $1", [entity], order: "created_at DESC, id DESC", limit: limit) }
        return try await validationRecords(where: "true", [], order: "created_at DESC, id DESC", limit: limit)
    }

    public func queuedValidations() async throws -> [ValidationRecord] {
        try await validationRecords(where: "status = 'queued'", [], order: "created_at ASC, id ASC", limit: 1_000)
    }

    private func validationRecords(where condition: String, _ parameters: [String?], order: String, limit: Int) async throws -> [ValidationRecord] {
        let s = self.s
        let rows = try await read { connection in
            try await connection.query(
                "SELECT record::text FROM \(s).validations WHERE \(condition) ORDER BY \(order) LIMIT \(max(0, limit))", parameters
            ).rows
        }
        return rows.compactMap { row in row[0].flatMap { try? JSONDecoder().decode(ValidationRecord.self, from: Data($0.utf8)) } }
    }
}
