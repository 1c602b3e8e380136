import Embedding
import Foundation
import GRDB
import Logging
import Postgres
import Testing

@testable import Indexing

@Suite struct TemplateTests {
    @Test func rendersPlainTextWithoutEscaping() throws {
        let template = try ContentTemplate("{{name}} — {{description}}{{#tags}} [{{tags}}]{{/tags}}")
        #expect(template.render(["name": "Fish & Chips <large>", "description": "\"crispy\" 'hot'", "tags": nil])
            == "Fish & Chips <large> — \"crispy\" 'hot'")
        #expect(template.render(["name": "a", "description": "b", "tags": "x"]) == "a — b [x]")
        #expect(template.columns == ["name", "description", "tags"])
    }

    @Test func findsReferencedColumns() {
        #expect(ContentTemplate.referencedNames("{{{raw}}} {{& amp }} {{^missing}}none{{/missing}} {{! comment }} {{> partial}} {{a.b}} {{.}} {{uppercased(title)}}")
            == ["raw", "amp", "missing", "a", "title"])
    }

    @Test func booleanColumnsAreBooleans() throws {
        let template = try ContentTemplate("{{#active}}on{{/active}}{{^active}}off{{/active}}")
        #expect(template.render(["active": "t"], booleans: ["active"]) == "on")
        #expect(template.render(["active": "f"], booleans: ["active"]) == "off")
    }

    @Test func badTemplateIsAnError() {
        #expect(throws: IndexingError.self) { try ContentTemplate("{{#open}} never closed") }
    }

    @Test func documentIDs() {
        #expect(DocumentID.make(["42"]) == "42")
        #expect(DocumentID.make(["7", "a\"b"]) == "[\"7\",\"a\\\"b\"]")
        #expect(DocumentID.parse("[\"7\",\"a\\\"b\"]", keyCount: 2) == ["7", "a\"b"])
        #expect(DocumentID.parse("42", keyCount: 1) == ["42"])
    }

    @Test func mappingRendersDocumentsAndNamesMissingColumns() throws {
        let mapping = EntityMapping(
            name: "product", table: .init(schema: "public", name: "products"), keyColumns: ["id"],
            template: try ContentTemplate("{{name}}\n{{description}}"), metadataColumns: ["price"])
        let document = try mapping.document(id: "1", values: ["id": "1", "name": "Lamp", "description": "Bright", "price": "9.50"], lsn: LSN(5))
        #expect(document.content == "Lamp\nBright")
        #expect(document.metadata == ["price": "9.50"])
        #expect(document.contentHash == EntityMapping.hash("Lamp\nBright"))
        #expect(document.contentHash.count == 64)
        let error = #expect(throws: IndexingError.self) { try mapping.document(id: "1", values: ["id": "1", "name": "x"], lsn: LSN(5)) }
        #expect(error?.message.contains("description") == true)
    }
}

@Suite struct BuiltinEmbedderTests {
    let embedder = BuiltinEmbedder()

    func cosine(_ a: [Float], _ b: [Float]) -> Float {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in VectorMath.dot(pa, pb) } }
    }

    @Test func deterministicNormalisedAndLexical() async throws {
        let vectors = try await embedder.embed(["Waterproof hiking tent", "waterproof tents for hiking", "cast iron skillet", ""])
        #expect(vectors.count == 4 && vectors.allSatisfy { $0.count == 384 })
        #expect(vectors[0] == embedder.vector("Waterproof hiking tent"))
        #expect(abs(VectorMath.norm(vectors[0]) - 1) < 1e-5)
        #expect(cosine(vectors[0], vectors[1]) > 0.5)
        #expect(cosine(vectors[0], vectors[2]) < 0.2)
        #expect(vectors[3].allSatisfy { $0 == 0 })
    }

    @Test func simdDotMatchesScalar() {
        let a = (0..<389).map { Float($0 % 7) - 3 }
        let b = (0..<389).map { Float($0 % 5) * 0.5 }
        let scalar = zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(abs(cosine(a, b) - scalar) < 1e-3)
    }
}

@Suite struct SQLiteIndexStoreTests {
    func makeStore() throws -> (SQLiteIndexStore, String) {
        let path = NSTemporaryDirectory() + "tidemark-test-\(UUID().uuidString).db"
        return (try SQLiteIndexStore(configuration: .init(path: path), logger: Logger(label: "test")), path)
    }

    func document(_ id: String, _ content: String, metadata: [String: String?] = [:], lsn: UInt64 = 1) -> Document {
        Document(entity: "e", id: id, content: content, contentHash: EntityMapping.hash(content), metadata: metadata, sourceValues: ["body": content], lsn: LSN(lsn))
    }

    @Test func applyWritesDocumentsAndCheckpointTogether() async throws {
        let (store, path) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let embedder = BuiltinEmbedder()
        var batch = IndexBatch()
        for (id, text) in [("1", "red apple pie"), ("2", "green apple tart"), ("3", "steel hammer")] {
            batch.upserts.append(EmbeddedDocument(document: document(id, text, metadata: ["kind": id == "3" ? "tool" : "food"]), vector: embedder.vector(text), model: embedder.model))
        }
        try await store.apply(batch, state: ["checkpoint": "0/10"])
        #expect(try await store.state("checkpoint") == "0/10")
        #expect(try await store.count(entity: "e") == 3)

        let hits = try await store.search(entity: "e", vector: embedder.vector("apple"), k: 2, filter: [:])
        #expect(hits.map(\.id).sorted() == ["1", "2"])
        #expect(hits[0].score >= hits[1].score)
        let tools = try await store.search(entity: "e", vector: embedder.vector("apple"), k: 5, filter: ["kind": "tool"])
        #expect(tools.map(\.id) == ["3"])

        // Keeping the vector: content unchanged, metadata updated.
        var update = IndexBatch()
        update.upserts = [EmbeddedDocument(document: document("3", "steel hammer", metadata: ["kind": "hardware"], lsn: 2), vector: nil, model: embedder.model)]
        update.deletes = ["e": ["1"]]
        try await store.apply(update, state: ["checkpoint": "0/20"])
        let exported = try await store.export(entity: "e", after: nil, limit: 10)
        #expect(exported.map(\.id) == ["2", "3"])
        #expect(exported[1].metadata == ["kind": "hardware"])
        #expect(exported[1].lsn == "0/2")
        let stillFound = try await store.search(entity: "e", vector: embedder.vector("hammer"), k: 1, filter: [:])
        #expect(stillFound.first?.id == "3" && (stillFound.first?.score ?? 0) > 0.5)
        let states = try await store.storedStates(entity: "e", ids: ["2", "3", "9"])
        #expect(Set(states.keys) == ["2", "3"])
        #expect(states["3"]?.sourceValues == ["body": "steel hammer"])

        var truncate = IndexBatch()
        truncate.truncates = ["e"]
        try await store.apply(truncate, state: [:])
        #expect(try await store.count(entity: "e") == 0)
        #expect(try await store.state("checkpoint") == "0/20")
    }

    @Test func deadLettersCountAttemptsAndResolve() async throws {
        let (store, path) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var batch = IndexBatch()
        batch.deadLetters = [DeadLetter(entity: "e", id: "7", stage: "embed", error: "boom", lsn: LSN(1), firstFailedAt: 1, lastFailedAt: 1)]
        try await store.apply(batch, state: [:])
        try await store.apply(batch, state: [:])
        #expect(try await store.deadLetters(entity: "e").map(\.attempts) == [2])
        var resolved = IndexBatch()
        resolved.resolved = ["e": ["7"]]
        try await store.apply(resolved, state: [:])
        #expect(try await store.deadLetters(entity: nil).isEmpty)
    }

    /// Content hashes are kept as their 32 bytes; anything that is not a lowercase SHA-256 in hex
    /// stays text (and so never equals a stored byte hash).
    @Test func contentHashesAreStoredAsBytesOnlyWhenTheyAreLowercaseSHA256Hex() {
        let hash = EntityMapping.hash("red apple pie")
        let bytes = SQLiteIndexStore.storedHash(hash) as? Data
        #expect(bytes?.count == 32 && bytes?.map { String(format: "%02x", $0) }.joined() == hash)
        for other in [hash.uppercased(), String(hash.dropLast()), hash + "0", "h1", "", String(hash.dropLast()) + "g"] {
            #expect(SQLiteIndexStore.storedHash(other) as? String == other, "\(other)")
        }
    }

    /// The write-ahead log is copied into the database file beside the writer (`WALCheckpointer`),
    /// not only when a commit takes it past SQLite's automatic 1 000 pages.
    @Test func theLogIsCopiedIntoTheFileBesideTheWriter() async throws {
        let (store, path) = try makeStore()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        let embedder = BuiltinEmbedder()
        var batch = IndexBatch()
        for id in 0..<1_500 {
            let text = "document \(id) about lamps, desks and oak"
            batch.upserts.append(EmbeddedDocument(document: document("\(id)", text), vector: embedder.vector(text), model: embedder.model))
        }
        try await store.apply(batch, state: ["checkpoint": "0/10"])
        let logged = fileSize(path + "-wal")
        #expect(logged > 2_000_000 && logged < 4_096 * 1_000, "the batch is 2 MB or more of log, under SQLite's own threshold")
        let deadline = ContinuousClock.now + .seconds(5)
        while fileSize(path) < 2_000_000 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(fileSize(path) >= 2_000_000, "the documents reached the database file without another write")
        #expect(try await store.count(entity: "e") == 1_500)
    }

    /// The store's own connections close last, so the last of them copies the log back and removes
    /// `-wal` and `-shm` while the store is released — not a checkpoint connection later, by path,
    /// after a backup may have been restored there.
    @Test func releasingTheStoreClosesTheFileBeforeItReturns() async throws {
        for _ in 0..<20 {
            let path = NSTemporaryDirectory() + "tidemark-test-\(UUID().uuidString).db"
            defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            var store: SQLiteIndexStore? = try SQLiteIndexStore(configuration: .init(path: path), logger: Logger(label: "test"))
            var batch = IndexBatch()
            batch.upserts = [EmbeddedDocument(document: document("1", "red apple pie"), vector: BuiltinEmbedder().vector("red apple pie"), model: "m")]
            try await store?.apply(batch, state: ["checkpoint": "0/10"])
            store = nil
            #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
            // No connection of the store is left: one in exclusive locking mode can write at once.
            var configuration = GRDB.Configuration()
            configuration.busyMode = .immediateError
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE") }
            let alone = try DatabaseQueue(path: path, configuration: configuration)
            try await alone.write { db in try db.execute(sql: "INSERT OR REPLACE INTO state (key, value) VALUES ('alone', 'yes')") }
            #expect(try await alone.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM documents") } == 1)
        }
    }

    /// `synchronous = FULL` reaches the writer (GRDB resets it to NORMAL when it turns WAL mode on).
    @Test func synchronousFullIsTheWritersSetting() throws {
        for full in [false, true] {
            let path = NSTemporaryDirectory() + "tidemark-test-\(UUID().uuidString).db"
            defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            let store = try SQLiteIndexStore(configuration: .init(path: path, synchronousFull: full), logger: Logger(label: "test"))
            let setting = try store.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            #expect(setting == (full ? 2 : 1))
        }
    }

    /// Another process's store on the same file (the agent beside `tidemark search`) checkpoints
    /// too; finding the file busy is no failure and is not logged as one (the soak logged it).
    @Test func aCheckpointThatFindsTheFileBusyIsNotAFailure() {
        #expect(WALCheckpointer.isContention(DatabaseError(resultCode: .SQLITE_BUSY)))
        #expect(WALCheckpointer.isContention(DatabaseError(resultCode: .SQLITE_LOCKED)))
        #expect(!WALCheckpointer.isContention(DatabaseError(resultCode: .SQLITE_IOERR)))
        #expect(!WALCheckpointer.isContention(DatabaseError(resultCode: .SQLITE_CORRUPT)))
        #expect(!WALCheckpointer.isContention(IndexingError(.store, "other")))
    }

    @Test func unwritableLocationIsAClearError() {
        let error = #expect(throws: IndexingError.self) {
            _ = try SQLiteIndexStore(configuration: .init(path: "/proc/no/such/place/index.db"), logger: Logger(label: "test"))
        }
        #expect(error?.message.contains("/proc/no/such/place/index.db") == true)
    }
}

@Suite struct FlatJSONTests {
    @Test func roundTripsAwkwardText() {
        let values: [String: String?] = ["b": "line\nbreak \"quoted\" \\ back", "a": nil, "ü": "émoji 🎉 \u{1}", "": ""]
        let text = FlatJSON.encode(values)
        #expect(text.hasPrefix("{\"\":\"\",\"a\":null,\"b\":"))
        #expect(FlatJSON.decode(text) == values)
        // Agrees with Foundation's parser.
        let foundation = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(foundation?["b"] as? String == "line\nbreak \"quoted\" \\ back")
        #expect(foundation?["ü"] as? String == "émoji 🎉 \u{1}")
    }

    @Test func toleratesForeignAndBrokenInput() {
        #expect(FlatJSON.decode("{\"n\": 12, \"t\": true, \"s\": \"\\u00e9\\ud83c\\udf89\"}") == ["n": "12", "t": "true", "s": "é🎉"])
        #expect(FlatJSON.decode("{\"a\":") == [:])
        #expect(FlatJSON.decode("not json") == [:])
        #expect(FlatJSON.decode("{}") == [:])
    }
}

@Suite struct TemplateFastPathTests {
    /// The concatenating fast path must render exactly what the Mustache renderer renders.
    @Test func fastPathAgreesWithMustache() throws {
        let sources = ["{{name}}\n{{description}}", "{{{name}}} & {{& note}}: <{{ name }}>", "plain text", "{{a}}{{b}}", "x {{missing}} y", "{{flag}}"]
        let values: [String: String?] = ["name": "Fish & <Chips>", "description": "\"hot\"", "note": "n'", "a": "1", "b": nil, "flag": "t"]
        for source in sources {
            #expect(ContentTemplate.simpleSegments(source) != nil, "\(source) should take the fast path")
            let fast = try ContentTemplate(source).render(values, booleans: ["flag"])
            let slow = try ContentTemplate(source + "{{#never}}{{/never}}").render(values, booleans: ["flag"])
            #expect(fast == slow, "\(source)")
        }
        #expect(ContentTemplate.simpleSegments("{{#s}}x{{/s}}") == nil)
        #expect(ContentTemplate.simpleSegments("{{a.b}}") == nil)
        #expect(ContentTemplate.simpleSegments("{{! c }}") == nil)
        #expect(ContentTemplate.simpleSegments("{{unclosed") == nil)
    }
}


@Suite struct JobStoreTests {
    @Test func activeJobsLeaveFinishedOnesOut() async throws {
        let path = NSTemporaryDirectory() + "tidemark-jobs-\(UUID().uuidString).db"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteIndexStore(configuration: .init(path: path), logger: Logger(label: "test"))
        for (index, status) in JobRecord.Status.allCases.enumerated() {
            try await store.saveJob(JobRecord(id: "job-\(index)", entity: "e", kind: .backfill, status: status, createdAt: Double(index)))
        }
        #expect(try await store.activeJobs().map(\.status) == [.paused, .running, .queued])
        #expect(try await store.jobs().count == JobRecord.Status.allCases.count)
        #expect(try await store.setJobControl("job-0", .pause))
        #expect(try await store.job("job-0")?.control == .pause)
    }
}

@Suite struct JobStatusTests {
    func makeStore() throws -> (SQLiteIndexStore, String) {
        let path = NSTemporaryDirectory() + "tidemark-jobs-\(UUID().uuidString).db"
        return (try SQLiteIndexStore(configuration: .init(path: path), logger: Logger(label: "test")), path)
    }

    /// A worker's progress record travels in a pipeline batch and may land after the scheduler saved
    /// the job as failed (or it was cancelled or completed): it must not bring the job back to life.
    @Test(arguments: [JobRecord.Status.failed, .cancelled, .completed])
    func aProgressRecordInABatchNeverOverwritesATerminalStatus(terminal: JobRecord.Status) async throws {
        let (store, path) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var running = JobRecord(id: "job-1", entity: "item", kind: .backfill, status: .running, createdAt: 1)
        running.processed = 1_000
        running.chunks = 1
        var finished = running
        finished.status = terminal
        finished.lastError = terminal == .failed ? "relation \"items\" does not exist" : nil
        finished.finishedAt = 2
        try await store.saveJob(finished)

        var batch = IndexBatch()
        batch.jobs = [running]
        try await store.apply(batch, state: ["checkpoint": "0/10"])
        let stored = try #require(try await store.job("job-1"))
        #expect(stored.status == terminal, "a late progress record must not overwrite \(terminal)")
        #expect(stored.lastError == finished.lastError && stored.finishedAt == 2)
        #expect(try await store.state("checkpoint") == "0/10", "the rest of the batch is written")
        #expect(try await store.activeJobs().isEmpty, "so the scheduler never restarts it")
    }

    @Test func explicitSavesAndFinalBatchWritesStillApply() async throws {
        let (store, path) = try makeStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A new job in a batch, then its progress, then its completion: all written.
        var job = JobRecord(id: "job-2", entity: "item", kind: .rebuild, status: .running, createdAt: 1)
        var batch = IndexBatch()
        batch.jobs = [job]
        try await store.apply(batch, state: [:])
        job.processed = 10
        batch.jobs = [job]
        try await store.apply(batch, state: [:])
        #expect(try await store.job("job-2")?.processed == 10)
        job.status = .completed
        batch.jobs = [job]
        try await store.apply(batch, state: [:])
        #expect(try await store.job("job-2")?.status == .completed)
        // A rollback marks the completed rebuild in the same batch as the generation switch.
        job.rolledBack = true
        batch.jobs = [job]
        try await store.apply(batch, state: [:])
        #expect(try await store.job("job-2")?.rolledBack == true)

        // An explicit save (queueing again, retry-failed) may change a terminal status.
        var failed = JobRecord(id: "job-3", entity: "item", kind: .ids, status: .failed, createdAt: 2)
        try await store.saveJob(failed)
        failed.status = .queued
        try await store.saveJob(failed)
        #expect(try await store.job("job-3")?.status == .queued)
        #expect(try await store.activeJobs().map(\.id) == ["job-3"])
    }
}
