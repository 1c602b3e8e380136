import Embedding
import Foundation
import GRDB
import Logging
import Postgres

/// The embedded index: one SQLite file (WAL mode) holding documents with their vectors, state (the
/// checkpoint) and dead letters.
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
            try pool.write { db in try Self.migrate(db) }
        } catch {
            throw IndexingError(.store, "cannot open the index at \(configuration.path): \(error)", underlying: error)
        }
    }

    private static func migrate(_ db: Database) throws {
        // Files from before generations: move the documents into generation 0.
        let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(documents)").map { row -> String in row["name"] }
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
                vector       BLOB NOT NULL,
                lsn          INTEGER NOT NULL,
                updated_at   REAL NOT NULL,
                UNIQUE (entity, id, generation)
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
        // Files from before partitions: the leaf partition of each document's row (NULL: unknown).
        let current = try Row.fetchAll(db, sql: "PRAGMA table_info(documents)").map { row -> String in row["name"] }
        if !current.contains("partition") {
            try db.execute(sql: "ALTER TABLE documents ADD COLUMN partition TEXT")
        }
        try migrateValidations(db)
        if try db.tableExists("documents_v1") {
            try db.execute(sql: """
                INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, vector, lsn, updated_at)
                SELECT entity, 0, id, content, content_hash, metadata, source, model, vector, lsn, updated_at FROM documents_v1;
                DROP TABLE documents_v1;
                """)
        }
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
                    try db.execute(sql: "DELETE FROM documents WHERE entity = ?", arguments: [entity])
                }
                for (entity, partitions) in batch.partitionTruncates {
                    let statement = try db.cachedStatement(sql: "DELETE FROM documents WHERE entity = ? AND partition = ?")
                    for partition in partitions { try statement.execute(arguments: [entity, partition]) }
                }
                for (entity, ids) in batch.deletes {
                    let statement = try db.cachedStatement(sql: "DELETE FROM documents WHERE entity = ? AND id = ?")
                    for id in ids { try statement.execute(arguments: [entity, id]) }
                }
                var maintained: [String: [Int]] = [:]
                func generations(_ entity: String) throws -> [Int] {
                    if let known = maintained[entity] { return known }
                    let found = try Self.maintainedGenerations(entity, db)
                    maintained[entity] = found
                    return found
                }
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, vector, lsn, updated_at, partition)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (entity, id, generation) DO UPDATE SET
                        content = excluded.content, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, source = excluded.source, model = excluded.model,
                        vector = excluded.vector, lsn = excluded.lsn, updated_at = excluded.updated_at,
                        partition = excluded.partition
                     WHERE excluded.lsn >= documents.lsn
                    """)
                // Same content and model as a stored row: take that row's vector (from any generation).
                let copyVector = try db.cachedStatement(sql: """
                    INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, vector, lsn, updated_at, partition)
                    SELECT entity, ?, id, ?, content_hash, ?, ?, model, vector, ?, ?, ? FROM documents
                     WHERE entity = ? AND id = ? AND content_hash = ? AND model = ?
                     ORDER BY generation = ? DESC LIMIT 1
                    ON CONFLICT (entity, id, generation) DO UPDATE SET
                        content = excluded.content, content_hash = excluded.content_hash,
                        metadata = excluded.metadata, source = excluded.source, model = excluded.model,
                        vector = excluded.vector, lsn = excluded.lsn, updated_at = excluded.updated_at,
                        partition = excluded.partition
                     WHERE excluded.lsn >= documents.lsn
                    """)
                var vectorless = Set<DocumentKey>()
                func write(_ upsert: EmbeddedDocument, into targets: [Int]) throws {
                    let document = upsert.document
                    let metadata = Self.json(document.metadata)
                    let source = Self.json(document.sourceValues)
                    let lsn = Int64(bitPattern: document.lsn.rawValue)
                    for generation in targets {
                        if let vector = upsert.vector {
                            try insert.execute(arguments: [
                                document.entity, generation, document.id, document.content, document.contentHash, metadata, source,
                                upsert.model, Self.blob(vector), lsn, now, document.partition,
                            ])
                        } else {
                            try copyVector.execute(arguments: [
                                generation, document.content, metadata, source, lsn, now, document.partition, document.entity, document.id,
                                document.contentHash, upsert.model, generation,
                            ])
                            // The stored vector is gone (deleted or truncated since the pipeline
                            // looked): never write nothing.
                            if db.changesCount == 0 {
                                let newer = try Bool.fetchOne(
                                    db, sql: "SELECT EXISTS (SELECT 1 FROM documents WHERE entity = ? AND id = ? AND generation = ? AND lsn > ?)",
                                    arguments: [document.entity, document.id, generation, lsn]) ?? false
                                if !newer { vectorless.insert(document.key) }
                            }
                        }
                    }
                }
                // Rows of a rebuild's chunks go to the generation being built; the stream's changes of
                // the same batch go to every generation. A stream change that preceded the chunk's high
                // watermark is older than the chunk row: a document is never replaced by an older
                // version (lsn), so it cannot overwrite the row (found by the differential test).
                for (generation, upserts) in batch.targetedUpserts.sorted(by: { $0.key < $1.key }) {
                    for upsert in upserts { try write(upsert, into: [generation]) }
                }
                for upsert in batch.upserts {
                    try write(upsert, into: try generations(upsert.document.entity))
                }
                if !vectorless.isEmpty { throw MissingStoredVectors(documents: vectorless) }
                for (entity, lsn) in batch.sweepBefore {
                    try db.execute(
                        sql: "DELETE FROM documents WHERE entity = ? AND lsn < ?",
                        arguments: [entity, Int64(bitPattern: lsn.rawValue)])
                }
                for (entity, sweep) in batch.generationSweeps {
                    try db.execute(
                        sql: "DELETE FROM documents WHERE entity = ? AND generation = ? AND lsn < ?",
                        arguments: [entity, sweep.generation, Int64(bitPattern: sweep.before.rawValue)])
                }
                for (entity, change) in batch.generationChanges {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?), (?, ?)",
                        arguments: [
                            "generation.\(entity).active", String(change.active),
                            "generation.\(entity).maintained", change.maintained.map(String.init).joined(separator: ","),
                        ])
                    let keep = change.maintained.map(String.init).joined(separator: ",")
                    try db.execute(
                        sql: "DELETE FROM documents WHERE entity = ? AND generation NOT IN (SELECT CAST(value AS INTEGER) FROM json_each('[' || ? || ']'))",
                        arguments: [entity, keep])
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
                        SELECT id, content_hash, model, source, lsn, partition,
                               EXISTS (SELECT 1 FROM dead_letters d WHERE d.entity = documents.entity AND d.id = documents.id)
                          FROM documents WHERE entity = ? AND id IN (\(placeholders))
                         ORDER BY \(Self.activeGeneration) ASC
                        """,
                    arguments: StatementArguments([entity] + slice + [entity]))
                while let row = try rows.next() {
                    let lsn: Int64 = row[4]
                    let failedSince: Bool = row[6]
                    result[row[0]] = StoredDocumentState(
                        contentHash: row[1], model: row[2], sourceValues: Self.decodeJSON(row[3]), lsn: LSN(UInt64(bitPattern: lsn)),
                        partition: row[5], isLatest: !failedSince)
                }
            }
            return result
        }
    }

    public func search(entity: String, vector: [Float], k: Int, filter: [String: String]) async throws -> [SearchHit] {
        let query = VectorMath.normalized(vector)
        var sql = "SELECT id, vector FROM documents WHERE entity = ? AND \(Self.activeGeneration)"
        var arguments: [String] = [entity, entity]
        for (key, value) in filter.sorted(by: { $0.key < $1.key }) {
            sql += " AND json_extract(metadata, ?) = ?"
            arguments.append("$." + DocumentID.jsonString(key))
            arguments.append(value)
        }
        let statementSQL = sql
        let statementArguments = arguments
        let best: [(score: Float, item: String)] = try await pool.read { db in
            var top = TopK<String>(k)
            let rows = try Row.fetchCursor(db, sql: statementSQL, arguments: StatementArguments(statementArguments))
            try query.withUnsafeBufferPointer { queryBuffer in
                while let row = try rows.next() {
                    let score: Float = try row.withUnsafeData(atIndex: 1) { data -> Float in
                        guard let data, data.count == queryBuffer.count * 4 else { return -.infinity }
                        return data.withUnsafeBytes { raw in
                            let floats = raw.bindMemory(to: Float.self)
                            let dot = VectorMath.dot(floats, queryBuffer)
                            let norm = VectorMath.dot(floats, floats).squareRoot()
                            return norm > 0 ? dot / norm : 0
                        }
                    }
                    if score > top.threshold {
                        let id: String = row[0]
                        top.offer(score, id)
                    }
                }
            }
            return top.items
        }
        guard !best.isEmpty else { return [] }
        return try await pool.read { db in
            try best.compactMap { hit in
                guard let row = try Row.fetchOne(db, sql: "SELECT content, metadata FROM documents WHERE entity = ? AND id = ? AND \(Self.activeGeneration)", arguments: [entity, hit.item, entity]) else { return nil }
                return SearchHit(id: hit.item, score: hit.score, content: row[0], metadata: Self.decodeJSON(row[1]))
            }
        }
    }

    public func export(entity: String, after: String?, limit: Int) async throws -> [ExportedDocument] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, content, content_hash, metadata, model, lsn FROM documents
                     WHERE entity = ? AND \(Self.activeGeneration) AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?
                    """,
                arguments: [entity, entity, after, after, limit])
            return rows.map { row in
                let lsn: Int64 = row[5]
                return ExportedDocument(
                    id: row[0], content: row[1], contentHash: row[2], metadata: Self.decodeJSON(row[3]), model: row[4],
                    lsn: LSN(UInt64(bitPattern: lsn)).description)
            }
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

    static func decodeJSON(_ text: String) -> [String: String?] { FlatJSON.decode(text) }
}

extension SQLiteIndexStore.Configuration {
    static func grdb(synchronousFull: Bool) -> GRDB.Configuration {
        var config = GRDB.Configuration()
        // Another process (tidemark search, export) may hold the file for a moment: wait, don't fail.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronousFull ? "FULL" : "NORMAL")")
        }
        return config
    }
}
