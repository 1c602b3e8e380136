import Embedding
import Foundation
import Postgres

extension PgVectorIndexStore {
    /// One document row to write for one generation, with its chunks' vectors (`nil`: keep the
    /// stored vector of a chunk with the same hash and model).
    struct Row: Sendable {
        var generation: Int
        var upsert: EmbeddedDocument
    }

    public func apply(_ batch: IndexBatch, state: [String: String]) async throws {
        let s = self.s
        // The COPY input is encoded before the transaction opens, so the transaction holds only the
        // server's work; the generations it was encoded for are read again inside, and the input is
        // encoded anew when they changed meanwhile (a rebuild started or finished by this agent, or a
        // rollback by a second process such as `tidemark job ID rollback` without the API): rare.
        var staged: StagedUpserts?
        if Self.hasUpserts(batch) {
            // On the read connection: no transaction on the writer, which the check inside covers.
            let maintained = try await read { connection in
                try await Self.maintainedGenerations(batch, schema: s, on: connection)
            }
            staged = Self.stage(batch, maintained: maintained)
        }
        let prepared = staged
        try await write { connection in
            try Self.apply(batch, state: state, schema: s, on: connection, staged: prepared)
        }
    }

    /// A batch's upserts encoded for binary COPY, for the generations in `maintained`.
    struct StagedUpserts: Sendable {
        var maintained: [String: [Int]]
        var documents: [UInt8]
        var chunks: [UInt8]
        /// Whether some chunk keeps its stored vector (a `NULL` embedding in the staging rows).
        var keeps: Bool
    }

    /// The whole batch in the caller's transaction: the order of the SQLite store — truncates,
    /// partition truncates, deletes, upserts (a rebuild's chunk rows first), sweeps, generation
    /// changes, dead letters, jobs, state.
    static func apply(
        _ batch: IndexBatch, state: [String: String], schema s: String, on connection: isolated PostgresConnection,
        staged: StagedUpserts? = nil
    ) throws {
        // Documents written in this transaction keep their checks (see `checksSQL`).
        try connection.simpleQuery("SET LOCAL tidemark.writing = on")
        for entity in batch.truncates {
            try connection.query("DELETE FROM \(s).chunks WHERE entity = $1", [entity])
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1", [entity])
        }
        for (entity, partitions) in batch.partitionTruncates where !partitions.isEmpty {
            let list = PostgresArrayLiteral.make(partitions)
            try connection.query(
                """
                DELETE FROM \(s).chunks c USING \(s).documents d
                 WHERE d.entity = $1 AND d.partition = ANY($2::text[])
                   AND c.entity = d.entity AND c.id = d.id AND c.generation = d.generation
                """,
                [entity, list])
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1 AND partition = ANY($2::text[])", [entity, list])
        }
        for (entity, ids) in batch.deletes where !ids.isEmpty {
            let list = PostgresArrayLiteral.make(ids)
            try connection.query("DELETE FROM \(s).chunks WHERE entity = $1 AND id = ANY($2::text[])", [entity, list])
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1 AND id = ANY($2::text[])", [entity, list])
        }
        try upsert(batch, schema: s, on: connection, staged: staged)
        for (entity, lsn) in batch.sweepBefore {
            let before = lsnText(lsn)
            try connection.query(
                """
                DELETE FROM \(s).chunks c USING \(s).documents d
                 WHERE d.entity = $1 AND d.lsn < $2 AND c.entity = d.entity AND c.id = d.id AND c.generation = d.generation
                """,
                [entity, before])
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1 AND lsn < $2", [entity, before])
        }
        for (entity, sweep) in batch.generationSweeps {
            let parameters = [entity, String(sweep.generation), lsnText(sweep.before)]
            try connection.query(
                """
                DELETE FROM \(s).chunks c USING \(s).documents d
                 WHERE d.entity = $1 AND d.generation = $2 AND d.lsn < $3
                   AND c.entity = d.entity AND c.id = d.id AND c.generation = d.generation
                """,
                parameters)
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1 AND generation = $2 AND lsn < $3", parameters)
        }
        var stateEntries = state
        for (entity, change) in batch.generationChanges {
            stateEntries["generation.\(entity).active"] = String(change.active)
            stateEntries["generation.\(entity).maintained"] = change.maintained.map(String.init).joined(separator: ",")
            let keep = PostgresArrayLiteral.make(change.maintained.map(String.init))
            try connection.query("DELETE FROM \(s).chunks WHERE entity = $1 AND generation <> ALL($2::integer[])", [entity, keep])
            try connection.query("DELETE FROM \(s).documents WHERE entity = $1 AND generation <> ALL($2::integer[])", [entity, keep])
        }
        for (entity, ids) in batch.resolved where !ids.isEmpty {
            try connection.query(
                "DELETE FROM \(s).dead_letters WHERE entity = $1 AND id = ANY($2::text[])", [entity, PostgresArrayLiteral.make(ids)])
        }
        for letter in batch.deadLetters {
            try connection.query(
                """
                INSERT INTO \(s).dead_letters (entity, id, stage, error, lsn, attempts, first_failed_at, last_failed_at)
                VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
                ON CONFLICT (entity, id) DO UPDATE SET
                    stage = excluded.stage, error = excluded.error, lsn = excluded.lsn,
                    attempts = dead_letters.attempts + 1, last_failed_at = excluded.last_failed_at
                """,
                [letter.entity, letter.id, letter.stage, letter.error, lsnText(letter.lsn), String(letter.firstFailedAt), String(letter.lastFailedAt)])
        }
        for job in batch.jobs { try writeJob(job, schema: s, on: connection, overwritingFinished: false) }
        if !stateEntries.isEmpty {
            let keys = stateEntries.keys.sorted()
            try connection.query(
                """
                INSERT INTO \(s).state (key, value) SELECT * FROM unnest($1::text[], $2::text[])
                ON CONFLICT (key) DO UPDATE SET value = excluded.value
                """,
                [PostgresArrayLiteral.make(keys), PostgresArrayLiteral.make(keys.map { stateEntries[$0] ?? "" })])
        }
    }

    static func hasUpserts(_ batch: IndexBatch) -> Bool {
        !batch.upserts.isEmpty || batch.targetedUpserts.values.contains(where: { !$0.isEmpty })
    }

    /// The generations each entity's general upserts go to (the entities with general upserts only).
    static func maintainedGenerations(_ batch: IndexBatch, schema s: String, on connection: isolated PostgresConnection) throws -> [String: [Int]] {
        let entities = Set(batch.upserts.map(\.document.entity)).sorted()
        var maintained: [String: [Int]] = [:]
        guard !entities.isEmpty else { return maintained }
        let keys = entities.map { "generation.\($0).maintained" }
        let rows = try connection.query("SELECT key, value FROM \(s).state WHERE key = ANY($1::text[])", [PostgresArrayLiteral.make(keys)]).rows
        for row in rows {
            guard let key = row[0], let value = row[1] else { continue }
            let entity = String(key.dropFirst("generation.".count).dropLast(".maintained".count))
            maintained[entity] = value.split(separator: ",").compactMap { Int($0) }
        }
        return maintained
    }

    /// The COPY input of the batch's upserts.
    static func stage(_ batch: IndexBatch, maintained: [String: [Int]]) -> StagedUpserts {
        // One row per (entity, id, generation): a rebuild chunk's row and a stream change of the
        // same document may both target a generation; the newer one wins, the stream change on a tie
        // (as in the SQLite store, which writes it last).
        var rows: [DocumentKey: [Int: Row]] = [:]
        func add(_ upsert: EmbeddedDocument, generation: Int) {
            let key = upsert.document.key
            if let existing = rows[key]?[generation], existing.upsert.document.lsn > upsert.document.lsn { return }
            rows[key, default: [:]][generation] = Row(generation: generation, upsert: upsert)
        }
        for (generation, upserts) in batch.targetedUpserts.sorted(by: { $0.key < $1.key }) {
            for upsert in upserts { add(upsert, generation: generation) }
        }
        for upsert in batch.upserts {
            let generations = maintained[upsert.document.entity].flatMap { $0.isEmpty ? nil : $0 } ?? [0]
            for generation in generations { add(upsert, generation: generation) }
        }
        var documents = CopyBinaryEncoder(reservingCapacity: 1 << 20)
        var chunks = CopyBinaryEncoder(reservingCapacity: 4 << 20)
        var keeps = false
        for (_, byGeneration) in rows {
            for (_, row) in byGeneration {
                let document = row.upsert.document
                let several = document.chunks.count > 1
                documents.beginRow(fields: 14)
                documents.text(document.entity)
                documents.text(document.id)
                documents.int32(Int32(truncatingIfNeeded: row.generation))
                documents.text(document.content)
                documents.text(document.contentHash)
                documents.jsonb(FlatJSON.encode(document.metadata))
                documents.text(FlatJSON.encode(document.sourceValues))
                documents.text(row.upsert.model)
                documents.int64(Int64(bitPattern: document.lsn.rawValue))
                documents.text(document.partition)
                documents.text(several ? document.chunks.map(\.hash).joined(separator: ",") : nil)
                documents.int64(document.check?.rowHash)
                documents.bytea(document.check?.orderKey)
                documents.int64(document.check?.render)
                for (seq, chunk) in document.chunks.enumerated() {
                    chunks.beginRow(fields: 9)
                    chunks.text(document.entity)
                    chunks.text(document.id)
                    chunks.int32(Int32(truncatingIfNeeded: row.generation))
                    chunks.int32(Int32(truncatingIfNeeded: seq))
                    chunks.text(chunk.hash)
                    chunks.text(row.upsert.model)
                    chunks.text(several ? chunk.text : nil)
                    if seq < row.upsert.vectors.count, let vector = row.upsert.vectors[seq] {
                        // pgvector's binary form: dimensions (int16), unused (int16), float4 values.
                        chunks.beginField(length: 4 + 4 * vector.count)
                        chunks.append16(UInt16(truncatingIfNeeded: vector.count))
                        chunks.append16(0)
                        chunks.appendFloat32s(vector.allSatisfy(\.isFinite) ? vector : vector.map { $0.isFinite ? $0 : 0 })
                    } else {
                        chunks.null()
                        keeps = true
                    }
                    chunks.int64(Int64(bitPattern: document.lsn.rawValue))
                }
            }
        }
        return StagedUpserts(maintained: maintained, documents: documents.finished(), chunks: chunks.finished(), keeps: keeps)
    }

    /// The upserts: staged through binary COPY, stored vectors filled in for kept chunks, then
    /// merged — a document is never replaced by an older version (lsn), and a chunk whose hash and
    /// model did not change is not rewritten (no new row version, no HNSW insert).
    ///
    /// - Throws: ``MissingStoredVectors`` (the transaction then rolls back) when a kept chunk has no
    ///   stored vector any more and no newer version of its document is stored.
    static func upsert(_ batch: IndexBatch, schema s: String, on connection: isolated PostgresConnection, staged: StagedUpserts?) throws {
        guard hasUpserts(batch) else { return }
        let maintained = try maintainedGenerations(batch, schema: s, on: connection)
        let input = staged.flatMap { $0.maintained == maintained ? $0 : nil } ?? stage(batch, maintained: maintained)
        let keeps = input.keeps
        try connection.simpleQuery("""
            CREATE TEMP TABLE IF NOT EXISTS tidemark_staged_documents (
                entity text, id text COLLATE "C", generation integer, content text, content_hash text, metadata jsonb,
                source text, model text, lsn bigint, partition text, chunk_hashes text,
                row_hash bigint, order_key bytea, render bigint
            ) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS tidemark_staged_chunks (
                entity text, id text COLLATE "C", generation integer, seq integer, hash text, model text, text text,
                embedding vector, lsn bigint
            ) ON COMMIT DELETE ROWS;
            """)
        try connection.copyIn(
            """
            COPY tidemark_staged_documents (
                entity, id, generation, content, content_hash, metadata, source, model, lsn, partition, chunk_hashes, row_hash, order_key, render
            ) FROM STDIN (FORMAT binary)
            """,
            data: input.documents)
        try connection.copyIn(
            "COPY tidemark_staged_chunks (entity, id, generation, seq, hash, model, text, embedding, lsn) FROM STDIN (FORMAT binary)",
            data: input.chunks)
        if keeps {
            // A kept chunk takes the stored vector of a chunk of the document with its hash and model
            // (any generation).
            try connection.query("""
                UPDATE tidemark_staged_chunks s SET embedding = c.embedding
                  FROM \(s).chunks c
                 WHERE s.embedding IS NULL AND c.entity = s.entity AND c.id = s.id AND c.hash = s.hash AND c.model = s.model
                """)
            let missing = try connection.query("""
                SELECT DISTINCT s.entity, s.id FROM tidemark_staged_chunks s
                 WHERE s.embedding IS NULL
                   AND NOT EXISTS (SELECT 1 FROM \(s).documents x
                                    WHERE x.entity = s.entity AND x.id = s.id AND x.generation = s.generation AND x.lsn > s.lsn)
                """).rows
            if !missing.isEmpty {
                throw MissingStoredVectors(documents: Set(missing.map { DocumentKey(entity: $0[0] ?? "", id: $0[1] ?? "") }))
            }
            // The rest have a newer version stored: nothing of them is written.
            try connection.query("""
                DELETE FROM tidemark_staged_documents d USING tidemark_staged_chunks s
                 WHERE s.embedding IS NULL AND d.entity = s.entity AND d.id = s.id AND d.generation = s.generation
                """)
        }
        try connection.query("""
            WITH written AS (
                INSERT INTO \(s).documents AS d (
                    entity, id, generation, content, content_hash, metadata, source, model, lsn, updated_at, partition, chunk_hashes,
                    row_hash, order_key, render)
                SELECT entity, id, generation, content, content_hash, metadata, source, model, lsn, now(), partition,
                       string_to_array(chunk_hashes, ','), row_hash, order_key, render
                  FROM tidemark_staged_documents
                ON CONFLICT (entity, id, generation) DO UPDATE SET
                    content = excluded.content, content_hash = excluded.content_hash, metadata = excluded.metadata,
                    source = excluded.source, model = excluded.model, lsn = excluded.lsn, updated_at = excluded.updated_at,
                    partition = excluded.partition, chunk_hashes = excluded.chunk_hashes,
                    row_hash = excluded.row_hash, order_key = excluded.order_key, render = excluded.render
                 WHERE excluded.lsn >= d.lsn
                RETURNING d.entity, d.id, d.generation, coalesce(cardinality(d.chunk_hashes), 1) AS chunk_count
            ), merged AS (
                INSERT INTO \(s).chunks AS c (entity, id, generation, seq, hash, model, text, embedding)
                SELECT s.entity, s.id, s.generation, s.seq, s.hash, s.model, s.text, s.embedding
                  FROM tidemark_staged_chunks s JOIN written w ON w.entity = s.entity AND w.id = s.id AND w.generation = s.generation
                ON CONFLICT (entity, id, generation, seq) DO UPDATE SET
                    hash = excluded.hash, model = excluded.model, text = excluded.text, embedding = excluded.embedding
                 WHERE c.hash <> excluded.hash OR c.model <> excluded.model OR c.text IS DISTINCT FROM excluded.text
                RETURNING 1
            )
            DELETE FROM \(s).chunks c USING written w
             WHERE c.entity = w.entity AND c.id = w.id AND c.generation = w.generation AND c.seq >= w.chunk_count
            """)
    }

    // MARK: - Jobs

    static let jobEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Writes a job record; the operator's `control` column is left as it is. A progress write
    /// (`overwritingFinished` false) never changes the status of a finished job (see the SQLite
    /// store's `writeJob` for why).
    static func writeJob(_ job: JobRecord, schema s: String, on connection: isolated PostgresConnection, overwritingFinished: Bool) throws {
        let record = String(decoding: try jobEncoder.encode(job), as: UTF8.self)
        let finished = JobRecord.Status.allCases.filter { !$0.isActive }.map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let guardFinished = overwritingFinished ? "" : """
             WHERE jobs.record->>'status' NOT IN (\(finished)) OR jobs.record->>'status' = excluded.record->>'status'
            """
        try connection.query(
            """
            INSERT INTO \(s).jobs AS jobs (id, entity, control, created_at, record) VALUES ($1, $2, $3, $4, $5::jsonb)
            ON CONFLICT (id) DO UPDATE SET record = excluded.record\(guardFinished)
            """,
            [job.id, job.entity, job.control.rawValue, String(job.createdAt), record])
    }

    public func saveJob(_ job: JobRecord) async throws {
        let s = self.s
        try await write { connection in try Self.writeJob(job, schema: s, on: connection, overwritingFinished: true) }
    }

    public func setJobControl(_ id: String, _ control: JobRecord.Control) async throws -> Bool {
        let s = self.s
        return try await write { connection in
            try connection.query("UPDATE \(s).jobs SET control = $1 WHERE id = $2", [control.rawValue, id]).affectedRows > 0
        }
    }

    public func job(_ id: String) async throws -> JobRecord? {
        try await jobs(where: "id = $1", [id]).first
    }

    public func jobs(entity: String?) async throws -> [JobRecord] {
        if let entity { return try await jobs(where: "entity = $1", [entity]) }
        return try await jobs(where: "true", [])
    }

    public func activeJobs() async throws -> [JobRecord] {
        try await jobs(where: "record->>'status' IN ('queued', 'running', 'paused')", [])
    }

    private func jobs(where condition: String, _ parameters: [String?]) async throws -> [JobRecord] {
        let s = self.s
        let rows = try await read { connection in
            try await connection.query("SELECT record::text, control FROM \(s).jobs WHERE \(condition) ORDER BY created_at DESC, id", parameters).rows
        }
        return rows.compactMap { row in
            guard let text = row[0], var job = try? JSONDecoder().decode(JobRecord.self, from: Data(text.utf8)) else { return nil }
            job.control = row[1].flatMap(JobRecord.Control.init(rawValue:)) ?? .run
            return job
        }
    }
}
