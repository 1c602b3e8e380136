import Embedding
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import Testing

@testable import Sync

/// What differs between an entity's exported documents and its source rows rendered through the
/// same template: ids missing from the index, ids in the index with no row, and stale documents.
struct Drift: CustomStringConvertible {
    var missing: [String] = []
    var extra: [String] = []
    var stale: [String] = []
    var isEmpty: Bool { missing.isEmpty && extra.isEmpty && stale.isEmpty }
    var description: String { "missing \(missing.prefix(10)), extra \(extra.prefix(10)), stale \(stale.prefix(10))" }
}

/// The error an agent stops with at start-up, or `nil` when it is still running after `timeout`
/// (then it is shut down).
func startupError(_ configuration: AgentConfiguration, timeout: Duration = .seconds(20)) async throws -> (any Error)? {
    let agent = Agent(configuration: configuration, logger: testLogger)
    return await withTaskGroup(of: (any Error)?.self) { group in
        group.addTask {
            do {
                try await agent.run()
                return nil
            } catch {
                return error
            }
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Every document of `entity`, by id.
func exportAll(_ store: any IndexStore, entity: String) async throws -> [String: ExportedDocument] {
    var exported: [String: ExportedDocument] = [:]
    var after: String?
    while true {
        let page = try await store.export(entity: entity, after: after, limit: 1_000)
        if page.isEmpty { break }
        for document in page { exported[document.id] = document }
        after = page.last?.id
    }
    return exported
}

/// Compares the index with the rows of `sql`, whose first column is the document id and whose other
/// columns are named as the template and metadata use them.
func drift(
    _ db: TestDatabase, _ store: any IndexStore, entity: String, sql: String, template: String, metadata: [String] = []
) async throws -> Drift {
    let contentTemplate = try ContentTemplate(template)
    let result = try await db.connection.query(sql)
    var expected: [String: (content: String, metadata: [String: String?])] = [:]
    for row in result.rows {
        var values: [String: String?] = [:]
        for (index, column) in result.columns.enumerated().dropFirst() { values[column.name] = row[index] }
        var meta: [String: String?] = [:]
        for column in metadata { meta[column] = values[column] ?? nil }
        expected[row[0] ?? ""] = (contentTemplate.render(values), meta)
    }
    let exported = try await exportAll(store, entity: entity)
    var drift = Drift()
    drift.missing = expected.keys.filter { exported[$0] == nil }.sorted()
    drift.extra = exported.keys.filter { expected[$0] == nil }.sorted()
    drift.stale = expected.compactMap { id, value -> String? in
        guard let document = exported[id] else { return nil }
        let same = document.content == value.content && document.metadata == value.metadata
            && document.contentHash == EntityMapping.hash(value.content)
        return same ? nil : id
    }.sorted()
    return drift
}

/// The holes found in the fidelity contract by review; each test is named after its case and failed
/// before its fix.
@Suite(.serialized) struct ContractTests {
    static let products = AgentConfiguration.Entity(
        name: "product", table: TableName(schema: "public", name: "products"), content: "{{name}}\n{{description}}",
        metadata: ["price"])
    static let productsSQL = "SELECT id::text, name, description, price::text AS price FROM products"

    func createProducts(_ db: TestDatabase, rows: Int) async throws {
        try await db.exec("""
            CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text, price numeric, stock int DEFAULT 0);
            INSERT INTO products SELECT g, 'product ' || g, 'description of ' || g, g, 0 FROM generate_series(1, \(rows)) g;
            """)
    }

    func productDrift(_ db: TestDatabase, _ store: any IndexStore) async throws -> Drift {
        try await drift(db, store, entity: "product", sql: Self.productsSQL, template: Self.products.content, metadata: ["price"])
    }

    // MARK: 1

    @Test(arguments: LiveServer.all)
    func truncateAndReloadInOneTransactionKeepsEveryRow(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 200)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.pipeline.batchSize = 50
            let embedder = CountingEmbedder()
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.count(entity: "product") == 200)
                try await db.exec("""
                    BEGIN;
                    CREATE TEMP TABLE saved ON COMMIT DROP AS SELECT * FROM products;
                    TRUNCATE products;
                    INSERT INTO products SELECT * FROM saved;
                    COMMIT;
                    """)
                try await waitForCheckpoint(store, try await db.currentLSN())
                let reloaded = try await productDrift(db, store)
                #expect(reloaded.isEmpty, "after truncate-and-reload: \(reloaded)")
                #expect(try await store.count(entity: "product") == 200)

                // Across batches: deletes committed, then the same rows inserted again at once.
                for _ in 0..<5 {
                    try await db.exec("""
                        CREATE TEMP TABLE IF NOT EXISTS saved2 AS SELECT * FROM products WHERE id <= 120;
                        DELETE FROM products WHERE id <= 120;
                        """)
                    try await db.exec("INSERT INTO products SELECT * FROM saved2; DROP TABLE saved2;")
                }
                try await waitForCheckpoint(store, try await db.currentLSN())
                let again = try await productDrift(db, store)
                #expect(again.isEmpty, "after delete then re-insert: \(again)")
            }
        }
    }

    // MARK: 2

    static let events = AgentConfiguration.Entity(
        name: "event", table: TableName(schema: "public", name: "events"), content: "{{title}} in {{region}}")
    static let eventsSQL = #"SELECT '["' || region || '","' || id || '"]' AS doc_id, title, region FROM events"#

    func createEvents(_ db: TestDatabase) async throws {
        try await db.exec("""
            CREATE TABLE events (region text NOT NULL, id int NOT NULL, title text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
            CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
            CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
            INSERT INTO events SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'event ' || g FROM generate_series(1, 200) g;
            """)
    }

    /// Waits until the index equals the source (healing runs in the background), or returns the drift.
    func settledDrift(
        _ db: TestDatabase, _ store: any IndexStore, entity: AgentConfiguration.Entity, sql: String, timeout: Duration = .seconds(30)
    ) async throws -> Drift {
        let deadline = ContinuousClock.now + timeout
        while true {
            try await waitForCheckpoint(store, try await db.currentLSN())
            let current = try await drift(db, store, entity: entity.name, sql: sql, template: entity.content, metadata: entity.metadata)
            if current.isEmpty || ContinuousClock.now > deadline { return current }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test(arguments: LiveServer.all)
    func partitionedTablesStreamEveryChangeUnderTheirRoot(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createEvents(db)
            var configuration = db.agentConfiguration(entities: [Self.events])
            configuration.source.partitionCheckInterval = .milliseconds(200)
            try await withAgent(configuration) { _, store in
                func check(_ step: String) async throws {
                    let drift = try await settledDrift(db, store, entity: Self.events, sql: Self.eventsSQL)
                    #expect(drift.isEmpty, "\(step): \(drift)")
                }
                try await check("initial load")
                try await db.exec("""
                    INSERT INTO events VALUES ('eu', 1000, 'new in eu'), ('us', 1001, 'new in us');
                    UPDATE events SET title = 'edited ' || id WHERE id <= 10;
                    DELETE FROM events WHERE id BETWEEN 11 AND 14;
                    """)
                try await check("insert, update, delete in partitions")
                try await db.exec("UPDATE events SET region = 'us' WHERE region = 'eu' AND id <= 40")
                try await check("rows moved between partitions")
                try await db.exec("TRUNCATE events_eu")
                try await check("TRUNCATE of one partition")
                #expect(try await store.count(entity: "event") > 0, "the other partition's rows stay")
                try await db.exec("""
                    BEGIN;
                    CREATE TEMP TABLE saved ON COMMIT DROP AS SELECT * FROM events_us;
                    TRUNCATE events_us;
                    INSERT INTO events SELECT * FROM saved;
                    INSERT INTO events VALUES ('eu', 2000, 'after the truncate');
                    COMMIT;
                    """)
                try await check("truncate and reload of a partition in one transaction")
                try await db.exec("""
                    CREATE TABLE events_asia (region text NOT NULL, id int NOT NULL, title text, PRIMARY KEY (region, id));
                    INSERT INTO events_asia SELECT 'asia', g, 'asian event ' || g FROM generate_series(5000, 5050) g;
                    ALTER TABLE events ATTACH PARTITION events_asia FOR VALUES IN ('asia');
                    """)
                try await check("ATTACH PARTITION with rows")
                try await db.exec("INSERT INTO events VALUES ('asia', 6000, 'streamed into the new partition')")
                try await check("a change in the attached partition")
                try await db.exec("ALTER TABLE events DETACH PARTITION events_us")
                try await check("DETACH PARTITION")
                try await db.exec("TRUNCATE events")
                try await check("TRUNCATE of the partitioned table")
                #expect(try await store.count(entity: "event") == 0)
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aPublicationViaThePartitionRootIsSwitchedSoPartitionTruncatesArrive(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createEvents(db)
            try await db.exec("CREATE PUBLICATION tidemark FOR TABLE events WITH (publish_via_partition_root = true)")
            let configuration = db.agentConfiguration(entities: [Self.events])
            try await withAgent(configuration) { _, store in
                #expect(try await db.scalar("SELECT pubviaroot::text FROM pg_publication WHERE pubname = 'tidemark'") == "false")
                try await db.exec("TRUNCATE events_us")
                let after = try await settledDrift(db, store, entity: Self.events, sql: Self.eventsSQL)
                #expect(after.isEmpty, "after a partition's TRUNCATE: \(after)")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func inheritanceChildrenAreNotReadThroughTheirParent(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE notes (id int PRIMARY KEY, body text);
                CREATE TABLE archived_notes (archived_at timestamptz) INHERITS (notes);
                INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 20) g;
                INSERT INTO archived_notes SELECT g, 'archived ' || g, now() FROM generate_series(100, 110) g;
                """)
            let entity = AgentConfiguration.Entity(name: "note", table: TableName(schema: "public", name: "notes"), content: "{{body}}")
            let configuration = db.agentConfiguration(entities: [entity])
            try await withAgent(configuration) { _, store in
                try await db.exec("INSERT INTO archived_notes VALUES (111, 'archived later', now()); UPDATE notes SET body = 'edited' WHERE id = 1;")
                let after = try await settledDrift(db, store, entity: entity, sql: "SELECT id::text, body FROM ONLY notes")
                #expect(after.isEmpty, "the parent's own rows, and only them: \(after)")
            }
        }
    }

    // MARK: Found by review of the fixes

    @Test(arguments: LiveServer.all)
    func aChunkNeverOverwritesAVersionCommittedBeforeItsLowWatermarkButInvisibleToItsSnapshot(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            let configuration = db.agentConfiguration(entities: [Self.products])
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                // A commit that is in the WAL (so streamed) but not yet visible to snapshots: it
                // waits for a synchronous standby that never comes (Scripts/pg-servers.sh).
                let holder = try await PostgresConnection.connect(db.url, logger: testLogger)
                let pid = try #require(try await holder.query("SELECT pg_backend_pid()::text").rows.first?.first ?? nil)
                let held = Task {
                    try await holder.simpleQuery(
                        "BEGIN; SET LOCAL synchronous_commit = on; UPDATE products SET description = 'newest' WHERE id = 5; COMMIT;")
                }
                var deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    let five = try await store.export(entity: "product", after: "49", limit: 1).first { $0.id == "5" }
                    if five?.content.hasSuffix("newest") == true { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await db.scalar("SELECT description FROM products WHERE id = 5") == "description of 5", "still invisible")
                // A backfill now reads the old row; it must not write it over the streamed version.
                let job = JobRecord(id: JobRecord.newID(), entity: "product", kind: .backfill)
                try await store.saveJob(job)
                try await Task.sleep(for: .seconds(2))
                try await db.exec("SELECT pg_cancel_backend(\(pid))")
                _ = try? await held.value
                await holder.close()
                deadline = ContinuousClock.now + .seconds(30)
                while try await store.job(job.id)?.status != .completed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await store.job(job.id)?.status == .completed)
                #expect(try await db.scalar("SELECT description FROM products WHERE id = 5") == "newest")
                let after = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(after.isEmpty, "after the backfill: \(after)")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func aKeyReusedInOneBatchNeverTakesTheDeletedRowsToastValues(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE articles (id int PRIMARY KEY, title text, body text);
                ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;
                INSERT INTO articles SELECT g, 'title ' || g, repeat('body of ' || g || ' ', 800) FROM generate_series(1, 5) g;
                """)
            let entity = AgentConfiguration.Entity(name: "article", table: TableName(schema: "public", name: "articles"), content: "{{title}}: {{body}}")
            var configuration = db.agentConfiguration(entities: [entity])
            configuration.pipeline.batchDelay = .milliseconds(200)
            let sql = "SELECT id::text, title, body FROM articles"
            try await withAgent(configuration) { _, store in
                try await db.exec("BEGIN; UPDATE articles SET id = 3000 WHERE id = 1; UPDATE articles SET id = 1 WHERE id = 2; COMMIT;")
                try await db.exec("DELETE FROM articles WHERE id = 3; UPDATE articles SET id = 3 WHERE id = 4;")
                let after = try await settledDrift(db, store, entity: entity, sql: sql)
                #expect(after.isEmpty, "after keys were reused: \(after)")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func equalContentInOneBatchIsEmbeddedOnce(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 10)
            let configuration = db.agentConfiguration(entities: [Self.products])
            let embedder = CountingEmbedder()
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let before = embedder.texts
                try await db.exec("INSERT INTO products SELECT g, 'same name', 'same description', g FROM generate_series(100, 199) g")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(embedder.texts - before == 1, "100 documents with one content: \(embedder.texts - before) texts embedded")
                #expect(try await productDrift(db, store).isEmpty)
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aDeferrablePrimaryKeyIsRefusedWithTheFix(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE slots (id int, label text, CONSTRAINT slots_pkey PRIMARY KEY (id) DEFERRABLE INITIALLY DEFERRED)")
            let configuration = db.agentConfiguration(entities: [AgentConfiguration.Entity(
                name: "slot", table: TableName(schema: "public", name: "slots"), content: "{{label}}")])
            let error = try await startupError(configuration) as? SyncError
            #expect(error?.message.contains("entities.slot.table") == true, "\(String(describing: error))")
            #expect(error?.message.contains("DEFERRABLE") == true && error?.message.contains("NOT DEFERRABLE") == true)
        }
    }

    @Test(arguments: LiveServer.all)
    func keysWhoseTextIsNotTheirValueAreReReadByValue(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE codes (code char(5) PRIMARY KEY, title text, body text);
                CREATE TABLE hosts (addr inet PRIMARY KEY, title text, body text);
                ALTER TABLE codes ALTER COLUMN body SET STORAGE EXTERNAL;
                ALTER TABLE hosts ALTER COLUMN body SET STORAGE EXTERNAL;
                INSERT INTO codes VALUES ('k1', 'code one', repeat('long code body ', 800));
                INSERT INTO hosts VALUES ('10.0.0.1', 'host one', repeat('long host body ', 800));
                """)
            let codes = AgentConfiguration.Entity(name: "code", table: TableName(schema: "public", name: "codes"), content: "{{title}}: {{body}}")
            let hosts = AgentConfiguration.Entity(name: "host", table: TableName(schema: "public", name: "hosts"), content: "{{title}}: {{body}}")
            let configuration = db.agentConfiguration(entities: [codes, hosts])
            try await withAgent(configuration) { _, store in
                // Key changes with the TOASTed body unchanged: the new row is read again by its key.
                try await db.exec("UPDATE codes SET code = 'xy' WHERE code = 'k1'; UPDATE hosts SET addr = '10.9.9.9' WHERE addr = '10.0.0.1';")
                let codeDrift = try await settledDrift(db, store, entity: codes, sql: "SELECT concat(code), title, body FROM codes")
                let hostDrift = try await settledDrift(db, store, entity: hosts, sql: "SELECT concat(addr), title, body FROM hosts")
                #expect(codeDrift.isEmpty, "char(5) key: \(codeDrift)")
                #expect(hostDrift.isEmpty, "inet key: \(hostDrift)")
                #expect(try await store.deadLetters(entity: nil).isEmpty)
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aTemplateUsingAGeneratedColumnIsRefusedWithTheFix(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, doc text GENERATED ALWAYS AS (title || ' :: ' || body) STORED)")
            let configuration = db.agentConfiguration(entities: [AgentConfiguration.Entity(
                name: "doc", table: TableName(schema: "public", name: "docs"), content: "{{doc}}")])
            let error = try await startupError(configuration) as? SyncError
            #expect(error?.message.contains("entities.doc.content") == true, "\(String(describing: error))")
            #expect(error?.message.contains("generated") == true)
        }
    }

    // MARK: 3

    @Test(arguments: LiveServer.all)
    func slotLostDuringABackfillIsHealedByAFullReload(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 60_000)
            try await db.exec("ANALYZE products")
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.backfill.chunkDuration = .milliseconds(20)
            // Stop the agent in the middle of its initial load.
            try await withAgent(configuration, waitForLoad: false) { _, store in
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline {
                    if let job = try await store.jobs(entity: "product").first, job.processed >= 5_000 { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            let store = try await Agent.openStore(configuration, logger: testLogger)
            let interrupted = try #require(try await store.jobs(entity: "product").first)
            #expect(interrupted.status != .completed, "stopped mid-load at \(interrupted.processed) rows")
            // Changes while the slot is gone: an insert, an update behind the cursor, a delete behind it.
            try await db.exec("SELECT pg_drop_replication_slot('\(db.name)')")
            try await db.exec("""
                INSERT INTO products VALUES (100001, 'inserted while away', 'x', 1);
                UPDATE products SET description = 'updated while away' WHERE id = 3;
                DELETE FROM products WHERE id = 4;
                """)
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let healed = try await productDrift(db, store)
                #expect(healed.isEmpty, "after the gap: \(healed)")
                let jobs = try await store.jobs(entity: "product")
                #expect(jobs.first { $0.id == interrupted.id }?.status == .cancelled, "the job of the lost slot is not resumed")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func indexRestoredFromABackupIsHealedByAFullReload(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            let directory = NSTemporaryDirectory() + "tidemark-backup-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let configuration = db.agentConfiguration(entities: [Self.products], indexPath: directory + "/index.db")
            try await withAgent(configuration) { _, store in try await waitForCheckpoint(store, try await db.currentLSN()) }
            // A backup of the index (the agent is stopped, so the file is consistent).
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: directory + "/index.db" + suffix) {
                try FileManager.default.copyItem(atPath: directory + "/index.db" + suffix, toPath: directory + "/backup.db" + suffix)
            }
            try await withAgent(configuration) { _, store in
                try await db.exec("UPDATE products SET description = 'after the backup' WHERE id <= 10; DELETE FROM products WHERE id > 290;")
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            // Restore the backup: the slot has confirmed positions this index never saw.
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: directory + "/index.db" + suffix)
                if FileManager.default.fileExists(atPath: directory + "/backup.db" + suffix) {
                    try FileManager.default.copyItem(atPath: directory + "/backup.db" + suffix, toPath: directory + "/index.db" + suffix)
                }
            }
            let restored = try await Agent.openStore(configuration, logger: testLogger)
            let oldIncarnation = try await restored.state("slot.incarnation")
            try await withAgent(configuration, waitForLoad: false) { _, store in
                let deadline = ContinuousClock.now + .seconds(60)
                while try await store.state("slot.incarnation") == oldIncarnation, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await waitForLoaded(store, ["product"])
                try await waitForCheckpoint(store, try await db.currentLSN())
                let healed = try await productDrift(db, store)
                #expect(healed.isEmpty, "after restoring a backup: \(healed)")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aCleanRestartAfterIdleTimeIsNotMistakenForAGap(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 50)
            let configuration = db.agentConfiguration(entities: [Self.products])
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                // WAL that is not ours moves on while the agent idles (another table, not published).
                try await db.exec("CREATE TABLE unrelated (x int)")
                for round in 0..<5 {
                    try await db.exec("INSERT INTO unrelated VALUES (\(round))")
                    try await Task.sleep(for: .milliseconds(300))
                }
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            let store = try await Agent.openStore(configuration, logger: testLogger)
            let incarnation = try await store.state("slot.incarnation")
            let jobs = try await store.jobs().count
            try await withAgent(configuration) { _, store in
                try await db.exec("UPDATE products SET name = 'after restart' WHERE id = 1")
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            #expect(try await store.state("slot.incarnation") == incarnation, "the same slot went on")
            #expect(try await store.jobs().count == jobs, "no reload was queued")
            #expect(try await productDrift(db, store).isEmpty)
        }
    }

    // MARK: 4

    @Test func rebuildChunkRowsDeletedInTheSameBatchStayDeleted() {
        var batch = PendingBatch()
        let key = PendingBatch.Key(entity: "product", id: "7")
        batch.upsertTargeted(key, generation: 2, values: ["name": .text("seven")], lsn: LSN(100))
        batch.delete(key, lsn: LSN(200))
        #expect(batch.targeted[key] == nil, "a delete after the chunk's high watermark removes the chunk row")
        batch.upsertTargeted(key, generation: 2, values: ["name": .text("seven")], lsn: LSN(300))
        batch.upsert(key, values: ["name": .text("seven, edited")], lsn: LSN(400))
        #expect(batch.targeted[key] == nil, "a newer stream version replaces the chunk row in every generation")
    }

    @Test(arguments: LiveServer.first)
    func rebuildUnderConcurrentDeletesResurrectsNothing(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 20_000)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.backfill.chunkDuration = .milliseconds(10)
            configuration.pipeline.batchDelay = .milliseconds(100)
            try await withAgent(configuration) { _, store in
                var job = JobRecord(id: JobRecord.newID(), entity: "product", kind: .rebuild)
                try await store.saveJob(job)
                // Delete and re-key rows just behind the rebuild's cursor while it runs.
                var random = SplitMix64(seed: 4)
                let deadline = ContinuousClock.now + .seconds(90)
                while ContinuousClock.now < deadline {
                    job = try #require(try await store.job(job.id))
                    if job.status == .completed { break }
                    let cursor = Int(job.cursor?.first.flatMap { $0 } ?? "0") ?? 0
                    let id = cursor + Int(random.next() % 2_000)
                    try await db.exec("DELETE FROM products WHERE id = \(id); UPDATE products SET id = id + 100000 WHERE id = \(id + 1);")
                }
                #expect(job.status == .completed)
                try await waitForCheckpoint(store, try await db.currentLSN())
                let after = try await productDrift(db, store)
                #expect(after.isEmpty, "after a rebuild under deletes: \(after)")
            }
        }
    }

    // MARK: 5

    @Test(arguments: LiveServer.first)
    func deadLetterRetryRunsThroughTheAgentAsAnIdsJob(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 20)
            let configuration = db.agentConfiguration(entities: [Self.products])
            let embedder = CountingEmbedder(poison: "POISON", failures: 3)  // the pair, then each alone
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await db.exec("UPDATE products SET name = 'POISON pill' WHERE id IN (5, 6)")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.deadLetters(entity: "product").map(\.id) == ["5", "6"])
                // Row 6 goes away before the retry runs: the retry must not bring it back.
                try await db.exec("DELETE FROM products WHERE id = 6")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let jobs = try await DeadLetterRetry.queue(try await store.deadLetters(entity: nil), store: store)
                #expect(jobs.count == 1 && jobs.first?.kind == .ids)
                let job = try #require(jobs.first)
                let deadline = ContinuousClock.now + .seconds(30)
                while try await store.job(job.id)?.status != .completed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.deadLetters(entity: nil).isEmpty)
                let after = try await productDrift(db, store)
                #expect(after.isEmpty, "after the retry: \(after)")
            }
        }
    }

    // MARK: 6

    @Test(arguments: LiveServer.all)
    func twoEntitiesOnOneTableWithDifferentKeysFollowKeyChangesAndDeletes(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE parts (id int PRIMARY KEY, sku text NOT NULL UNIQUE, label text);
                ALTER TABLE parts REPLICA IDENTITY FULL;
                INSERT INTO parts SELECT g, 'sku-' || g, 'part ' || g FROM generate_series(1, 50) g;
                """)
            let byID = AgentConfiguration.Entity(name: "part", table: TableName(schema: "public", name: "parts"), content: "{{label}} {{sku}}")
            let bySKU = AgentConfiguration.Entity(
                name: "part_by_sku", table: TableName(schema: "public", name: "parts"), content: "{{label}} #{{id}}", key: ["sku"])
            let configuration = db.agentConfiguration(entities: [byID, bySKU])
            try await withAgent(configuration) { _, store in
                try await db.exec("UPDATE parts SET sku = 'renamed-' || id WHERE id <= 5")
                try await db.exec("UPDATE parts SET id = id + 1000 WHERE id BETWEEN 6 AND 8")
                try await db.exec("DELETE FROM parts WHERE id IN (9, 10)")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let ids = try await drift(db, store, entity: "part", sql: "SELECT id::text, label, sku FROM parts", template: byID.content)
                let skus = try await drift(db, store, entity: "part_by_sku", sql: "SELECT sku, label, id::text AS id FROM parts", template: bySKU.content)
                #expect(ids.isEmpty, "keyed by id: \(ids)")
                #expect(skus.isEmpty, "keyed by sku: \(skus)")
            }
        }
    }

    // MARK: 8

    @Test(arguments: LiveServer.all)
    func staleContentIsNeverWrittenAfterAFailedEmbedding(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE articles (id int PRIMARY KEY, title text, body text, views int DEFAULT 0);
                ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;
                """)
            let body = String(repeating: "long body text ", count: 1_000)
            let entity = AgentConfiguration.Entity(
                name: "article", table: TableName(schema: "public", name: "articles"), content: "{{title}}: {{body}}", metadata: ["views"])
            let configuration = db.agentConfiguration(entities: [entity])
            let embedder = CountingEmbedder(poison: "POISON", failures: 1_000)
            let sql = "SELECT id::text, title, body, views::text AS views FROM articles"
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await db.connection.query("INSERT INTO articles VALUES (1, 'first', $1)", [body])
                try await waitForCheckpoint(store, try await db.currentLSN())
                // The new body cannot be embedded: a dead letter, the old document stays.
                try await db.connection.query("UPDATE articles SET body = $1 WHERE id = 1", ["POISON " + body])
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.deadLetters(entity: "article").map(\.id) == ["1"])
                // A metadata-only update: the body arrives as unchanged TOAST. It must not be taken
                // from the old document, which is not the row's latest version.
                try await db.exec("UPDATE articles SET views = 5 WHERE id = 1")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let document = try #require(try await store.export(entity: "article", after: nil, limit: 1).first)
                #expect(!(document.content == "first: " + body && document.metadata["views"] == "5"), "stale content written as current")
                #expect(try await store.deadLetters(entity: "article").map(\.id) == ["1"], "the row is still failing")
            }
            // Once the provider accepts it, the retry indexes the latest version.
            try await withAgent(configuration) { _, store in
                let jobs = try await DeadLetterRetry.queue(try await store.deadLetters(entity: nil), store: store)
                let job = try #require(jobs.first)
                let deadline = ContinuousClock.now + .seconds(30)
                while try await store.job(job.id)?.status != .completed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let after = try await drift(db, store, entity: "article", sql: sql, template: entity.content, metadata: ["views"])
                #expect(after.isEmpty, "after the retry: \(after)")
            }
        }
    }

    // MARK: 9

    @Test(arguments: LiveServer.first)
    func aFailedToastRereadBecomesADeadLetterNotAStop(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE articles (id int PRIMARY KEY, title text, body text, views int DEFAULT 0);
                ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;
                """)
            try await createProducts(db, rows: 10)
            let body = String(repeating: "long body text ", count: 1_000)
            let entity = AgentConfiguration.Entity(
                name: "article", table: TableName(schema: "public", name: "articles"), content: "{{title}}: {{body}}", metadata: ["views"])
            let configuration = db.agentConfiguration(entities: [entity, Self.products])
            let embedder = CountingEmbedder(poison: "POISON", failures: 1_000)
            try await withAgent(configuration, embedder: embedder) { _, store in
                // No document for row 1 (its embedding failed), so an unchanged TOAST body must be re-read…
                try await db.connection.query("INSERT INTO articles VALUES (1, 'POISON', $1)", [body])
                try await waitForCheckpoint(store, try await db.currentLSN())
                // …and the re-read fails: the column is gone by the time the agent reads the row (the
                // change itself was decoded with the columns it had when it was made).
                try await db.exec("""
                    BEGIN;
                    UPDATE articles SET views = 5, title = 'fine' WHERE id = 1;
                    ALTER TABLE articles RENAME COLUMN body TO body_renamed;
                    COMMIT;
                    """)
                try await db.exec("UPDATE products SET name = 'still flowing' WHERE id = 1")
                try await waitForCheckpoint(store, try await db.currentLSN(), timeout: .seconds(30))
                let letters = try await store.deadLetters(entity: "article")
                #expect(letters.map(\.id) == ["1"])
                #expect(letters.first?.stage == "reread", "\(letters)")
                let products = try await store.export(entity: "product", after: nil, limit: 1)
                #expect(products.first?.content.hasPrefix("still flowing") == true)
            }
        }
    }

    // MARK: 13

    @Test(arguments: LiveServer.all)
    func shutdownConfirmsTheLastAppliedPositionToTheServer(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 10)
            let configuration = db.agentConfiguration(entities: [Self.products])
            // Embedding takes a while, so the last batch is still being prepared at shutdown.
            let embedder = CountingEmbedder(delay: .milliseconds(400))
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                try await db.exec("UPDATE products SET name = 'last words' WHERE id = 1")
                try await Task.sleep(for: .milliseconds(150))
            }
            let store = try await Agent.openStore(configuration, logger: testLogger)
            let checkpoint = try #require(try await store.state("checkpoint").flatMap { LSN($0) })
            let confirmed = try #require(try await db.scalar(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", [db.name]).flatMap { LSN($0) })
            #expect(try await store.export(entity: "product", after: nil, limit: 1).first?.content.hasPrefix("last words") == true)
            #expect(confirmed == checkpoint, "the server was told the last durable position (\(confirmed) vs \(checkpoint))")
        }
    }

    // MARK: 15

    @Test(arguments: LiveServer.first)
    func heartbeatReconnectsAfterItsConnectionIsKilled(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 5)
            let configuration = db.agentConfiguration(entities: [Self.products])
            try await withAgent(configuration) { _, _ in
                func heartbeatPIDs() async throws -> [String] {
                    try await db.connection.query(
                        "SELECT pid::text FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tidemark-heartbeat'", [db.name]
                    ).rows.compactMap { $0[0] }
                }
                var deadline = ContinuousClock.now + .seconds(10)
                var first: [String] = []
                while first.isEmpty, ContinuousClock.now < deadline {
                    first = try await heartbeatPIDs()
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(first.count == 1, "the heartbeat runs on a connection of its own")
                try await db.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(db.name)' AND application_name = 'tidemark-heartbeat'")
                deadline = ContinuousClock.now + .seconds(10)
                var second: [String] = []
                while (second.isEmpty || second == first), ContinuousClock.now < deadline {
                    second = try await heartbeatPIDs()
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(!second.isEmpty && second != first, "a new heartbeat connection replaced the killed one")
            }
        }
    }
}
