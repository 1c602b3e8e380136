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
        return rows.map { row in
            var document = ValidationDocument(id: row[0] ?? "", sourceJSON: row[1] ?? "{}")
            if content {
                document.content = row[2]
                document.contentHash = row[3]
                document.metadataJSON = row[4]
            }
            return document
        }
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
