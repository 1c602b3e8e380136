import Embedding
import Foundation
import Logging
import Postgres

/// The production index: PostgreSQL with pgvector, in a schema of its own (default `tidemark`), in
/// the source database or on another server.
///
/// Tables: `documents` (content, metadata as `jsonb`, the source values, model, position,
/// generation), `chunks` (one `vector` per chunk of a document), `state` (the checkpoint among
/// others), `jobs`, `dead_letters`. ``apply(_:state:)`` writes a batch and its state in one
/// PostgreSQL transaction; documents and chunks arrive through binary `COPY` into temporary staging
/// tables and are merged with one statement each. Search uses an HNSW index (cosine) per entity and
/// vector length, built concurrently once an entity's load completes (``ensureSearchIndex(entity:dimensions:)``)
/// — building it after a large load is several times faster than growing it row by row — and an
/// exact scan until then.
///
/// Writes go through one connection (`application_name` `tidemark-index`), reads through another
/// (`tidemark-index-read`); both reopen after a failure, so a restarted index server costs the
/// pipeline a retry, never a row.
public final class PgVectorIndexStore: IndexStore {
    public struct Configuration: Sendable {
        /// URL or conninfo of the database holding the index.
        public var url: String
        /// Schema of the index tables (created when missing). Default `tidemark`.
        public var schema = "tidemark"
        /// HNSW graph degree (`m`). Default 16.
        public var hnswM = 16
        /// HNSW build candidate list (`ef_construction`). Default 64.
        public var hnswEFConstruction = 64
        /// Candidate list of searches (`hnsw.ef_search`); at least the number of results asked for
        /// (times 4, to leave room for several chunks of one document). Default 100.
        public var efSearch = 100
        /// `maintenance_work_mem` for building a search index: an HNSW graph that fits builds several
        /// times faster. Default `512MB`.
        public var maintenanceWorkMem = "512MB"

        public init(url: String, schema: String = "tidemark") {
            self.url = url
            self.schema = schema
        }
    }

    public let configuration: Configuration
    let logger: Logger
    let writer: LazyConnection
    let reader: LazyConnection
    /// The schema, quoted for SQL.
    let s: String
    /// Whether `hnsw.iterative_scan` exists (pgvector 0.8+): filtered searches then keep scanning
    /// the graph until they have enough rows.
    let iterativeScan: Bool

    private init(configuration: Configuration, logger: Logger, iterativeScan: Bool) {
        self.configuration = configuration
        self.logger = logger
        self.writer = LazyConnection(url: configuration.url, applicationName: "tidemark-index", logger: logger)
        self.reader = LazyConnection(url: configuration.url, applicationName: "tidemark-index-read", logger: logger)
        self.s = PostgresConnection.quoteIdentifier(configuration.schema)
        self.iterativeScan = iterativeScan
    }

    /// Connects, checks that pgvector is there, and creates the schema and tables when missing.
    ///
    /// - Throws: ``IndexingError`` `store` with the fix: the server unreachable, pgvector not
    ///   installed or not allowed to be created, the schema not creatable.
    public static func open(configuration: Configuration, logger: Logger) async throws -> PgVectorIndexStore {
        let where_ = "the pgvector index at \(ConnectionString.redacted(configuration.url))"
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration.url, applicationName: "tidemark-index", logger: logger)
        } catch {
            throw IndexingError(.store, "cannot connect to \(where_): \(error)", underlying: error)
        }
        let version: String
        do {
            version = try await prepare(connection, configuration: configuration, where_)
            await connection.close()
        } catch {
            await connection.close()
            if let error = error as? IndexingError { throw error }
            throw IndexingError(.store, "cannot prepare \(where_) (schema \(configuration.schema)): \(error)", underlying: error)
        }
        let parts = version.split(separator: ".").compactMap { Int($0) }
        let iterative = (parts.first ?? 0, parts.dropFirst().first ?? 0) >= (0, 8)
        logger.debug("pgvector index ready", metadata: ["index.schema": "\(configuration.schema)", "pgvector.version": "\(version)"])
        return PgVectorIndexStore(configuration: configuration, logger: logger, iterativeScan: iterative)
    }

    /// Makes sure pgvector is installed and the tables exist; returns pgvector's version.
    ///
    /// Runs under an advisory lock named after the schema: `CREATE … IF NOT EXISTS` is not safe
    /// against a second process doing the same at the same moment (`tidemark search` beside a
    /// starting agent).
    private static func prepare(_ connection: PostgresConnection, configuration: Configuration, _ where_: String) async throws -> String {
        try await connection.query("SELECT pg_advisory_lock(hashtext('tidemark.index.' || $1))", [configuration.schema])
        do {
            let version = try await prepareLocked(connection, configuration: configuration, where_)
            try await connection.query("SELECT pg_advisory_unlock(hashtext('tidemark.index.' || $1))", [configuration.schema])
            return version
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtext('tidemark.index.' || $1))", [configuration.schema])
            throw error
        }
    }

    private static func prepareLocked(_ connection: PostgresConnection, configuration: Configuration, _ where_: String) async throws -> String {
        if try await connection.query("SELECT extversion FROM pg_extension WHERE extname = 'vector'").rows.isEmpty {
            let available = try await connection.query("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
            guard !available.rows.isEmpty else {
                throw IndexingError(
                    .store,
                    "\(where_): the pgvector extension is not installed on that server; install it (e.g. the postgresql-NN-pgvector package) or use index.kind sqlite")
            }
            do {
                try await connection.query("CREATE EXTENSION IF NOT EXISTS vector")
            } catch {
                throw IndexingError(
                    .store,
                    "\(where_): cannot create the extension vector (\(error)); have a superuser or the database owner run CREATE EXTENSION vector once",
                    underlying: error)
            }
        }
        try await migrate(connection, schema: PostgresConnection.quoteIdentifier(configuration.schema))
        let version = try await connection.query("SELECT extversion FROM pg_extension WHERE extname = 'vector'").rows.first?.first ?? nil
        return version ?? "0"
    }

    private static func migrate(_ connection: PostgresConnection, schema s: String) async throws {
        // Document ids sort bytewise (COLLATE "C"), as in the SQLite store: export pages and key
        // ranges mean the same on both.
        try await connection.simpleQuery("""
            CREATE SCHEMA IF NOT EXISTS \(s);
            CREATE TABLE IF NOT EXISTS \(s).documents (
                entity       text NOT NULL,
                id           text COLLATE "C" NOT NULL,
                generation   integer NOT NULL DEFAULT 0,
                content      text NOT NULL,
                content_hash text NOT NULL,
                metadata     jsonb NOT NULL,
                source       text NOT NULL,
                model        text NOT NULL,
                lsn          bigint NOT NULL,
                updated_at   timestamptz NOT NULL DEFAULT now(),
                partition    text,
                chunk_hashes text[],
                PRIMARY KEY (entity, id, generation)
            );
            CREATE INDEX IF NOT EXISTS documents_partition ON \(s).documents (entity, partition) WHERE partition IS NOT NULL;
            CREATE TABLE IF NOT EXISTS \(s).chunks (
                entity     text NOT NULL,
                id         text COLLATE "C" NOT NULL,
                generation integer NOT NULL,
                seq        integer NOT NULL,
                hash       text NOT NULL,
                model      text NOT NULL,
                text       text,
                embedding  vector NOT NULL,
                PRIMARY KEY (entity, id, generation, seq)
            );
            CREATE TABLE IF NOT EXISTS \(s).state (
                key   text PRIMARY KEY,
                value text NOT NULL
            );
            CREATE TABLE IF NOT EXISTS \(s).jobs (
                id         text PRIMARY KEY,
                entity     text NOT NULL,
                control    text NOT NULL DEFAULT 'run',
                created_at double precision NOT NULL,
                record     jsonb NOT NULL
            );
            CREATE INDEX IF NOT EXISTS jobs_status ON \(s).jobs ((record->>'status'));
            CREATE TABLE IF NOT EXISTS \(s).dead_letters (
                entity          text NOT NULL,
                id              text COLLATE "C" NOT NULL,
                stage           text NOT NULL,
                error           text NOT NULL,
                lsn             bigint NOT NULL,
                attempts        integer NOT NULL,
                first_failed_at double precision NOT NULL,
                last_failed_at  double precision NOT NULL,
                PRIMARY KEY (entity, id)
            );
            \(validationsSQL(s))
            \(checksSQL(s))
            """)
    }

    /// Closes both connections.
    public func close() async {
        await writer.close()
        await reader.close()
    }

    // MARK: - Helpers

    /// A read on the read connection; a broken connection is reopened once and the read retried.
    func read<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await body(try await reader.get())
        } catch let error as PostgresError where error.code == .connectionLost || error.code == .closed {
            return try await body(try await reader.get())
        } catch let error as IndexingError {
            throw error
        } catch {
            throw IndexingError(.store, "cannot read the pgvector index: \(error)", underlying: error)
        }
    }

    /// A write (one transaction) on the write connection.
    func write<T: Sendable>(_ body: @escaping @Sendable (isolated PostgresConnection) throws -> T) async throws -> T {
        do {
            let connection = try await writer.get()
            return try await connection.withTransaction(body)
        } catch let missing as MissingStoredVectors {
            throw missing
        } catch {
            throw IndexingError(.store, "cannot write to the pgvector index: \(error)", underlying: error)
        }
    }

    /// SQL selecting the active generation of the entity given as parameter `$n`.
    func activeGenerationSQL(_ n: Int) -> String {
        "coalesce((SELECT value::integer FROM \(s).state WHERE key = 'generation.' || $\(n) || '.active'), 0)"
    }

    static func lsnText(_ lsn: LSN) -> String { String(Int64(bitPattern: lsn.rawValue)) }

    static func lsn(_ text: String?) -> LSN { LSN(UInt64(bitPattern: Int64(text ?? "0") ?? 0)) }

    /// A vector in pgvector's text form, `[0.1,0.2]`.
    static func vectorText(_ vector: [Float]) -> String {
        "[" + vector.map { $0.isFinite ? "\($0)" : "0" }.joined(separator: ",") + "]"
    }

    // MARK: - Reads

    public func state(_ key: String) async throws -> String? {
        let s = self.s
        return try await read { connection in
            try await connection.query("SELECT value FROM \(s).state WHERE key = $1", [key]).rows.first?.first ?? nil
        }
    }

    public func storedStates(entity: String, ids: [String]) async throws -> [String: StoredDocumentState] {
        guard !ids.isEmpty else { return [:] }
        let s = self.s
        let active = activeGenerationSQL(1)
        let result = try await read { connection in
            try await connection.query(
                """
                SELECT d.id, d.content_hash, d.model, d.source, d.lsn, d.partition,
                       EXISTS (SELECT 1 FROM \(s).dead_letters l WHERE l.entity = d.entity AND l.id = d.id),
                       d.chunk_hashes
                  FROM \(s).documents d WHERE d.entity = $1 AND d.id = ANY($2::text[])
                 ORDER BY d.generation = \(active)
                """,
                [entity, PostgresArrayLiteral.make(ids)])
        }
        var states: [String: StoredDocumentState] = [:]
        // Any generation the pipeline writes; the active one (sorted last) wins.
        for row in result.rows {
            guard let id = row[0] else { continue }
            states[id] = StoredDocumentState(
                contentHash: row[1] ?? "", model: row[2] ?? "", sourceValues: FlatJSON.decode(row[3] ?? "{}"), lsn: Self.lsn(row[4]),
                partition: row[5], isLatest: row[6] != "t", chunkHashes: row[7].flatMap(PostgresArrayLiteral.parse))
        }
        return states
    }

    public func export(entity: String, after: String?, limit: Int) async throws -> [ExportedDocument] {
        let s = self.s
        let active = activeGenerationSQL(1)
        return try await read { connection in
            let result = try await connection.query(
                """
                SELECT d.id, d.content, d.content_hash, d.metadata::text, d.model, d.lsn,
                       CASE WHEN d.chunk_hashes IS NULL THEN NULL ELSE
                            (SELECT array_agg(coalesce(c.text, '') ORDER BY c.seq) FROM \(s).chunks c
                              WHERE c.entity = d.entity AND c.id = d.id AND c.generation = d.generation) END
                  FROM \(s).documents d
                 WHERE d.entity = $1 AND d.generation = \(active) AND ($2::text IS NULL OR d.id > $2)
                 ORDER BY d.id LIMIT $3
                """,
                [entity, after, String(limit)])
            return result.rows.map { row in
                ExportedDocument(
                    id: row[0] ?? "", content: row[1] ?? "", contentHash: row[2] ?? "", metadata: FlatJSON.decode(row[3] ?? "{}"),
                    model: row[4] ?? "", lsn: Self.lsn(row[5]).description, chunks: row[6].flatMap(PostgresArrayLiteral.parse))
            }
        }
    }

    public func count(entity: String) async throws -> Int {
        let s = self.s
        let active = activeGenerationSQL(1)
        return try await read { connection in
            let value = try await connection.query("SELECT count(*) FROM \(s).documents WHERE entity = $1 AND generation = \(active)", [entity])
            return Int((value.rows.first?.first ?? nil) ?? "0") ?? 0
        }
    }

    public func deadLetters(entity: String?) async throws -> [DeadLetter] {
        let s = self.s
        return try await read { connection in
            try await connection.query(
                """
                SELECT entity, id, stage, error, lsn, attempts, first_failed_at, last_failed_at FROM \(s).dead_letters
                 WHERE $1::text IS NULL OR entity = $1 ORDER BY entity, id
                """,
                [entity]
            ).rows.map { row in
                DeadLetter(
                    entity: row[0] ?? "", id: row[1] ?? "", stage: row[2] ?? "", error: row[3] ?? "", lsn: Self.lsn(row[4]),
                    attempts: Int(row[5] ?? "1") ?? 1, firstFailedAt: Double(row[6] ?? "0") ?? 0, lastFailedAt: Double(row[7] ?? "0") ?? 0)
            }
        }
    }

    public func deadLetterCount(entity: String, since lsn: LSN) async throws -> Int {
        let s = self.s
        return try await read { connection in
            let value = try await connection.query(
                "SELECT count(*) FROM \(s).dead_letters WHERE entity = $1 AND lsn >= $2", [entity, Self.lsnText(lsn)])
            return Int((value.rows.first?.first ?? nil) ?? "0") ?? 0
        }
    }

    public func activeGeneration(_ entity: String) async throws -> Int {
        Int(try await state("generation.\(entity).active") ?? "0") ?? 0
    }

    public func generations(_ entity: String) async throws -> [Int] {
        let generations = (try await state("generation.\(entity).maintained") ?? "").split(separator: ",").compactMap { Int($0) }
        return generations.isEmpty ? [0] : generations
    }
}
