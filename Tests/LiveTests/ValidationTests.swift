import Capture
import Embedding
import Foundation
import Indexing
import Postgres
import Synchronization
import Testing

@testable import Sync

/// Drift validation and repair against real servers: the row hash agrees between PostgreSQL and the
/// agent for every kind of column; an entity in sync validates clean reading a small fraction of
/// its bytes; drift made behind the agent's back is found exactly and repaired through the
/// pipeline; rows written while the slot was lost are found, then healed by the agent; a concurrent
/// workload never shows as drift; the command line reaches the running agent.
@Suite(.serialized) struct ValidationTests {
    static let item = AgentConfiguration.Entity(
        name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}\n{{body}}", metadata: ["tag"])

    static func createItems(_ db: TestDatabase, rows: Int) async throws {
        try await db.exec("""
            CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, body text, tag text, hits int DEFAULT 0);
            INSERT INTO items SELECT g, 'item ' || g, 'the body of item ' || g || ' with some words: ' || md5(g::text), 't' || (g % 7)
              FROM generate_series(1, \(rows)) g;
            ANALYZE items;
            """)
    }

    static func configuration(_ db: TestDatabase, indexPath: String? = nil) -> AgentConfiguration {
        var configuration = indexPath.map { db.agentConfiguration(entities: [item], indexPath: $0) } ?? db.agentConfiguration(entities: [item])
        // Runs are started by the tests, not by the clock.
        configuration.validation.schedule = nil
        return configuration
    }

    static func indexPath(_ configuration: AgentConfiguration) -> String {
        if case .sqlite(let path) = configuration.index { return path }
        return ""
    }

    /// Drops the test's slot once the stopped agent's walsender has let go of it.
    static func dropSlot(_ db: TestDatabase) async throws {
        for _ in 0..<150 {
            let dropped = try await db.connection.query(
                "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [db.name])
            if !dropped.rows.isEmpty { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the slot stayed active after the agent stopped")
    }

    @Test(arguments: LiveServer.all)
    func theServerHashesEveryKindOfColumnLikeTheAgent(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec(#"""
                CREATE TABLE typed (id bigint PRIMARY KEY, t text, v varchar(20), c char(5), b boolean, n numeric(10,3), f float8,
                    u uuid, ts timestamptz, d date, j jsonb, a int[], ip inet, raw bytea, e text);
                INSERT INTO typed VALUES
                    (1, 'plain', 'v', 'ab', true, 1.5, 0.1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2025-06-01 12:00:00+02', '2025-06-01',
                     '{"k": [1, "x"]}', '{1,2,NULL}', '10.0.0.1', '\x00ff', NULL),
                    (2, $q$quote ' " back\ $q$ || chr(10) || 'line' || chr(9) || 'tab' || chr(1), '', '', false, -0.001, 'NaN',
                     NULL, NULL, NULL, NULL, NULL, NULL, NULL, ''),
                    (3, 'naïve café 🌊', NULL, NULL, NULL, NULL, 1e300, NULL, 'infinity', '-infinity', 'null', '{}', '::1', NULL,
                     repeat('long text ', 1000)),
                    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
                """#)
            let columns = ["t", "v", "c", "b", "n", "f", "u", "ts", "d", "j", "a", "ip", "raw", "e"]
            let entity = EntityMapping(
                name: "typed", table: TableName(schema: "public", name: "typed"), keyColumns: ["id"], template: try ContentTemplate("{{t}}"),
                metadataColumns: columns, keyTypes: ["bigint"])
            let digest = try await SourceDigest.open(url: db.url, entity: entity, logger: testLogger)
            let list = entity.selectColumns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
            let result = try await db.connection.query("SELECT \(list), (\(digest.hashExpression))::text FROM typed ORDER BY id")
            await digest.close()
            #expect(result.rows.count == 4)
            for row in result.rows {
                let values = Array(row.prefix(entity.selectColumns.count))
                var byName: [String: String?] = [:]
                for (index, column) in entity.selectColumns.enumerated() { byName[column] = values[index] }
                let agent = RowHash.of((entity.keyColumns + entity.sourceColumns).map { byName[$0] ?? nil })
                #expect(row.last.flatMap { $0.flatMap { Int64($0) } } == RowHash.signed(agent), "row \(row[0] ?? "?")")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func anEntityInSyncValidatesCleanAndReadsLittleOfTheTable(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await Self.createItems(db, rows: 20_000)
            let configuration = Self.configuration(db)
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let validator = try await Validator.make(configuration, store: store, logger: testLogger)
                let result = try await validator.validate(entity: "item")
                #expect(result.status == .inSync, "\(result)")
                #expect(result.sourceRows == 20_000 && result.documents == 20_000)
                #expect(result.ranges >= 19 && result.differingRanges == 0 && result.candidates == 0, "\(result)")
                #expect(result.driftCount == 0 && result.unsettled.count == 0)
                let tableBytes = try #require(Int(try await db.scalar(
                    "SELECT sum(octet_length(id::text) + octet_length(title) + octet_length(body) + octet_length(tag))::text FROM items") ?? ""))
                #expect(result.source.bytes * 20 < tableBytes, "read \(result.source.bytes) bytes of \(tableBytes)")
                #expect(result.index.rows == 20_000)
                // The store digests the ranges from the documents' checks: no document crosses to the validator.
                #expect(result.index.bytes * 20 < tableBytes, "read \(result.index.bytes) bytes of the index")

                // The source's digests spread over three connections (a few ranges per statement) agree.
                var spread = validator.configuration
                spread.source.rangesPerStatement = 3
                spread.sourceConnections = 3
                let parallel = Validator(
                    configuration: spread, entities: [try #require(validator.entity("item"))], store: store, sourceURL: configuration.source.url,
                    logger: testLogger)
                let again = try await parallel.validate(entity: "item")
                #expect(again.status == .inSync && again.sourceRows == 20_000 && again.ranges == result.ranges, "\(again)")
                #expect(again.source.queries > result.source.queries)

                // Documents without checks (a file from before them) are read in full, and an edit among them is still found.
                let file = try IndexFile(path: Self.indexPath(configuration))
                try file.dropChecks("item")
                try file.setContent("item", id: "77", to: "edited while unchecked")
                let legacy = try await validator.validate(entity: "item")
                #expect(legacy.stale == .init(ids: ["77"]) && legacy.missing.count == 0 && legacy.orphaned.count == 0, "\(legacy)")
                #expect(legacy.index.rows >= 20_000 && legacy.index.bytes > tableBytes / 2, "every document read: \(legacy.index)")
            }
        }
    }

    /// The pgvector store digests key ranges from its documents' checks too, and its trigger turns
    /// an edit made with SQL into a full comparison of that document.
    @Test(arguments: LiveCase.all.filter { $0.index != .sqlite })
    func aPgvectorIndexValidatesFromItsChecksAndEditsAreFound(live: LiveCase) async throws {
        let directory = NSTemporaryDirectory() + "tidemark-validation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { db, index in
            try await Self.createItems(db, rows: 5_000)
            var configuration = Self.configuration(db)
            configuration.index = index.index
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let validator = try await Validator.make(configuration, store: store, logger: testLogger)
                let clean = try await validator.validate(entity: "item")
                #expect(clean.status == .inSync && clean.documents == 5_000 && clean.ranges >= 4, "\(clean)")
                #expect(clean.index.bytes < 2_000, "the store digested the ranges: \(clean.index)")

                try await index.editBehindTheAgent("""
                    DELETE FROM DOCUMENTS WHERE id IN ('12', '4000');
                    UPDATE DOCUMENTS SET content = 'edited with SQL' WHERE id = '321';
                    UPDATE DOCUMENTS SET source = replace(source, 'item 999', 'item nine') WHERE id = '999';
                    """)
                let found = try await validator.validate(entity: "item")
                #expect(found.missing == .init(ids: ["12", "4000"]) && found.stale == .init(ids: ["321", "999"]), "\(found)")
                #expect(found.orphaned.count == 0 && found.unsettled.count == 0)
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func driftMadeBehindTheAgentsBackIsFoundExactlyAndRepaired(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await Self.createItems(db, rows: 3_000)
            let configuration = Self.configuration(db)
            // The first two embeddings of the poisoned title fail: its update becomes a dead letter,
            // which the repair retries successfully.
            let embedder = CountingEmbedder(poison: "POISON", failures: 2)
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await db.exec("UPDATE items SET title = 'POISON 50' WHERE id = 50; UPDATE items SET title = 'changed 40' WHERE id = 40")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.deadLetters(entity: "item").map(\.id) == ["50"])

                let file = try IndexFile(path: Self.indexPath(configuration))
                #expect(try file.deleteDocuments("item", ids: ["5", "1500", "2999"]) == 3)
                try file.insertCopies("item", of: "7", as: ["100001", "100002"])
                // Copies that carry another document's check, and a document moved to another id with its check.
                try file.insertCopies("item", of: "8", as: ["100003"], keepingChecks: true)
                try file.insertCopies("item", of: "1600", as: ["100004"], keepingChecks: true)
                #expect(try file.deleteDocuments("item", ids: ["1600"]) == 1)
                try file.setSourceValue("item", id: "10", column: "title", to: "edited behind the agent's back")
                try file.setContent("item", id: "20", to: "edited content")
                try file.setMetadataValue("item", id: "30", column: "tag", to: "edited tag")
                try file.setContentHash("item", id: "31", to: String(repeating: "0", count: 64))

                let validator = try await Validator.make(configuration, store: store, logger: testLogger)
                let found = try await validator.validate(entity: "item")
                #expect(found.status == .drifted)
                #expect(found.missing == .init(ids: ["5", "1500", "1600", "2999"]), "\(found.missing)")
                #expect(found.orphaned == .init(ids: ["100001", "100002", "100003", "100004"]), "\(found.orphaned)")
                #expect(found.stale == .init(ids: ["10", "20", "30", "31"]), "\(found.stale)")
                #expect(found.deadLettered == .init(ids: ["50"]), "\(found.deadLettered)")
                #expect(found.unsettled.count == 0)

                // The running agent repairs through the pipeline (an ids job) and validates again.
                let queued = try await ValidationRequests.submit(entity: "item", kind: .repair, trigger: "test", store: store)
                let record = try await ValidationRequests.wait(for: queued.id, store: store)
                #expect(record.status == .completed, "\(record)")
                let repair = try #require(record.repair)
                #expect(repair.missing == 4 && repair.orphaned == 4 && repair.stale == 4 && repair.deadLettered == 1, "\(repair)")
                #expect(repair.jobStatus == "completed" && repair.rowsRead == 13)
                #expect(record.result?.status == .inSync, "\(String(describing: record.result))")
                #expect(try await store.deadLetters(entity: "item").isEmpty)

                let again = try await validator.validate(entity: "item")
                #expect(again.status == .inSync, "\(again)")
                let history = try await store.validations(entity: "item", limit: 10)
                #expect(history.first?.id == queued.id && history.first?.kind == .repair)
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func rowsWrittenWhileTheSlotWasLostAreFoundThenHealedByTheAgent(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await Self.createItems(db, rows: 2_000)
            let configuration = Self.configuration(db)
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            // Stopped: changes nobody streams, and the slot that held them is dropped.
            try await db.exec("""
                INSERT INTO items (id, title, body, tag) VALUES (5001, 'new 1', 'b', 't'), (5002, 'new 2', 'b', 't'), (5003, 'new 3', NULL, NULL);
                UPDATE items SET body = 'rewritten' WHERE id IN (10, 11);
                UPDATE items SET hits = 9 WHERE id = 12;
                DELETE FROM items WHERE id IN (20, 21);
                """)
            try await Self.dropSlot(db)

            // No agent: the validation runs here and compares the index as it stands.
            let store = try SQLiteIndexStore(configuration: .init(path: Self.indexPath(configuration)), logger: testLogger)
            let offline = try await Validator.make(configuration, store: store, waitForIndex: false, logger: testLogger)
            let found = try await offline.validate(entity: "item")
            #expect(found.status == .drifted && !found.waitedForIndex && found.note != nil)
            #expect(found.missing == .init(ids: ["5001", "5002", "5003"]), "\(found.missing)")
            #expect(found.stale == .init(ids: ["10", "11"]), "\(found.stale)")
            #expect(found.orphaned == .init(ids: ["20", "21"]), "\(found.orphaned)")

            // The agent sees the gap, re-creates the slot and backfills; validation proves the healing.
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let validator = try await Validator.make(configuration, store: store, logger: testLogger)
                let healed = try await validator.validate(entity: "item")
                #expect(healed.status == .inSync, "\(healed)")
                #expect(healed.sourceRows == 2_001)
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func aConcurrentWorkloadIsNeverReportedAsDrift(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let rows = 20_000
            try await Self.createItems(db, rows: rows)
            let configuration = Self.configuration(db)
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                let stop = Shared(false)
                let done = Shared(0)
                let workload = Task {
                    var random = SplitMix64(seed: 4_242)
                    let connection = try await PostgresConnection.connect(db.url, logger: testLogger)
                    var next = rows + 1
                    var operations = 0
                    while !stop.value.withLock({ $0 }) {
                        let id = String(Int(random.next() % UInt64(rows)) + 1)
                        switch random.next() % 5 {
                        case 0:
                            try await connection.query("INSERT INTO items (id, title, body, tag) VALUES ($1::bigint, 'fresh ' || $1, 'new', 't0')", [String(next)])
                            next += 1
                        case 1:
                            try await connection.query("DELETE FROM items WHERE id = $1::bigint", [id])
                        case 2:
                            try await connection.query("UPDATE items SET hits = hits + 1 WHERE id = $1::bigint", [id])
                        case 3:
                            // Several rows in one transaction.
                            try await connection.simpleQuery("BEGIN")
                            try await connection.query("UPDATE items SET tag = 'tx' WHERE id = $1::bigint", [id])
                            try await connection.query("UPDATE items SET body = 'in a transaction ' || $1 WHERE id = $1::bigint + 1", [id])
                            try await connection.simpleQuery("COMMIT")
                        default:
                            try await connection.query("UPDATE items SET title = 'updated ' || $1 || ' ' || $2 WHERE id = $1::bigint", [id, String(operations)])
                        }
                        operations += 1
                        done.value.withLock { $0 = operations }
                        if operations % 3 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                    }
                    await connection.close()
                    return operations
                }
                // The workload is under way before the first validation starts.
                let warm = ContinuousClock.now + .seconds(60)
                while done.value.withLock({ $0 }) < 100, ContinuousClock.now < warm { try await Task.sleep(for: .milliseconds(10)) }
                let before = done.value.withLock { $0 }
                let validator = try await Validator.make(configuration, store: store, logger: testLogger)
                var unsettled = 0
                var candidates = 0
                var differing = 0
                for run in 1...10 {
                    let result = try await validator.validate(entity: "item")
                    #expect(result.driftCount == 0, "run \(run): \(result)")
                    #expect(result.status != .drifted)
                    unsettled += result.unsettled.count
                    candidates += result.candidates
                    differing += result.differingRanges
                }
                let during = done.value.withLock { $0 } - before
                stop.value.withLock { $0 = true }
                let operations = try await workload.value
                // How many depends on the machine's load; that it kept writing is what matters.
                #expect(before >= 100 && during >= 50, "the workload ran during the validations (\(during) operations)")
                print("validation under a workload on \(server): 10 runs, \(operations) operations; in all \(differing) ranges differed, \(candidates) ids re-checked, \(unsettled) unsettled")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let settled = try await validator.validate(entity: "item")
                #expect(settled.status == .inSync, "\(settled)")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func aCommitStreamedButNotYetVisibleIsNeverDrift(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await Self.createItems(db, rows: 2_000)
            let configuration = Self.configuration(db)
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                // In the WAL, so streamed and applied, but invisible to snapshots: it waits for a
                // synchronous standby that never answers (Scripts/pg-servers.sh).
                let holder = try await PostgresConnection.connect(db.url, logger: testLogger)
                let pid = try #require(try await holder.query("SELECT pg_backend_pid()::text").rows.first?.first ?? nil)
                let held = Task {
                    try await holder.simpleQuery("BEGIN; SET LOCAL synchronous_commit = on; UPDATE items SET title = 'held' WHERE id = 5; COMMIT;")
                }
                let deadline = ContinuousClock.now + .seconds(20)
                while try await store.validationDocuments(entity: "item", ids: ["5"])["5"]?.content?.hasPrefix("held") != true {
                    guard ContinuousClock.now < deadline else { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await db.scalar("SELECT title FROM items WHERE id = 5") == "item 5", "still invisible")
                var settings = Validator.Configuration()
                settings.settleTimeout = .seconds(2)
                let entities = try await Agent.resolveEntities(configuration, on: db.connection, logger: testLogger)
                let validator = Validator(configuration: settings, entities: entities, store: store, sourceURL: db.url, logger: testLogger)
                let during = try await validator.validate(entity: "item")
                #expect(during.driftCount == 0, "\(during)")
                #expect(during.status == .unsettled && during.unsettled.sample == ["5"], "\(during)")

                try await db.exec("SELECT pg_cancel_backend(\(pid))")
                _ = try? await held.value
                await holder.close()
                let after = try await validator.validate(entity: "item")
                #expect(after.status == .inSync, "\(after)")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func theCommandLineValidatesRepairsAndListsThroughTheRunningAgent(server: LiveServer) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        try await withDatabase(on: server) { db in
            try await Self.createItems(db, rows: 3_000)
            let directory = NSTemporaryDirectory() + "tidemark-validate-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let configPath = directory + "/tidemark.yml"
            try """
                source: { url: "\(db.url)", slot: \(db.name), heartbeat_interval: 200ms }
                index: { kind: sqlite, path: "\(directory)/index.db" }
                validation: { schedule: off }
                entities:
                  item: { table: public.items, content: "{{title}}\\n{{body}}", metadata: [tag] }
                """.write(toFile: configPath, atomically: true, encoding: .utf8)
            func tidemark(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
                try await TidemarkBinary.run(binary, arguments + ["--config", configPath])
            }
            func records(_ output: String) throws -> [ValidationRecord] {
                try output.split(separator: "\n").map { try JSONDecoder().decode(ValidationRecord.self, from: Data($0.utf8)) }
            }

            // No agent yet: validate runs in the command itself; repair refuses.
            let offline = try await tidemark(["validate", "item", "--json"])
            #expect(offline.status == 1, "nothing is indexed yet: \(offline.output) \(offline.error)")
            #expect(try records(offline.output).first?.result?.waitedForIndex == false)
            let refused = try await tidemark(["repair", "item"])
            #expect(refused.status == 1 && refused.error.contains("start tidemark run"))

            let agent = try AgentProcess(binary: binary, config: configPath, log: directory + "/agent.log", level: "info")
            defer { agent.kill(SIGKILL) }
            let store = try SQLiteIndexStore(configuration: .init(path: directory + "/index.db"), logger: testLogger)
            try await waitForLoaded(store, ["item"])
            try await waitForCheckpoint(store, try await db.currentLSN())

            let file = try IndexFile(path: directory + "/index.db")
            try file.deleteDocuments("item", ids: ["17", "2345"])
            let drifted = try await tidemark(["validate", "item", "--json"])
            #expect(drifted.status == 1, "\(drifted.output) \(drifted.error)")
            let found = try #require(try records(drifted.output).first)
            #expect(found.trigger == "cli" && found.result?.waitedForIndex == true)
            #expect(found.result?.missing == .init(ids: ["17", "2345"]), "\(String(describing: found.result))")

            let repaired = try await tidemark(["repair", "item"])
            #expect(repaired.status == 0, "\(repaired.output) \(repaired.error)")
            #expect(repaired.output.contains("repaired through job"))
            let clean = try await tidemark(["validate"])
            #expect(clean.status == 0 && clean.output.contains("in_sync"), "\(clean.output) \(clean.error)")

            // A validation waits for complete data: skipped while a backfill of the entity is active
            // (one paused from the start, so that it cannot finish first).
            var backfill = JobRecord(id: JobRecord.newID(), entity: "item", kind: .backfill)
            backfill.control = .pause
            try await store.saveJob(backfill)
            let skipped = try await tidemark(["validate", "item", "--json"])
            #expect(try records(skipped.output).first?.status == .skipped, "\(skipped.output) \(skipped.error)")
            #expect(try await tidemark(["job", backfill.id, "cancel"]).status == 0)

            let history = try await tidemark(["validations", "--json"])
            let listed = try records(history.output)
            #expect(listed.count == 5, "\(history.output)")
            #expect(listed.map(\.kind).contains(.repair))
            let text = try await tidemark(["validations"])
            #expect(text.output.contains("skipped") && text.output.contains("repair"))
        }
    }
}
