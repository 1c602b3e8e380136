import CSQLite
import Embedding
import Foundation
import GRDB
import Logging
import Postgres

/// The embedded index: one SQLite file (WAL mode) holding documents with their vectors, state (the
/// checkpoint) and dead letters. A document of one chunk (most) keeps its vector in its own row
/// (`embedding`); the chunks of longer documents, with their vectors, are rows of `chunks`.
///
/// Writes go through one serial writer; readers (search, export, another process running
/// `tidemark search`) never block it. Search is an exact cosine scan in SIMD lanes, streaming rows so
/// memory stays flat whatever the entity's size.
public final class SQLiteIndexStore: IndexStore {
    public struct Configuration: Sendable {
        /// Path of the database file; created if missing.
        public var path: String
        /// `synchronous = FULL` survives power loss; `NORMAL` (default) survives any process crash
        /// and is several times faster in WAL mode.
        public var synchronousFull = false

        public init(path: String, synchronousFull: Bool = false) {
            self.path = path
            self.synchronousFull = synchronousFull
        }
    }

    public let configuration: Configuration
    /// Internal so that facets in other files (`SQLiteIndexStore+Validation.swift`) can read it.
    let pool: DatabasePool
    private let logger: Logger
    /// Copies the log into the file beside the writer (`WALCheckpointer`).
    private let checkpointer: WALCheckpointer

    deinit { checkpointer.stop() }

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var config = Configuration.grdb(synchronousFull: configuration.synchronousFull)
        config.label = "tidemark.index"
        do {
            let directory = (configuration.path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            pool = try DatabasePool(path: configuration.path, configuration: config)
            if configuration.synchronousFull {
                // GRDB sets `synchronous = NORMAL` on the writer when it turns WAL mode on, after
                // `prepareDatabase`: ask again.
                try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            }
            try pool.write { db in try Self.migrate(db) }
            checkpointer = try WALCheckpointer(path: configuration.path, configuration: config, logger: logger)
        } catch {
            throw IndexingError(.store, "cannot open the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    private static func migrate(_ db: Database) throws {
        // Files from before generations: move the documents into generation 0.
        let columns = try columnNames("documents", db)
        if !columns.isEmpty && !columns.contains("generation") {
            try db.execute(sql: "ALTER TABLE documents RENAME TO documents_v1")
        }
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS documents (
                entity       TEXT NOT NULL,
                generation   INTEGER NOT NULL DEFAULT 0,
                id           TEXT NOT NULL,
                content      TEXT NOT NULL,
                content_hash TEXT NOT NULL,
                metadata     TEXT NOT NULL,
                source       TEXT NOT NULL,
                model        TEXT NOT NULL,
                lsn          INTEGER NOT NULL,
                updated_at   REAL NOT NULL,
                partition    TEXT,
                chunk_hashes TEXT,
                UNIQUE (entity, id, generation)
            );
            CREATE TABLE IF NOT EXISTS chunks (
                entity     TEXT NOT NULL,
                id         TEXT NOT NULL,
                generation INTEGER NOT NULL,
                seq        INTEGER NOT NULL,
                hash       TEXT NOT NULL,
                model      TEXT NOT NULL,
                text       TEXT,
                vector     BLOB NOT NULL,
                UNIQUE (entity, id, generation, seq)
            );
            CREATE TABLE IF NOT EXISTS state (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS jobs (
                id         TEXT PRIMARY KEY,
                entity     TEXT NOT NULL,
                control    TEXT NOT NULL DEFAULT 'run',
                created_at REAL NOT NULL,
                record     TEXT NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS dead_letters (
                entity          TEXT NOT NULL,
                id              TEXT NOT NULL,
                stage           TEXT NOT NULL,
                error           TEXT NOT NULL,
                lsn             INTEGER NOT NULL,
                attempts        INTEGER NOT NULL,
                first_failed_at REAL NOT NULL,
                last_failed_at  REAL NOT NULL,
                PRIMARY KEY (entity, id)
            ) WITHOUT ROWID;
            """)
        var current = try columnNames("documents", db)
        // Files from before partitions: the leaf partition of each document's row (NULL: unknown).
        if !current.contains("partition") {
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN partition TEXT")
        }
        if !current.contains("chunk_hashes") {
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN chunk_hashes TEXT")
        }
        // Files from before document checks: existing documents have none (validation reads them in full).
        for column in ["row_hash INTEGER", "order_key BLOB", "render INTEGER"]
        where !current.contains(String(column.prefix { $0 != " " })) {
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN \(column)")
        }
        // A one-chunk document's vector (the others' are in `chunks`), last so that reads of the
        // other columns never step over it.
        if !current.contains("embedding") {
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN embedding BLOB")
        }
        try migrateChecks(db)
        // Files from before chunks: each document's vector becomes its one chunk.
        if current.contains("vector") {
            try db.execute(sql: """
                INSERT OR IGNORE INTO chunks (entity, id, generation, seq, hash, model, text, vector)
                SELECT entity, id, generation, 0, content_hash, model, NULL, vector FROM documents;
                ALTER TABLE documents DROP COLUMN vector;
                """)
            current = try columnNames("documents", db)
        }
        try migrateValidations(db)
        if try db.tableExists("documents_v1") {
            try db.execute(sql: """
                INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at)
                SELECT entity, 0, id, content, content_hash, metadata, source, model, lsn, updated_at FROM documents_v1;
                INSERT OR IGNORE INTO chunks (entity, id, generation, seq, hash, model, text, vector)
                SELECT entity, id, 0, 0, content_hash, model, NULL, vector FROM documents_v1;
                DROP TABLE documents_v1;
                """)
        }
        try migrateOneChunkVectors(db)
    }

    /// Files from before one-chunk vectors moved into `documents`: a document of one chunk kept its
    /// vector as that chunk's row. Moves it into the document's `embedding` (once per file), so that
    /// `chunks` holds only documents of several chunks. (The store's connections run without
    /// triggers: the documents keep their checks.)
    private static func migrateOneChunkVectors(_ db: Database) throws {
        let done = "layout.one_chunk_vectors"
        guard try String.fetchOne(db, sql: "SELECT value FROM state WHERE key = ?", arguments: [done]) == nil else { return }
        try db.execute(sql: """
            UPDATE documents SET embedding = (
                SELECT c.vector FROM chunks c
                 WHERE c.entity = documents.entity AND c.id = documents.id AND c.generation = documents.generation AND c.seq = 0)
             WHERE chunk_hashes IS NULL AND embedding IS NULL;
            DELETE FROM chunks WHERE (entity, id, generation) IN (SELECT entity, id, generation FROM documents WHERE chunk_hashes IS NULL);
            """)
        try db.execute(sql: "INSERT INTO state (key, value) VALUES (?, '1')", arguments: [done])
    }

    private static func columnNames(_ table: String, _ db: Database) throws -> [String] {
        try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))").map { row -> String in row["name"] }
    }

    /// SQL condition selecting the active generation of the entity bound as the next argument.
    static let activeGeneration = "generation = coalesce((SELECT CAST(value AS INTEGER) FROM state WHERE key = 'generation.' || ? || '.active'), 0)"

    /// The generations written by the pipeline for `entity` (the active one, a rebuild in progress,
    /// and the previous one kept for rollback).
    static func maintainedGenerations(_ entity: String, _ db: Database) throws -> [Int] {
        let text = try String.fetchOne(db, sql: "SELECT value FROM state WHERE key = ?", arguments: ["generation.\(entity).maintained"])
        let generations = (text ?? "").split(separator: ",").compactMap { Int($0) }
        return generations.isEmpty ? [0] : generations
    }

    /// The generation search and export read for `entity`.
    public func activeGeneration(_ entity: String) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM state WHERE key = ?", arguments: ["generation.\(entity).active"]) ?? 0
        }
    }

    /// The generations the pipeline currently writes for `entity`.
    public func generations(_ entity: String) async throws -> [Int] {
        try await pool.read { db in try Self.maintainedGenerations(entity, db) }
    }

    // MARK: - Writes

    public func apply(_ batch: IndexBatch, state: [String: String]) async throws {
        do {
            try await pool.write { db in
                let now = Date().timeIntervalSince1970
                for entity in batch.truncates {
                    try db.execute(sql: "DELETE FROM chunks WHERE entity = ?", arguments: [entity])
                    try db.execute(sql: "DELETE FROM documents WHERE entity = ?", arguments: [entity])
                }
                for (entity, partitions) in batch.partitionTruncates {
                    let chunks = try db.cachedStatement(sql: """
                        DELETE FROM chunks WHERE entity = ? AND (id, generation) IN (SELECT id, generation FROM documents WHERE entity = ? AND partition = ?)
                        """)
                    let documents = try db.cachedStatement(sql: "DELETE FROM documents WHERE entity = ? AND partition = ?")
                    for partition in partitions {
                        try chunks.execute(arguments: [entity, entity, partition])
                        try documents.execute(arguments: [entity, partition])
                    }
                }
                for (entity, ids) in batch.deletes {
                    let chunks = try db.cachedStatement(sql: "DELETE FROM chunks WHERE entity = ? AND id = ?")
                    let documents = try db.cachedStatement(sql: "DELETE FROM documents WHERE entity = ? AND id = ?")
                    for id in ids {
                        try chunks.execute(arguments: [entity, id])
                        try documents.execute(arguments: [entity, id])
                    }
                }
                var maintained: [String: [Int]] = [:]
                func generations(_ entity: String) throws -> [Int] {
                    if let known = maintained[entity] { return known }
                    let found = try Self.maintainedGenerations(entity, db)
                    maintained[entity] = found
                    return found
                }
                // A document is never replaced by an older version (lsn): a stream change that preceded
                // a rebuild chunk's high watermark in the same batch must not overwrite the chunk's row.
                let upsertDocument = try db.cachedStatement(sql: """
                    INSERT INTO documents (
                        entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at, partition, chunk_hashes,
                        embedding, row_hash, order_key, render)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (entity, id, generation) DO UPDATE SET
                        content = excluded.content, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, source = excluded.source, model = excluded.model,
                        lsn = excluded.lsn, updated_at = excluded.updated_at,
                        partition = excluded.partition, chunk_hashes = excluded.chunk_hashes, embedding = excluded.embedding,
                        row_hash = excluded.row_hash, order_key = excluded.order_key, render = excluded.render
                     WHERE excluded.lsn >= documents.lsn
                    """)
                let upsertChunk = try db.cachedStatement(sql: """
                    INSERT INTO chunks (entity, id, generation, seq, hash, model, text, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (entity, id, generation, seq) DO UPDATE SET
                        hash = excluded.hash, model = excluded.model, text = excluded.text, vector = excluded.vector
                    """)
                let trimChunks = try db.cachedStatement(sql: "DELETE FROM chunks WHERE entity = ? AND id = ? AND generation = ? AND seq >= ?")
                // A document of one chunk may have had several: its chunk rows go (its vector is the
                // row's own now). No chunk rows at all (content never needed chunking): nothing to trim.
                var mayHaveChunks = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM chunks)") ?? true
                // A chunk whose text and model are stored already (in any generation, the target first)
                // keeps that vector: a one-chunk document's is its `embedding`, the others' in `chunks`.
                let storedEmbedding = try db.cachedStatement(sql: """
                    SELECT embedding FROM documents WHERE entity = ? AND id = ? AND content_hash IN (?, ?) AND model = ? AND embedding IS NOT NULL
                     ORDER BY generation = ? DESC LIMIT 1
                    """)
                let storedChunk = try db.cachedStatement(sql: """
                    SELECT vector FROM chunks WHERE entity = ? AND id = ? AND hash = ? AND model = ? ORDER BY generation = ? DESC LIMIT 1
                    """)
                func storedVector(_ document: Document, _ hash: String, _ model: String, _ generation: Int) throws -> Data? {
                    // A content hash is stored as bytes, or as text by an earlier version.
                    let inDocuments: StatementArguments = [document.entity, document.id, Self.storedHash(hash), hash, model, generation]
                    return try Data.fetchOne(storedEmbedding, arguments: inDocuments)
                        ?? Data.fetchOne(storedChunk, arguments: [document.entity, document.id, hash, model, generation])
                }
                let newerDocument = try db.cachedStatement(sql: """
                    SELECT EXISTS (SELECT 1 FROM documents WHERE entity = ? AND id = ? AND generation = ? AND lsn > ?)
                    """)
                var vectorless = Set<DocumentKey>()
                func write(_ upsert: EmbeddedDocument, into targets: [Int]) throws {
                    let document = upsert.document
                    let metadata = Self.json(document.metadata)
                    let source = Self.json(document.sourceValues)
                    let lsn = Int64(bitPattern: document.lsn.rawValue)
                    let chunks = document.chunks
                    let several = chunks.count > 1
                    let chunkHashes: String? = several ? chunks.map(\.hash).joined(separator: ",") : nil
                    for generation in targets {
                        var blobs: [Data] = []
                        blobs.reserveCapacity(chunks.count)
                        for (index, chunk) in chunks.enumerated() {
                            if index < upsert.vectors.count, let vector = upsert.vectors[index] {
                                blobs.append(Self.blob(vector))
                            } else if let stored = try storedVector(document, chunk.hash, upsert.model, generation) {
                                blobs.append(stored)
                            } else {
                                break
                            }
                        }
                        guard blobs.count == chunks.count else {
                            // The stored vector is gone (deleted or truncated since the pipeline
                            // looked): never write nothing — unless a newer version is stored anyway.
                            let newer = try Bool.fetchOne(newerDocument, arguments: [document.entity, document.id, generation, lsn]) ?? false
                            if !newer { vectorless.insert(document.key) }
                            continue
                        }
                        try upsertDocument.execute(arguments: [
                            document.entity, generation, document.id, document.content, Self.storedHash(document.contentHash), metadata, source,
                            upsert.model, lsn, now, document.partition, chunkHashes, several ? nil : blobs[0],
                            document.check?.rowHash, document.check.map { Data($0.orderKey) }, document.check?.render,
                        ])
                        guard db.changesCount > 0 else { continue }  // a newer version is stored
                        guard several else {
                            if mayHaveChunks { try trimChunks.execute(arguments: [document.entity, document.id, generation, 0]) }
                            continue
                        }
                        mayHaveChunks = true
                        for (index, chunk) in chunks.enumerated() {
                            try upsertChunk.execute(arguments: [
                                document.entity, document.id, generation, index, chunk.hash, upsert.model, several ? chunk.text : nil, blobs[index],
                            ])
                        }
                        try trimChunks.execute(arguments: [document.entity, document.id, generation, chunks.count])
                    }
                }
                // Rows of a rebuild's chunks go to the generation being built; the stream's changes of
                // the same batch go to every generation.
                for (generation, upserts) in batch.targetedUpserts.sorted(by: { $0.key < $1.key }) {
                    for upsert in upserts { try write(upsert, into: [generation]) }
                }
                for upsert in batch.upserts {
                    try write(upsert, into: try generations(upsert.document.entity))
                }
                if !vectorless.isEmpty { throw MissingStoredVectors(documents: vectorless) }
                // Sweeps go one generation at a time through `documents_checks`, which carries each
                // document's LSN: they read the index and the rows they remove, not every row.
                func sweep(_ entity: String, generation: Int, before lsn: LSN) throws {
                    let before = Int64(bitPattern: lsn.rawValue)
                    if mayHaveChunks {
                        try db.execute(
                            sql: """
                                DELETE FROM chunks WHERE entity = ? AND generation = ?
                                   AND id IN (SELECT id FROM documents WHERE entity = ? AND generation = ? AND lsn < ?)
                                """,
                            arguments: [entity, generation, entity, generation, before])
                    }
                    try db.execute(
                        sql: "DELETE FROM documents WHERE entity = ? AND generation = ? AND lsn < ?", arguments: [entity, generation, before])
                }
                for (entity, lsn) in batch.sweepBefore {
                    // Every generation that has documents, each found with one seek.
                    var generation = Int.min
                    while let next = try Int.fetchOne(
                        db, sql: "SELECT generation FROM documents WHERE entity = ? AND generation > ? ORDER BY generation LIMIT 1",
                        arguments: [entity, generation])
                    {
                        try sweep(entity, generation: next, before: lsn)
                        generation = next
                    }
                }
                for (entity, generationSweep) in batch.generationSweeps {
                    try sweep(entity, generation: generationSweep.generation, before: generationSweep.before)
                }
                for (entity, change) in batch.generationChanges {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?), (?, ?)",
                        arguments: [
                            "generation.\(entity).active", String(change.active),
                            "generation.\(entity).maintained", change.maintained.map(String.init).joined(separator: ","),
                        ])
                    let keep = change.maintained.map(String.init).joined(separator: ",")
                    for table in ["chunks", "documents"] {
                        try db.execute(
                            sql: "DELETE FROM \(table) WHERE entity = ? AND generation NOT IN (SELECT CAST(value AS INTEGER) FROM json_each('[' || ? || ']'))",
                            arguments: [entity, keep])
                    }
                }
                for (entity, ids) in batch.resolved {
                    let statement = try db.cachedStatement(sql: "DELETE FROM dead_letters WHERE entity = ? AND id = ?")
                    for id in ids { try statement.execute(arguments: [entity, id]) }
                }
                if !batch.deadLetters.isEmpty {
                    let statement = try db.cachedStatement(sql: """
                        INSERT INTO dead_letters (entity, id, stage, error, lsn, attempts, first_failed_at, last_failed_at)
                        VALUES (?, ?, ?, ?, ?, 1, ?, ?)
                        ON CONFLICT (entity, id) DO UPDATE SET
                            stage = excluded.stage, error = excluded.error, lsn = excluded.lsn,
                            attempts = dead_letters.attempts + 1, last_failed_at = excluded.last_failed_at
                        """)
                    for letter in batch.deadLetters {
                        try statement.execute(arguments: [
                            letter.entity, letter.id, letter.stage, letter.error,
                            Int64(bitPattern: letter.lsn.rawValue), letter.firstFailedAt, letter.lastFailedAt,
                        ])
                    }
                }
                for job in batch.jobs { try Self.writeJob(job, db) }
                if !state.isEmpty {
                    let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)")
                    for (key, value) in state { try statement.execute(arguments: [key, value]) }
                }
            }
        } catch let missing as MissingStoredVectors {
            throw missing
        } catch {
            throw IndexingError(.store, "cannot write to the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    // MARK: - Jobs

    static let jobEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Statuses a job ends in (completed, failed, cancelled), as an SQL list.
    static let finishedStatuses = JobRecord.Status.allCases.filter { !$0.isActive }.map { "'\($0.rawValue)'" }.joined(separator: ", ")

    /// Writes a job record; the operator's `control` column is left as it is.
    ///
    /// By default this is a *progress* write, as batches carry them (``IndexBatch/jobs``): it never
    /// changes the status of a job that has finished (completed, failed, cancelled). A worker's last
    /// chunk may still be on its way to the index when the scheduler records the job as failed, and
    /// its "running" record must not bring the job back to life. It may still update a finished job
    /// without changing its status (a rebuild's rollback marks the completed job in the same batch as
    /// the switch). `overwritingFinished` writes unconditionally: explicit saves (queueing again,
    /// final states) use it.
    static func writeJob(_ job: JobRecord, _ db: Database, overwritingFinished: Bool = false) throws {
        let record = String(decoding: try jobEncoder.encode(job), as: UTF8.self)
        let guardFinished = overwritingFinished ? "" : """
             WHERE json_extract(jobs.record, '$.status') NOT IN (\(finishedStatuses))
                OR json_extract(jobs.record, '$.status') = json_extract(excluded.record, '$.status')
            """
        try db.execute(
            sql: """
                INSERT INTO jobs (id, entity, control, created_at, record) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET record = excluded.record\(guardFinished)
                """,
            arguments: [job.id, job.entity, job.control.rawValue, job.createdAt, record])
    }

    /// Creates or updates a job outside a batch (queueing, retrying, final states); unlike the
    /// progress records in batches, it may change the status of a finished job.
    public func saveJob(_ job: JobRecord) async throws {
        try await pool.write { db in try Self.writeJob(job, db, overwritingFinished: true) }
    }

    /// Records what the operator wants (pause, resume, cancel).
    public func setJobControl(_ id: String, _ control: JobRecord.Control) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE jobs SET control = ? WHERE id = ?", arguments: [control.rawValue, id])
            return db.changesCount > 0
        }
    }

    public func job(_ id: String) async throws -> JobRecord? {
        try await jobs(where: "id = ?", [id]).first
    }

    /// Jobs, newest first, optionally of one entity.
    public func jobs(entity: String?) async throws -> [JobRecord] {
        if let entity { return try await jobs(where: "entity = ?", [entity]) }
        return try await jobs(where: "1 = 1", [])
    }

    /// Jobs that can still do work (queued, running, paused), newest first. The scheduler polls this,
    /// so finished jobs — however many accumulate — are filtered out in SQL, not decoded.
    public func activeJobs() async throws -> [JobRecord] {
        try await jobs(where: "json_extract(record, '$.status') IN ('queued', 'running', 'paused')", [])
    }

    private func jobs(where condition: String, _ arguments: [String]) async throws -> [JobRecord] {
        // Decoded inside the read, so that the result is Sendable and the asynchronous read (not
        // the blocking one) is used.
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT record, control FROM jobs WHERE \(condition) ORDER BY created_at DESC, id", arguments: StatementArguments(arguments))
                .compactMap { row -> JobRecord? in
                    let record: String = row[0]
                    guard var job = try? JSONDecoder().decode(JobRecord.self, from: Data(record.utf8)) else { return nil }
                    job.control = JobRecord.Control(rawValue: row[1]) ?? .run
                    return job
                }
        }
    }

    /// Dead letters of an entity recorded at or after `lsn` (the failures of a job).
    public func deadLetterCount(entity: String, since lsn: LSN) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM dead_letters WHERE entity = ? AND lsn >= ?", arguments: [entity, Int64(bitPattern: lsn.rawValue)]) ?? 0
        }
    }

    // MARK: - Reads

    public func state(_ key: String) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM state WHERE key = ?", arguments: [key])
        }
    }

    public func storedStates(entity: String, ids: [String]) async throws -> [String: StoredDocumentState] {
        guard !ids.isEmpty else { return [:] }
        return try await pool.read { db in
            var result: [String: StoredDocumentState] = [:]
            // One query per 500 ids rather than one per id.
            var start = 0
            while start < ids.count {
                let slice = Array(ids[start..<min(start + 500, ids.count)])
                start += 500
                let placeholders = Array(repeating: "?", count: slice.count).joined(separator: ",")
                // Any generation the pipeline writes; the active one wins.
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT id, \(Self.contentHashText), model, source, lsn, partition,
                               EXISTS (SELECT 1 FROM dead_letters d WHERE d.entity = documents.entity AND d.id = documents.id),
                               chunk_hashes
                          FROM documents WHERE entity = ? AND id IN (\(placeholders))
                         ORDER BY \(Self.activeGeneration) ASC
                        """,
                    arguments: StatementArguments([entity] + slice + [entity]))
                while let row = try rows.next() {
                    let lsn: Int64 = row[4]
                    let failedSince: Bool = row[6]
                    let chunkHashes: String? = row[7]
                    result[row[0]] = StoredDocumentState(
                        contentHash: row[1], model: row[2], sourceValues: Self.decodeJSON(row[3]), lsn: LSN(UInt64(bitPattern: lsn)),
                        partition: row[5], isLatest: !failedSince, chunkHashes: chunkHashes.map { $0.split(separator: ",").map(String.init) })
                }
            }
            return result
        }
    }

    public func search(entity: String, vector: [Float], k: Int, filter: [String: String]) async throws -> [SearchHit] {
        let query = VectorMath.normalized(vector)
        // Every vector of the active generation: one-chunk documents' own, then the chunks of the
        // others; with a filter, only those of matching documents.
        var conditions = "d.entity = ? AND d.\(Self.activeGeneration)"
        var filterArguments: [String] = [entity, entity]
        for (key, value) in filter.sorted(by: { $0.key < $1.key }) {
            conditions += " AND json_extract(d.metadata, ?) = ?"
            filterArguments.append("$." + DocumentID.jsonString(key))
            filterArguments.append(value)
        }
        var sql = "SELECT d.id, 0, d.embedding FROM documents d WHERE \(conditions) AND d.embedding IS NOT NULL UNION ALL "
        var arguments = filterArguments
        if filter.isEmpty {
            sql += "SELECT c.id, c.seq, c.vector FROM chunks c WHERE c.entity = ? AND c.\(Self.activeGeneration)"
            arguments += [entity, entity]
        } else {
            sql += """
                SELECT c.id, c.seq, c.vector FROM chunks c
                  JOIN documents d ON d.entity = c.entity AND d.id = c.id AND d.generation = c.generation WHERE \(conditions)
                """
            arguments += filterArguments
        }
        let statementSQL = sql
        let statementArguments = arguments
        let best: [(score: Float, item: ChunkHit)] = try await pool.read { db in
            var top = TopK<ChunkHit>(k)
            let rows = try Row.fetchCursor(db, sql: statementSQL, arguments: StatementArguments(statementArguments))
            try query.withUnsafeBufferPointer { queryBuffer in
                while let row = try rows.next() {
                    let score: Float = try row.withUnsafeData(atIndex: 2) { data -> Float in
                        guard let data, data.count == queryBuffer.count * 4 else { return -.infinity }
                        return data.withUnsafeBytes { raw in
                            let floats = raw.bindMemory(to: Float.self)
                            let dot = VectorMath.dot(floats, queryBuffer)
                            let norm = VectorMath.dot(floats, floats).squareRoot()
                            return norm > 0 ? dot / norm : 0
                        }
                    }
                    if score > top.threshold {
                        // A document counts once, with its best chunk.
                        top.offer(score, ChunkHit(id: row[0], seq: row[1]), replacing: { $0.id == $1.id })
                    }
                }
            }
            return top.items
        }
        guard !best.isEmpty else { return [] }
        return try await pool.read { db in
            try best.compactMap { hit in
                guard let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT d.content, d.metadata, c.text FROM documents d
                          LEFT JOIN chunks c ON c.entity = d.entity AND c.id = d.id AND c.generation = d.generation AND c.seq = ?
                         WHERE d.entity = ? AND d.id = ? AND d.\(Self.activeGeneration)
                        """,
                    arguments: [hit.item.seq, entity, hit.item.id, entity])
                else { return nil }
                return SearchHit(
                    id: hit.item.id, score: hit.score, content: row[0], metadata: Self.decodeJSON(row[1]), chunk: hit.item.seq, chunkText: row[2])
            }
        }
    }

    /// A chunk that scored during a search.
    private struct ChunkHit {
        var id: String
        var seq: Int
    }

    public func export(entity: String, after: String?, limit: Int) async throws -> [ExportedDocument] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, content, \(Self.contentHashText), metadata, model, lsn, generation, chunk_hashes IS NOT NULL FROM documents
                     WHERE entity = ? AND \(Self.activeGeneration) AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?
                    """,
                arguments: [entity, entity, after, after, limit])
            return try rows.map { row in
                let lsn: Int64 = row[5]
                let generation: Int = row[6]
                let chunked: Bool = row[7]
                let id: String = row[0]
                let chunks = chunked
                    ? try String.fetchAll(
                        db, sql: "SELECT coalesce(text, '') FROM chunks WHERE entity = ? AND id = ? AND generation = ? ORDER BY seq",
                        arguments: [entity, id, generation])
                    : nil
                return ExportedDocument(
                    id: id, content: row[1], contentHash: row[2], metadata: Self.decodeJSON(row[3]), model: row[4],
                    lsn: LSN(UInt64(bitPattern: lsn)).description, chunks: chunks)
            }
        }
    }

    public func document(entity: String, id: String) async throws -> ExportedDocument? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT id, content, \(Self.contentHashText), metadata, model, lsn FROM documents
                     WHERE entity = ? AND \(Self.activeGeneration) AND id = ?
                    """,
                arguments: [entity, entity, id])
            else { return nil }
            let lsn: Int64 = row[5]
            return ExportedDocument(
                id: row[0], content: row[1], contentHash: row[2], metadata: Self.decodeJSON(row[3]), model: row[4],
                lsn: LSN(UInt64(bitPattern: lsn)).description)
        }
    }

    public func count(entity: String) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM documents WHERE entity = ? AND \(Self.activeGeneration)", arguments: [entity, entity]) ?? 0
        }
    }

    public func deadLetters(entity: String?) async throws -> [DeadLetter] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT entity, id, stage, error, lsn, attempts, first_failed_at, last_failed_at FROM dead_letters
                     WHERE ? IS NULL OR entity = ? ORDER BY entity, id
                    """,
                arguments: [entity, entity]
            ).map { row in
                let lsn: Int64 = row[4]
                return DeadLetter(
                    entity: row[0], id: row[1], stage: row[2], error: row[3], lsn: LSN(UInt64(bitPattern: lsn)),
                    attempts: row[5], firstFailedAt: row[6], lastFailedAt: row[7])
            }
        }
    }

    // MARK: - Encoding

    static func blob(_ vector: [Float]) -> Data {
        vector.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    static func json(_ values: [String: String?]) -> String { FlatJSON.encode(values) }

    /// A content hash as the store keeps it: a SHA-256 as its 32 bytes (hex would double them, and
    /// rows of a few kilobytes are near the size where a page holds one row less); any other text as
    /// it is.
    static func storedHash(_ hex: String) -> any DatabaseValueConvertible {
        var text = hex
        let bytes = text.withUTF8 { utf8 -> Data? in
            guard utf8.count == 64 else { return nil }
            var out = [UInt8](repeating: 0, count: 32)
            for index in 0..<32 {
                guard let high = nibble(utf8[2 * index]), let low = nibble(utf8[2 * index + 1]) else { return nil }
                out[index] = high << 4 | low
            }
            return Data(out)
        }
        return bytes ?? hex
    }

    /// The value of a lowercase hex digit.
    @inline(__always)
    private static func nibble(_ unit: UInt8) -> UInt8? {
        switch unit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): unit &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): unit &- UInt8(ascii: "a") &+ 10
        default: nil
        }
    }

    /// SQL for a document's content hash as text (lowercase hex), however it is stored.
    static let contentHashText = "CASE typeof(content_hash) WHEN 'blob' THEN lower(hex(content_hash)) ELSE content_hash END"

    static func decodeJSON(_ text: String) -> [String: String?] { FlatJSON.decode(text) }
}

extension SQLiteIndexStore.Configuration {
    static func grdb(synchronousFull: Bool) -> GRDB.Configuration {
        var config = GRDB.Configuration()
        // Another process (tidemark search, export) may hold the file for a moment: wait, don't fail.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronousFull ? "FULL" : "NORMAL")")
            // Checkpoints run beside the writer (`WALCheckpointer`); this is only the backstop.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.backstopPages)")
            // The triggers are for writers other than the store (`migrateChecks`). Off here, the
            // pipeline's writes also need no statement journal: a statement that may fire a trigger
            // copies every page it touches to one first.
            guard tidemark_sqlite_set_triggers(db.sqliteConnection, 0) == 0 else {
                throw IndexingError(.store, "SQLite refused to turn triggers off on the index's connection")
            }
        }
        return config
    }
}
