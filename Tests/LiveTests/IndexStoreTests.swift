import Capture
import Embedding
import Foundation
import GRDB
@testable import Indexing
import Postgres
import Testing

@testable import Sync

/// The store protocol's guarantees, checked on every store (SQLite and pgvector) with the same
/// assertions.
@Suite struct IndexStoreTests {
    let embedder = BuiltinEmbedder()

    func document(_ id: String, _ text: String, metadata: [String: String?] = [:], lsn: UInt64 = 1, partition: String? = nil) -> Document {
        Document(
            entity: "e", id: id, content: text, contentHash: EntityMapping.hash(text), metadata: metadata, sourceValues: ["body": text],
            lsn: LSN(lsn), partition: partition)
    }

    /// A document split into the given chunks (texts), with hashes.
    func chunked(_ id: String, _ pieces: [String], lsn: UInt64) -> Document {
        var document = self.document(id, pieces.joined(separator: " "), lsn: lsn)
        document.chunks = pieces.map { DocumentChunk(text: $0, hash: EntityMapping.hash($0)) }
        return document
    }

    func embedded(_ document: Document) -> EmbeddedDocument {
        EmbeddedDocument(document: document, vectors: document.chunks.map { embedder.vector($0.text) }, model: embedder.model)
    }

    func withStore(_ live: LiveCase, _ body: (any IndexStore) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "tidemark-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { _, index in
            let store = try await index.open()
            try await body(store)
            if let store = store as? PgVectorIndexStore { await store.close() }
        }
    }

    @Test(arguments: LiveCase.eachStore)
    func writesSearchesKeepsVectorsDeletesAndTruncates(live: LiveCase) async throws {
        try await withStore(live) { store in
            var batch = IndexBatch()
            for (id, text) in [("1", "fresh apple pie"), ("2", "apple cider vinegar"), ("3", "steel hammer")] {
                batch.upserts.append(embedded(document(id, text, metadata: ["kind": id == "3" ? "tool" : "food"])))
            }
            try await store.apply(batch, state: ["checkpoint": "0/10"])
            #expect(try await store.state("checkpoint") == "0/10")
            #expect(try await store.count(entity: "e") == 3)
            let hits = try await store.search(entity: "e", vector: embedder.vector("apple"), k: 2, filter: [:])
            #expect(hits.map(\.id).sorted() == ["1", "2"])
            #expect(hits.count == 2 && hits[0].score >= hits[1].score)
            let tools = try await store.search(entity: "e", vector: embedder.vector("apple"), k: 5, filter: ["kind": "tool"])
            #expect(tools.map(\.id) == ["3"])
            #expect(tools.first?.metadata == ["kind": "tool"])

            // Content unchanged, metadata updated: the stored vector is kept.
            var update = IndexBatch()
            update.upserts = [EmbeddedDocument(document: document("3", "steel hammer", metadata: ["kind": "hardware"], lsn: 2), vector: nil, model: embedder.model)]
            update.deletes = ["e": ["1"]]
            try await store.apply(update, state: ["checkpoint": "0/20"])
            let exported = try await store.export(entity: "e", after: nil, limit: 10)
            #expect(exported.map(\.id) == ["2", "3"])
            #expect(exported.last?.metadata == ["kind": "hardware"] && exported.last?.lsn == "0/2")
            let stillFound = try await store.search(entity: "e", vector: embedder.vector("hammer"), k: 1, filter: [:])
            #expect(stillFound.first?.id == "3" && (stillFound.first?.score ?? 0) > 0.5)
            let states = try await store.storedStates(entity: "e", ids: ["2", "3", "9"])
            #expect(Set(states.keys) == ["2", "3"])
            #expect(states["3"]?.sourceValues == ["body": "steel hammer"] && states["3"]?.isLatest == true)

            // An older version never replaces a newer one.
            var older = IndexBatch()
            older.upserts = [embedded(document("3", "rusty hammer", lsn: 1))]
            try await store.apply(older, state: [:])
            #expect(try await store.export(entity: "e", after: "2", limit: 10).first?.content == "steel hammer")

            var truncate = IndexBatch()
            truncate.truncates = ["e"]
            try await store.apply(truncate, state: [:])
            #expect(try await store.count(entity: "e") == 0)
            #expect(try await store.search(entity: "e", vector: embedder.vector("hammer"), k: 3, filter: [:]).isEmpty)
            #expect(try await store.state("checkpoint") == "0/20")
        }
    }

    /// Keeping a vector that is gone must fail the whole batch, writing nothing.
    @Test(arguments: LiveCase.eachStore)
    func keepingAVectorThatIsGoneWritesNothing(live: LiveCase) async throws {
        try await withStore(live) { store in
            var first = IndexBatch()
            first.upserts = [embedded(document("1", "alpha"))]
            try await store.apply(first, state: ["checkpoint": "0/1"])
            var batch = IndexBatch()
            batch.deletes = ["e": ["1"]]
            batch.upserts = [
                EmbeddedDocument(document: document("1", "alpha", lsn: 5), vector: nil, model: embedder.model),
                embedded(document("2", "beta", lsn: 5)),
            ]
            await #expect(throws: MissingStoredVectors.self) { try await store.apply(batch, state: ["checkpoint": "0/5"]) }
            #expect(try await store.state("checkpoint") == "0/1", "nothing of the batch was written")
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.id) == ["1"])
        }
    }

    /// Several chunks: a document is found once, by its best chunk; export shows the chunks; an edit
    /// keeps the unchanged chunks' vectors and a shorter document drops the extra chunks.
    @Test(arguments: LiveCase.eachStore)
    func chunkedDocumentsAreFoundOnceByTheirBestChunk(live: LiveCase) async throws {
        try await withStore(live) { store in
            var batch = IndexBatch()
            batch.upserts = [
                embedded(chunked("long", ["the history of the violin", "caring for a garden hose", "baking sourdough bread at home"], lsn: 1)),
                embedded(document("short", "garden hose reel", lsn: 1)),
            ]
            try await store.apply(batch, state: [:])
            let hits = try await store.search(entity: "e", vector: embedder.vector("sourdough bread"), k: 5, filter: [:])
            #expect(hits.map(\.id).filter { $0 == "long" }.count == 1, "one hit per document")
            #expect(hits.first?.id == "long" && hits.first?.chunk == 2 && hits.first?.chunkText == "baking sourdough bread at home")
            let hose = try await store.search(entity: "e", vector: embedder.vector("garden hose"), k: 2, filter: [:])
            #expect(Set(hose.map(\.id)) == ["long", "short"])
            #expect(hose.first { $0.id == "long" }?.chunk == 1)
            #expect(hose.first { $0.id == "short" }?.chunkText == nil)
            let exported = try await store.export(entity: "e", after: nil, limit: 10)
            #expect(exported.first { $0.id == "long" }?.chunks == ["the history of the violin", "caring for a garden hose", "baking sourdough bread at home"])
            #expect(exported.first { $0.id == "short" }?.chunks == nil)
            #expect(try await store.storedStates(entity: "e", ids: ["long"])["long"]?.chunkHashes.count == 3)

            // Edit: the first chunk changes, the second is kept (no vector given), the third goes.
            var edit = chunked("long", ["the history of the cello", "caring for a garden hose"], lsn: 2)
            edit.content = "the history of the cello caring for a garden hose"
            var update = IndexBatch()
            update.upserts = [EmbeddedDocument(document: edit, vectors: [embedder.vector("the history of the cello"), nil], model: embedder.model)]
            try await store.apply(update, state: [:])
            let afterEdit = try await store.export(entity: "e", after: nil, limit: 10).first { $0.id == "long" }
            #expect(afterEdit?.chunks == ["the history of the cello", "caring for a garden hose"])
            let bread = try await store.search(entity: "e", vector: embedder.vector("sourdough bread"), k: 5, filter: [:])
            #expect(bread.first { $0.id == "long" }.map { $0.chunk < 2 } ?? true, "the dropped chunk is gone")
            let kept = try await store.search(entity: "e", vector: embedder.vector("garden hose"), k: 2, filter: [:])
            #expect(kept.first { $0.id == "long" }?.chunk == 1 && (kept.first { $0.id == "long" }?.score ?? 0) > 0.5, "the kept chunk kept its vector")

            // Back to one chunk.
            var single = IndexBatch()
            single.upserts = [embedded(document("long", "now short", lsn: 3))]
            try await store.apply(single, state: [:])
            #expect(try await store.export(entity: "e", after: nil, limit: 10).first { $0.id == "long" }?.chunks == nil)
            #expect(try await store.storedStates(entity: "e", ids: ["long"])["long"]?.chunkHashes == [EntityMapping.hash("now short")])
        }
    }

    /// Generations: a rebuild's rows go to its generation only, the stream's to every maintained
    /// one; a switch changes what search and export read; a sweep removes the old rows.
    @Test(arguments: LiveCase.eachStore)
    func generationsPartitionsSweepsDeadLettersAndJobs(live: LiveCase) async throws {
        try await withStore(live) { store in
            var batch = IndexBatch()
            batch.upserts = [embedded(document("1", "one", partition: "100")), embedded(document("2", "two", partition: "200"))]
            try await store.apply(batch, state: [:])
            var start = IndexBatch()
            start.generationChanges = ["e": GenerationChange(active: 0, maintained: [0, 1])]
            try await store.apply(start, state: [:])
            #expect(try await store.generations("e") == [0, 1])
            var rebuild = IndexBatch()
            rebuild.targetedUpserts = [1: [embedded(document("1", "one rebuilt", lsn: 3, partition: "100"))]]
            rebuild.upserts = [embedded(document("2", "two streamed", lsn: 4, partition: "200"))]
            try await store.apply(rebuild, state: [:])
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.content) == ["one", "two streamed"])
            var switchOver = IndexBatch()
            switchOver.generationChanges = ["e": GenerationChange(active: 1, maintained: [1, 0])]
            try await store.apply(switchOver, state: [:])
            #expect(try await store.activeGeneration("e") == 1)
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.content) == ["one rebuilt", "two streamed"])

            var partition = IndexBatch()
            partition.partitionTruncates = ["e": ["200"]]
            try await store.apply(partition, state: [:])
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.id) == ["1"])

            var sweep = IndexBatch()
            sweep.upserts = [embedded(document("5", "five", lsn: 10))]
            sweep.generationSweeps = ["e": (generation: 1, before: LSN(5))]
            try await store.apply(sweep, state: [:])
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.id) == ["5"])

            var letters = IndexBatch()
            letters.deadLetters = [DeadLetter(entity: "e", id: "7", stage: "embed", error: "boom", lsn: LSN(11), firstFailedAt: 1, lastFailedAt: 1)]
            try await store.apply(letters, state: [:])
            try await store.apply(letters, state: [:])
            #expect(try await store.deadLetters(entity: "e").map(\.attempts) == [2])
            #expect(try await store.deadLetterCount(entity: "e", since: LSN(11)) == 1)
            var resolved = IndexBatch()
            resolved.resolved = ["e": ["7"]]
            try await store.apply(resolved, state: [:])
            #expect(try await store.deadLetters(entity: nil).isEmpty)

            var job = JobRecord(id: "job-1", entity: "e", kind: .backfill, status: .failed, createdAt: 1)
            try await store.saveJob(job)
            job.status = .running
            var progress = IndexBatch()
            progress.jobs = [job]
            try await store.apply(progress, state: [:])
            #expect(try await store.job("job-1")?.status == .failed, "a late progress record never revives a finished job")
            try await store.saveJob(job)
            #expect(try await store.activeJobs().map(\.id) == ["job-1"])
            #expect(try await store.setJobControl("job-1", .pause))
            #expect(try await store.job("job-1")?.control == .pause)
            #expect(try await store.jobs(entity: "other").isEmpty)
        }
    }

    /// pgvector: the search index is built once, used by the planner, and answers like the exact scan.
    /// Validation's fast path: the store digests key ranges from the documents' checks, counts what
    /// it cannot vouch for, and an edit behind the agent's back clears the edited document's check
    /// while the pipeline's own rewrites keep theirs.
    @Test(arguments: LiveCase.eachStore)
    func documentChecksDigestKeyRangesAndEditsBehindTheAgentClearThem(live: LiveCase) async throws {
        let directory = NSTemporaryDirectory() + "tidemark-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { _, index in
            let store = try await index.open()
            defer { if let store = store as? PgVectorIndexStore { Task { await store.close() } } }
            let mapping = EntityMapping(
                name: "e", table: TableName(schema: "public", name: "t"), keyColumns: ["id"], template: try ContentTemplate("{{body}}"),
                metadataColumns: ["kind"], keyTypes: ["bigint"])
            func document(_ id: Int, body: String? = nil, lsn: UInt64) throws -> Document {
                try mapping.document(
                    id: String(id), values: ["id": String(id), "body": body ?? "text \(id)", "kind": id % 2 == 0 ? "even" : nil], lsn: LSN(lsn))
            }
            var batch = IndexBatch()
            for id in [-5, 1, 2, 3, 9, 10, 11, 12, 100, 1_000] { batch.upserts.append(embedded(try document(id, lsn: 10))) }
            try await store.apply(batch, state: [:])
            let order = mapping.keyOrder
            let ranges = [
                OrderKeyRange(lower: nil, upper: order.encoded(["2"])), OrderKeyRange(lower: order.encoded(["2"]), upper: order.encoded(["11"])),
                OrderKeyRange(lower: order.encoded(["11"]), upper: nil),
            ]
            func expectedSum(_ ids: [Int]) throws -> UInt64 {
                try ids.reduce(UInt64(0)) { $0 &+ UInt64(bitPattern: try #require(try document($1, lsn: 10).check).rowHash) }
            }
            let digests = try #require(try await store.checkedDigests(entity: "e", render: mapping.renderFingerprint, ranges: ranges))
            #expect(digests.map(\.documents) == [3, 4, 3, 0], "numeric order, not text order: -5, 1, 2 | 3, 9, 10, 11 | 12, 100, 1000")
            #expect(digests.map(\.verified) == [3, 4, 3, 0])
            let sums = [try expectedSum([-5, 1, 2]), try expectedSum([3, 9, 10, 11]), try expectedSum([12, 100, 1_000])]
            #expect(digests.prefix(3).map(\.sum) == sums)
            let otherTemplate = try #require(try await store.checkedDigests(entity: "e", render: mapping.renderFingerprint &+ 1, ranges: ranges))
            #expect(otherTemplate.map(\.verified) == [0, 0, 0, 0], "documents rendered under another template are not vouched for")

            // The pipeline rewrites 9 at the same position and 10 at a later one: both keep their checks.
            var rewrite = IndexBatch()
            rewrite.upserts = [embedded(try document(9, lsn: 10)), embedded(try document(10, body: "new text", lsn: 20))]
            try await store.apply(rewrite, state: [:])
            #expect(try await store.checkedDigests(entity: "e", render: mapping.renderFingerprint, ranges: ranges)?.map(\.verified) == [3, 4, 3, 0])

            // Writes behind the agent's back: content, source values, metadata, an id, content with a forged position
            // (as an agent that keeps no checks would write it), a copy without a check, a copy with another
            // document's check, and a document moved to another id with its check.
            let allColumns = "entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at, partition, chunk_hashes, row_hash, order_key, render"
            func copied(as id: String) -> String { allColumns.replacingOccurrences(of: "generation, id,", with: "generation, '\(id)',") }
            try await index.editBehindTheAgent("""
                UPDATE DOCUMENTS SET content = 'edited' WHERE id = '3';
                UPDATE DOCUMENTS SET source = replace(source, 'text 11', 'other') WHERE id = '11';
                UPDATE DOCUMENTS SET metadata = '{"kind":"odd"}' WHERE id = '12';
                UPDATE DOCUMENTS SET id = '13' WHERE id = '100';
                UPDATE DOCUMENTS SET content = 'forged', lsn = lsn + 1 WHERE id = '9';
                INSERT INTO DOCUMENTS (entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at)
                     SELECT entity, generation, '5', content, content_hash, metadata, source, model, lsn, updated_at FROM DOCUMENTS WHERE id = '1';
                INSERT INTO DOCUMENTS (\(allColumns)) SELECT \(copied(as: "7")) FROM DOCUMENTS WHERE id = '1000';
                INSERT INTO DOCUMENTS (\(allColumns)) SELECT \(copied(as: "8")) FROM DOCUMENTS WHERE id = '2';
                DELETE FROM DOCUMENTS WHERE id = '2';
                """)
            let edited = try #require(try await store.checkedDigests(entity: "e", render: mapping.renderFingerprint, ranges: ranges))
            #expect(edited.map(\.documents) == [3, 4, 4, 1], "copies count where their copied order key puts them; one has no order key")
            #expect(edited.map(\.verified) == [2, 1, 1, 0], "only the pipeline's own writes keep their checks")
            var unchecked: [String] = []
            for range in ranges + [nil] {
                let documents = try await store.uncheckedDocuments(entity: "e", render: mapping.renderFingerprint, range: range, content: true)
                unchecked += documents.map(\.id)
                #expect(documents.allSatisfy { $0.content != nil && $0.metadataJSON != nil })
            }
            #expect(unchecked.sorted() == ["11", "12", "13", "3", "5", "7", "8", "9"])
        }
    }

    @Test(arguments: LiveCase.eachStore.filter { $0.index != .sqlite })
    func theHNSWIndexAnswersLikeTheExactScan(live: LiveCase) async throws {
        try await withStore(live) { store in
            let words = ["lamp", "desk", "kettle", "tent", "lantern", "mug", "chair", "bottle", "speaker", "hose"]
            var batch = IndexBatch()
            for index in 0..<2_000 {
                let text = "\(words[index % 10]) \(words[(index / 10) % 10]) number \(index)"
                batch.upserts.append(embedded(document(String(index), text, metadata: ["group": String(index % 3)])))
            }
            try await store.apply(batch, state: [:])
            let query = embedder.vector("desk lamp")
            let exact = try await store.search(entity: "e", vector: query, k: 10, filter: [:])
            try await store.ensureSearchIndex(entity: "e", dimensions: embedder.dimensions)
            try await store.ensureSearchIndex(entity: "e", dimensions: embedder.dimensions)  // a no-op the second time
            let approximate = try await store.search(entity: "e", vector: query, k: 10, filter: [:])
            // Many documents tie on the score (every "desk lamp number N" is as near as the next),
            // so recall counts the approximate hits at least as near as the exact tenth, not ids.
            let tenth = try #require(exact.last?.score)
            let recalled = approximate.filter { $0.score >= tenth - 1e-4 }.count
            #expect(exact.count == 10 && recalled >= 8, "recall@10 of the HNSW index against the exact scan: \(recalled)/10")
            let filtered = try await store.search(entity: "e", vector: query, k: 10, filter: ["group": "1"])
            #expect(filtered.count == 10 && filtered.allSatisfy { $0.metadata["group"] == "1" })

            guard let vectorStore = store as? PgVectorIndexStore else { return }
            let connection = try await PostgresConnection.connect(vectorStore.configuration.url, logger: testLogger)
            let name = PgVectorIndexStore.searchIndexName(entity: "e", dimensions: embedder.dimensions)
            let plan = try await connection.query(
                """
                EXPLAIN SELECT c.id FROM \(vectorStore.configuration.schema).chunks c
                 WHERE c.entity = 'e' AND vector_dims(c.embedding) = 384 AND c.generation = 0
                 ORDER BY c.embedding::vector(384) <=> '\(PgVectorIndexStore.vectorText(query))'::vector(384) LIMIT 10
                """
            ).rows.compactMap { $0.first ?? nil }.joined(separator: "\n")
            await connection.close()
            #expect(plan.contains(name), "the planner uses \(name):\n\(plan)")
        }
    }
    /// pgvector: a build whose task is cancelled (an agent shutting down) stops on the server at
    /// once, and the next build replaces the invalid index it left.
    @Test(arguments: LiveCase.eachStore.filter { $0.index != .sqlite })
    func aCancelledSearchIndexBuildStopsAtOnceAndIsRebuiltLater(live: LiveCase) async throws {
        try await withStore(live) { store in
            let vectorStore = try #require(store as? PgVectorIndexStore)
            var batch = IndexBatch()
            for index in 0..<200 { batch.upserts.append(embedded(document(String(index), "item number \(index)"))) }
            try await store.apply(batch, state: [:])
            // A writer's lock on the chunk table holds `CREATE INDEX CONCURRENTLY` at its start for
            // as long as the writer's transaction stays open.
            let writer = try await PostgresConnection.connect(vectorStore.configuration.url, logger: testLogger)
            try await writer.query("BEGIN")
            try await writer.query("LOCK TABLE \(vectorStore.configuration.schema).chunks IN ROW EXCLUSIVE MODE")
            let build = Task { try await store.ensureSearchIndex(entity: "e", dimensions: embedder.dimensions) }
            let watcher = try await PostgresConnection.connect(vectorStore.configuration.url, logger: testLogger)
            let deadline = ContinuousClock.now + .seconds(30)
            while try await watcher.query(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tidemark-index-build' AND query LIKE 'CREATE INDEX%' AND state = 'active'"
            ).rows.first?.first != "1" {
                try #require(ContinuousClock.now < deadline, "the build never started")
                try await Task.sleep(for: .milliseconds(20))
            }
            let finished = Shared(false)
            let outcome = Task {
                defer { finished.value.withLock { $0 = true } }
                return await build.result
            }
            build.cancel()
            let cancelled = ContinuousClock.now
            while !finished.value.withLock({ $0 }), ContinuousClock.now - cancelled < .seconds(10) {
                try await Task.sleep(for: .milliseconds(20))
            }
            // A build that ignores its cancellation waits for the writer: end the writer so that
            // the test fails instead of hanging.
            let stoppedInTime = finished.value.withLock { $0 }
            #expect(stoppedInTime, "the build went on after its task was cancelled")
            if !stoppedInTime { try await writer.query("ROLLBACK") }
            let result = await outcome.value
            #expect(throws: CancellationError.self) { try result.get() }
            let name = PgVectorIndexStore.searchIndexName(entity: "e", dimensions: embedder.dimensions)
            let validity = "SELECT i.indisvalid::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1"
            if stoppedInTime {
                #expect(try await watcher.query(validity, [name]).rows.first?.first != "true", "no valid index after a cancelled build")
            }
            if stoppedInTime { try await writer.query("ROLLBACK") }
            await writer.close()
            try await store.ensureSearchIndex(entity: "e", dimensions: embedder.dimensions)
            #expect(try await watcher.query(validity, [name]).rows == [["true"]])
            await watcher.close()
        }
    }

    /// A file written before one-chunk documents kept their vector in their own row (each vector a
    /// row of `chunks`) is moved on open: search finds the same documents with the same scores, the
    /// documents keep their validation checks, and `chunks` keeps only documents of several chunks —
    /// also after a document of several chunks becomes one.
    @Test func aFileWithOneChunkVectorsInChunksMovesThemIntoTheirDocuments() async throws {
        let path = NSTemporaryDirectory() + "tidemark-layout-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var short = document("short", "garden hose reel")
        short.check = DocumentCheck(rowHash: 42, orderKey: [1, 2], render: 7)
        var batch = IndexBatch()
        batch.upserts = [
            embedded(short), embedded(document("lamp", "quiet desk lamp")),
            embedded(chunked("long", ["the history of the violin", "baking sourdough bread at home"], lsn: 1)),
        ]
        do {
            let store = try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
            try await store.apply(batch, state: ["checkpoint": "0/1"])
        }
        /// The file's rows, through a connection of its own (as another process would see them).
        func rows(_ sql: String) throws -> [Row] {
            let queue = try DatabaseQueue(path: path)
            return try queue.inDatabase { db in try Row.fetchAll(db, sql: sql) }
        }
        #expect(try rows("SELECT id FROM chunks ORDER BY id, seq").map { $0[0] as String } == ["long", "long"], "only the long document's chunks")
        #expect(try rows("SELECT DISTINCT typeof(content_hash) || length(content_hash) FROM documents").map { $0[0] as String } == ["blob32"])
        // The earlier layout: every vector a chunk row, no `embedding` column, the move not done.
        try DatabaseQueue(path: path).inDatabase { db in
            try db.execute(sql: """
                INSERT INTO chunks (entity, id, generation, seq, hash, model, text, vector)
                SELECT entity, id, generation, 0, content_hash, model, NULL, embedding FROM documents WHERE embedding IS NOT NULL;
                DROP TRIGGER documents_vector_outside;
                ALTER TABLE documents DROP COLUMN embedding;
                DELETE FROM state WHERE key = 'layout.one_chunk_vectors';
                DROP TRIGGER documents_written_outside;
                DROP TRIGGER documents_updated_outside;
                UPDATE documents SET content_hash = lower(hex(content_hash));
                CREATE TRIGGER documents_updated_outside AFTER UPDATE ON documents
                  WHEN NEW.row_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM state WHERE key = 'tidemark.writing')
                BEGIN
                  UPDATE documents SET row_hash = NULL WHERE rowid = NEW.rowid;
                END;
                """)
        }
        #expect(try rows("SELECT count(*) FROM chunks").first?[0] == 4)

        let store = try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
        #expect(try rows("SELECT id FROM chunks ORDER BY id, seq").map { $0[0] as String } == ["long", "long"])
        #expect(try rows("SELECT count(*) FROM documents WHERE embedding IS NOT NULL").first?[0] == 2)
        #expect(try rows("SELECT row_hash FROM documents WHERE id = 'short'").first?[0] == 42, "the move is the agent's own write")
        let hose = try await store.search(entity: "e", vector: embedder.vector("garden hose reel"), k: 1, filter: [:])
        #expect(hose.first?.id == "short" && (hose.first?.score ?? 0) > 0.99)
        let bread = try await store.search(entity: "e", vector: embedder.vector("sourdough bread"), k: 1, filter: [:])
        #expect(bread.first?.id == "long" && bread.first?.chunk == 1)
        #expect(try await store.count(entity: "e") == 3)
        #expect(try await store.storedStates(entity: "e", ids: ["short"])["short"]?.contentHash == EntityMapping.hash("garden hose reel"))

        // Unchanged content keeps the moved vector (found by its content hash stored as text); the long document becomes one chunk.
        var update = IndexBatch()
        var edited = document("short", "garden hose reel", metadata: ["kind": "tool"], lsn: 2)
        edited.check = DocumentCheck(rowHash: 43, orderKey: [1, 2], render: 7)
        update.upserts = [
            EmbeddedDocument(document: edited, vector: nil, model: embedder.model),
            embedded(document("long", "now short", lsn: 2)),
        ]
        try await store.apply(update, state: ["checkpoint": "0/2"])
        #expect(try rows("SELECT count(*) FROM chunks").first?[0] == 0)
        #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.contentHash) == ["quiet desk lamp", "now short", "garden hose reel"].map(EntityMapping.hash))
        let kept = try await store.search(entity: "e", vector: embedder.vector("garden hose reel"), k: 1, filter: ["kind": "tool"])
        #expect(kept.first?.id == "short" && (kept.first?.score ?? 0) > 0.99)
        #expect(try await store.search(entity: "e", vector: embedder.vector("now short"), k: 1, filter: [:]).first?.id == "long")

        // The earlier trigger (which let writes marked in `state` through) is replaced: the store's
        // writes keep their checks, another connection's edit still clears one.
        #expect(try rows("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%tidemark.writing%'").first?[0] == 0)
        #expect(try rows("SELECT row_hash FROM documents WHERE id = 'short'").first?[0] == 43)
        try DatabaseQueue(path: path).inDatabase { db in
            try db.execute(sql: "INSERT INTO state (key, value) VALUES ('tidemark.writing', '1')")
            try db.execute(sql: "UPDATE documents SET content = 'edited' WHERE id = 'short'")
        }
        #expect(try rows("SELECT row_hash FROM documents WHERE id = 'short'").first?[0] as Int64? == nil)
    }


    /// Review finding: an older agent (vectors in `chunks`, no `embedding` column known) updates a
    /// document's content behind the new agent. Its row keeps the new agent's `embedding` of the old
    /// content; a later metadata-only change keeps "the stored vector" of the new content hash and
    /// must find the older agent's chunk, not that stale `embedding`.
    @Test func aVectorKeptAfterAnOlderAgentsWriteIsTheVectorOfTheCurrentContent() async throws {
        let path = NSTemporaryDirectory() + "tidemark-older-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let store = try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
            var batch = IndexBatch()
            batch.upserts = [embedded(document("x", "garden hose reel"))]
            try await store.apply(batch, state: [:])
        }
        let current = "cast iron skillet"
        try DatabaseQueue(path: path).inDatabase { db in
            try db.execute(
                sql: """
                    INSERT INTO documents (entity, generation, id, content, content_hash, metadata, source, model, lsn, updated_at)
                    VALUES ('e', 0, 'x', ?, ?, '{}', '{}', ?, 5, 0)
                    ON CONFLICT (entity, id, generation) DO UPDATE SET
                        content = excluded.content, content_hash = excluded.content_hash, model = excluded.model, lsn = excluded.lsn
                    """,
                arguments: [current, EntityMapping.hash(current), embedder.model])
            try db.execute(
                sql: "INSERT INTO chunks (entity, id, generation, seq, hash, model, text, vector) VALUES ('e', 'x', 0, 0, ?, ?, NULL, ?)",
                arguments: [EntityMapping.hash(current), embedder.model, SQLiteIndexStore.blob(embedder.vector(current))])
        }
        let store = try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
        var update = IndexBatch()
        update.upserts = [EmbeddedDocument(document: document("x", current, metadata: ["k": "v"], lsn: 6), vector: nil, model: embedder.model)]
        try await store.apply(update, state: [:])
        let hit = try await store.search(entity: "e", vector: embedder.vector(current), k: 1, filter: [:]).first
        #expect(hit?.id == "x" && (hit?.score ?? 0) > 0.99, "the kept vector is the current content's: \(String(describing: hit?.score))")
    }

    /// Review finding: one batch that writes a document first with several chunks, then with one,
    /// into an index without chunk rows must not leave the first version's chunks behind.
    @Test(arguments: LiveCase.eachStore)
    func aDocumentWrittenWithSeveralChunksThenOneInOneBatchKeepsNoChunks(live: LiveCase) async throws {
        try await withStore(live) { store in
            var batch = IndexBatch()
            batch.upserts = [
                embedded(chunked("x", ["the history of the violin", "baking sourdough bread at home"], lsn: 1)),
                embedded(document("x", "quiet desk lamp", lsn: 2)),
            ]
            try await store.apply(batch, state: [:])
            let hits = try await store.search(entity: "e", vector: embedder.vector("baking sourdough bread at home"), k: 1, filter: [:])
            #expect(hits.allSatisfy { $0.score < 0.5 && $0.chunkText == nil }, "no chunk of the first version: \(hits.map(\.score))")
            #expect(try await store.export(entity: "e", after: nil, limit: 10).map(\.content) == ["quiet desk lamp"])
        }
    }

}

