import Embedding
import Foundation
import Postgres

extension PgVectorIndexStore {
    /// Name of the HNSW index of one entity's vectors of one length.
    static func searchIndexName(entity: String, dimensions: Int) -> String {
        "chunks_hnsw_" + String(EntityMapping.hash("\(entity)\u{1F}\(dimensions)").prefix(16))
    }

    public func search(entity: String, vector: [Float], k: Int, filter: [String: String]) async throws -> [SearchHit] {
        guard k > 0, !vector.isEmpty else { return [] }
        let s = self.s
        let dimensions = vector.count
        let query = Self.vectorText(VectorMath.normalized(vector))
        let active = try await activeGeneration(entity)
        let efSearch = max(configuration.efSearch, 4 * k)
        let iterative = iterativeScan
        // The distance expression and the length condition are those of the partial HNSW index, so
        // the planner can use it; the entity and length are literals for the same reason (the
        // index predicate must be provable from the query).
        let distance = "(c.embedding::vector(\(dimensions)) <=> $1::vector(\(dimensions)))"
        var conditions = [
            "c.entity = \(PostgresConnection.quoteLiteral(entity))", "vector_dims(c.embedding) = \(dimensions)", "c.generation = $2",
        ]
        var parameters: [String?] = [query, String(active)]
        var join = ""
        if !filter.isEmpty {
            join = " JOIN \(s).documents d ON d.entity = c.entity AND d.id = c.id AND d.generation = c.generation"
            for (key, value) in filter.sorted(by: { $0.key < $1.key }) {
                parameters.append(key)
                parameters.append(value)
                conditions.append("d.metadata->>$\(parameters.count - 1) = $\(parameters.count)")
            }
        }
        let whereClause = conditions.joined(separator: " AND ")
        let from = "\(s).chunks c" + join
        let sqlParameters = parameters
        // Each document counts once, with its best chunk: ask for more rows than k until k distinct
        // documents are found or the rows run out.
        var limit = k * 2
        var best: [(id: String, seq: Int, score: Float)] = []
        while true {
            let rowLimit = limit
            let rows = try await read { connection in
                try await connection.withTransaction { connection in
                    try connection.query("SET LOCAL hnsw.ef_search = \(max(efSearch, rowLimit))")
                    if iterative { try connection.query("SET LOCAL hnsw.iterative_scan = relaxed_order") }
                    return try connection.query(
                        "SELECT c.id, c.seq, \(distance) AS distance FROM \(from) WHERE \(whereClause) ORDER BY distance LIMIT \(rowLimit)",
                        sqlParameters
                    ).rows
                }
            }
            var seen = Set<String>()
            best = []
            // relaxed_order may return rows slightly out of order: sort them.
            let scored = rows.compactMap { row -> (id: String, seq: Int, score: Float)? in
                guard let id = row[0], let seq = row[1].flatMap({ Int($0) }), let distance = row[2].flatMap({ Float($0) }) else { return nil }
                return (id, seq, 1 - distance)
            }.sorted { $0.score > $1.score }
            for hit in scored where seen.insert(hit.id).inserted {
                best.append(hit)
                if best.count == k { break }
            }
            if best.count >= k || rows.count < rowLimit || limit >= k * 64 { break }
            limit *= 4
        }
        guard !best.isEmpty else { return [] }
        let ids = PostgresArrayLiteral.make(best.map(\.id))
        let details = try await read { connection in
            try await connection.query(
                """
                SELECT d.id, d.content, d.metadata::text, d.chunk_hashes IS NOT NULL FROM \(s).documents d
                 WHERE d.entity = $1 AND d.generation = $2 AND d.id = ANY($3::text[])
                """,
                [entity, String(active), ids]
            ).rows
        }
        var byID: [String: (content: String, metadata: [String: String?], chunked: Bool)] = [:]
        for row in details {
            guard let id = row[0] else { continue }
            byID[id] = (row[1] ?? "", FlatJSON.decode(row[2] ?? "{}"), row[3] == "t")
        }
        var chunkTexts: [String: String] = [:]
        let chunked = best.filter { byID[$0.id]?.chunked ?? false }
        if !chunked.isEmpty {
            let texts = try await read { connection in
                try await connection.query(
                    """
                    SELECT c.id, c.text FROM \(s).chunks c
                      JOIN unnest($3::text[], $4::integer[]) AS wanted (id, seq) ON wanted.id = c.id AND wanted.seq = c.seq
                     WHERE c.entity = $1 AND c.generation = $2
                    """,
                    [entity, String(active), PostgresArrayLiteral.make(chunked.map(\.id)), PostgresArrayLiteral.make(chunked.map { String($0.seq) })]
                ).rows
            }
            for row in texts { if let id = row[0], let text = row[1] { chunkTexts[id] = text } }
        }
        return best.compactMap { hit in
            guard let document = byID[hit.id] else { return nil }
            return SearchHit(
                id: hit.id, score: hit.score, content: document.content, metadata: document.metadata, chunk: hit.seq,
                chunkText: document.chunked ? chunkTexts[hit.id] : nil)
        }
    }

    /// Builds the HNSW index (cosine) of `entity`'s vectors of `dimensions` floats unless a valid one
    /// exists, without blocking writes (`CREATE INDEX CONCURRENTLY`, on a connection of its own; an
    /// invalid leftover of an interrupted build is dropped first). Searches use an exact scan until
    /// it is there.
    public func ensureSearchIndex(entity: String, dimensions: Int) async throws {
        guard dimensions > 0 else { return }
        let name = Self.searchIndexName(entity: entity, dimensions: dimensions)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration.url, applicationName: "tidemark-index-build", logger: logger)
        } catch {
            throw IndexingError(.store, "cannot connect to build the search index of \(entity): \(error)", underlying: error)
        }
        do {
            try await buildSearchIndex(name: name, entity: entity, dimensions: dimensions, on: connection)
            await connection.close()
        } catch is CancellationError {
            await connection.close()
            logger.info("search index build cancelled; it starts again when the agent next starts", metadata: ["entity": "\(entity)"])
            throw CancellationError()
        } catch {
            await connection.close()
            throw IndexingError(.store, "cannot build the search index of \(entity) (\(dimensions) dimensions): \(error)", underlying: error)
        }
    }

    private func buildSearchIndex(name: String, entity: String, dimensions: Int, on connection: PostgresConnection) async throws {
        let existing = try await connection.query(
            """
            SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2
            """,
            [configuration.schema, name]
        ).rows.first
        if existing?.first == "t" { return }
        let qualified = "\(s).\(PostgresConnection.quoteIdentifier(name))"
        if existing != nil { try await connection.query("DROP INDEX CONCURRENTLY IF EXISTS \(qualified)") }
        let started = ContinuousClock.now
        logger.info("building the search index", metadata: ["entity": "\(entity)", "index.name": "\(name)", "vector.dimensions": "\(dimensions)"])
        try await connection.query("SET maintenance_work_mem = \(PostgresConnection.quoteLiteral(configuration.maintenanceWorkMem))")
        // Cancellable: an agent shutting down (or a test ending) does not wait out a build that can
        // take minutes; the invalid index it leaves is dropped and built again next time.
        try await connection.cancellableQuery(
            """
            CREATE INDEX CONCURRENTLY IF NOT EXISTS \(PostgresConnection.quoteIdentifier(name)) ON \(s).chunks
             USING hnsw ((embedding::vector(\(dimensions))) vector_cosine_ops) WITH (m = \(configuration.hnswM), ef_construction = \(configuration.hnswEFConstruction))
             WHERE entity = \(PostgresConnection.quoteLiteral(entity)) AND vector_dims(embedding) = \(dimensions)
            """)
        logger.info(
            "search index built",
            metadata: ["entity": "\(entity)", "index.name": "\(name)", "duration": "\(ContinuousClock.now - started)"])
    }
}
