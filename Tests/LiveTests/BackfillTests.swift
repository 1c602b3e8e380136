import Embedding
import Capture
import Foundation
import Indexing
import Postgres
import Synchronization
import Testing

@testable import Sync

@Suite(.serialized) struct BackfillTests {
    /// Renders the source through the template and compares it with the index: missing, extra, stale.
    static func compare(_ db: TestDatabase, _ store: any IndexStore, entity: String, template: String, sql: String) async throws -> (missing: Int, extra: Int, stale: Int, rows: Int) {
        let contentTemplate = try ContentTemplate(template)
        let rows = try await db.connection.query(sql)
        var expected: [String: String] = [:]
        for row in rows.rows {
            var values: [String: String?] = [:]
            for (index, column) in rows.columns.enumerated() { values[column.name] = row[index] }
            expected[row[0] ?? ""] = contentTemplate.render(values)
        }
        var exported: [String: String] = [:]
        var after: String?
        while true {
            let page = try await store.export(entity: entity, after: after, limit: 5_000)
            if page.isEmpty { break }
            for document in page { exported[document.id] = document.content }
            after = page.last?.id
        }
        let missing = expected.keys.filter { exported[$0] == nil }.count
        let extra = exported.keys.filter { expected[$0] == nil }.count
        let stale = expected.filter { id, content in exported[id].map { $0 != content } ?? false }.count
        return (missing, extra, stale, expected.count)
    }

    /// Both servers with SQLite, and pgvector in the PostgreSQL 18 source.
    static let workloadCases = LiveCase.all.filter { $0.index != .pgvectorElsewhere }

    @Test(arguments: workloadCases)
    func backfillUnderAHeavyWorkloadEqualsTheSourceAndHoldsNoLongTransactions(live: LiveCase) async throws {
        let directory = NSTemporaryDirectory() + "tidemark-backfill-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { db, index in
            let rows = 200_000
            try await db.exec("""
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL, body text);
                INSERT INTO items SELECT g, 'item ' || g, 'body ' || g FROM generate_series(1, \(rows)) g;
                ANALYZE items;
                """)
            var configuration = db.agentConfiguration(
                entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}: {{body}}")], index: index.index)
            configuration.backfill.chunkDuration = .milliseconds(100)
            let stop = Shared(false)
            let longest = Shared(0.0)
            let longestQuery = Shared("")
            try await withAgent(configuration, waitForLoad: false) { _, store in
                // A workload on the same table while the initial backfill runs.
                let workload = Task {
                    var random = SplitMix64(seed: 99)
                    let connection = try await PostgresConnection.connect(db.url, logger: testLogger)
                    var nextID = rows + 1
                    var operations = 0
                    while !stop.value.withLock({ $0 }) {
                        let id = Int(random.next() % UInt64(rows)) + 1
                        switch random.next() % 4 {
                        case 0:
                            try await connection.query("INSERT INTO items VALUES ($1::int, 'fresh ' || $1::text, 'new')", [String(nextID)])
                            nextID += 1
                        case 1:
                            try await connection.query("DELETE FROM items WHERE id = $1", [String(id)])
                        default:
                            try await connection.query("UPDATE items SET title = 'updated ' || $1::text || ' ' || $2 WHERE id = $1::int", [String(id), String(operations)])
                        }
                        operations += 1
                        // A steady, high rate (hundreds of writes per second), not a flood that
                        // starves the two-core test machine.
                        if operations % 4 == 0 { try await Task.sleep(for: .milliseconds(2)) }
                    }
                    await connection.close()
                    return operations
                }
                // Watch the agent's sessions: no transaction on the source may stay open longer than
                // a chunk. A pgvector index in the same database is written one transaction per batch
                // (the exactly-once write, with the checkpoint); it takes no lock on the source tables
                // and is watched with its own, looser bound.
                let longestWrite = Shared(0.0)
                let watcher = Task {
                    let connection = try await PostgresConnection.connect(db.url, logger: testLogger)
                    while !stop.value.withLock({ $0 }) {
                        // The build of a pgvector index in the source database, after the load, is
                        // not the backfill's (Docs/pipeline.md says what it costs).
                        let rows = try await connection.query("""
                            SELECT application_name = 'tidemark-index',
                                   max(extract(epoch FROM clock_timestamp() - xact_start))::text,
                                   (array_agg(application_name || ': ' || left(query, 120) ORDER BY xact_start))[1]
                              FROM pg_stat_activity
                             WHERE datname = current_database() AND application_name LIKE 'tidemark%' AND pid <> pg_backend_pid()
                               AND application_name <> 'tidemark-index-build' AND xact_start IS NOT NULL
                             GROUP BY 1
                            """).rows
                        for row in rows {
                            let age = row[1].flatMap { Double($0) } ?? 0
                            if row[0] == "t" {
                                longestWrite.value.withLock { $0 = max($0, age) }
                            } else {
                                longest.value.withLock { $0 = max($0, age) }
                                if age >= 2.0, let what = row[2] { longestQuery.value.withLock { $0 = what } }
                            }
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    await connection.close()
                }
                try await waitForLoaded(store, ["item"], timeout: .seconds(300))
                stop.value.withLock { $0 = true }
                let operations = try await workload.value
                try await watcher.value
                try await db.exec("UPDATE items SET body = body WHERE id = (SELECT min(id) FROM items)")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let result = try await Self.compare(db, store, entity: "item", template: "{{title}}: {{body}}", sql: "SELECT id::text, title, body FROM items")
                #expect(operations > 1_000, "the workload ran during the backfill (\(operations) operations)")
                #expect(result.rows >= rows - operations)
                #expect(result.missing == 0 && result.extra == 0 && result.stale == 0, "\(result)")
                // A chunk aims at 250 ms; under a parallel test suite on two cores one can take a few
                // seconds. A transaction held for the table would take far longer than this bound.
                #expect(
                    longest.value.withLock { $0 } < 5.0,
                    "longest agent transaction: \(longest.value.withLock { $0 }) s (\(longestQuery.value.withLock { $0 }))")
                #expect(longestWrite.value.withLock { $0 } < 20.0, "longest index write: \(longestWrite.value.withLock { $0 }) s")
                let job = try #require(try await store.jobs(entity: "item").first)
                #expect(job.status == .completed && job.chunks > 10)
            }
        }
    }

    @Test(arguments: LiveCase.eachStore)
    func sigkillMidBackfillResumesAtTheLastChunk(live: LiveCase) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        let directory = NSTemporaryDirectory() + "tidemark-resume-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { db, index in
            try await db.exec("""
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
                INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100000) g;
                ANALYZE items;
                """)
            let configPath = directory + "/tidemark.yml"
            try """
                source: { url: "\(db.url)", slot: \(db.name), heartbeat_interval: 200ms }
                \(index.yaml)
                backfill: { chunk_duration: 50ms }
                entities:
                  item: { table: public.items, content: "{{title}}" }
                """.write(toFile: configPath, atomically: true, encoding: .utf8)
            let store = try await index.open()

            let first = try AgentProcess(binary: binary, config: configPath, log: directory + "/first.log", level: "info")
            var before: JobRecord?
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if let job = try await store.jobs(entity: "item").first, job.processed >= 20_000 { before = job; break }
                try await Task.sleep(for: .milliseconds(20))
            }
            first.kill(SIGKILL)
            _ = first.wait()
            let atKill = try #require(try await store.jobs(entity: "item").first)
            #expect(before != nil && atKill.processed < 100_000, "killed mid-backfill at \(atKill.processed) rows")

            let second = try AgentProcess(binary: binary, config: configPath, log: directory + "/second.log", level: "info")
            try await waitForLoaded(store, ["item"])
            second.kill(SIGTERM)
            #expect(second.wait() == 0)

            // Rows read in both runs, from the agent's own chunk log lines.
            func chunks(_ file: String) -> [(rows: Int, size: Int)] {
                let log = (try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)) ?? ""
                return log.split(separator: "\n").filter { $0.contains("backfill chunk read") }.compactMap { line in
                    func value(_ key: String) -> Int? {
                        guard let range = line.range(of: key + "=") else { return nil }
                        return Int(line[range.upperBound...].prefix { $0.isNumber })
                    }
                    guard let rows = value("chunk.rows"), let size = value("chunk.size") else { return nil }
                    return (rows, size)
                }
            }
            let firstRun = chunks("first.log")
            let secondRun = chunks("second.log")
            let readAgain = firstRun.map(\.rows).reduce(0, +) + secondRun.map(\.rows).reduce(0, +) - 100_000
            let largestChunk = (firstRun + secondRun).map(\.size).max() ?? 0
            #expect(!firstRun.isEmpty && !secondRun.isEmpty)
            #expect(readAgain >= 0 && readAgain <= 2 * largestChunk, "read again: \(readAgain) rows; largest chunk \(largestChunk)")
            let job = try #require(try await store.jobs(entity: "item").first)
            #expect(job.id == atKill.id && job.status == .completed, "the same job resumed and completed")
            #expect(try await store.count(entity: "item") == 100_000)
        }
    }

    @Test(arguments: LiveServer.first)
    func wideRowsAreBackfilledInChunksBoundedByBytes(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            // 300 rows of ≈ 200 kB of incompressible text each: 60 MB in all, far above the bound.
            try await db.exec("""
                CREATE TABLE wide (id int PRIMARY KEY, title text NOT NULL, body text);
                ALTER TABLE wide ALTER COLUMN body SET STORAGE EXTERNAL;
                INSERT INTO wide SELECT g, 'wide ' || g,
                       (SELECT string_agg(md5(g::text || '.' || i::text), '') FROM generate_series(1, 6250) i)
                  FROM generate_series(1, 300) g;
                ANALYZE wide;
                """)
            let rowBytes = 6_250 * 32
            let bound = 2_000_000
            var configuration = db.agentConfiguration(entities: [.init(
                name: "wide", table: TableName(schema: "public", name: "wide"), content: "{{title}}", metadata: ["body"])])
            configuration.backfill.maxChunkBytes = bound
            try await withAgent(configuration) { _, store in
                #expect(try await store.count(entity: "wide") == 300, "every row indexed")
                let result = try await Self.compare(db, store, entity: "wide", template: "{{title}}", sql: "SELECT id::text, title FROM wide")
                #expect(result.missing == 0 && result.extra == 0 && result.stale == 0, "\(result)")
                let last = try #require(try await store.export(entity: "wide", after: "299", limit: 1).first)
                #expect(last.metadata["body"]??.count == rowBytes, "the wide value arrived whole")
                let job = try #require(try await store.jobs(entity: "wide").first)
                #expect(job.status == .completed)
                let largest = try #require(job.largestChunkBytes)
                #expect(largest > 0 && largest <= bound + rowBytes + 1_000, "largest chunk: \(largest) bytes, bound \(bound)")
                #expect(job.chunks >= 60_000_000 / (bound + rowBytes), "\(job.chunks) chunks")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aRowLargerThanTheBoundIsReadAlone(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE huge (id int PRIMARY KEY, body text);
                ALTER TABLE huge ALTER COLUMN body SET STORAGE EXTERNAL;
                INSERT INTO huge SELECT g, (SELECT string_agg(md5(g::text || '.' || i::text), '') FROM generate_series(1, 4000) i)
                  FROM generate_series(1, 20) g;
                """)
            var configuration = db.agentConfiguration(entities: [.init(
                name: "huge", table: TableName(schema: "public", name: "huge"), content: "{{id}}", metadata: ["body"])])
            configuration.backfill.maxChunkBytes = 50_000  // each row is 128 kB
            try await withAgent(configuration) { _, store in
                #expect(try await store.count(entity: "huge") == 20)
                let job = try #require(try await store.jobs(entity: "huge").first)
                #expect(job.status == .completed && job.chunks >= 20, "one row per chunk: \(job.chunks) chunks")
                #expect((job.largestChunkBytes ?? .max) <= 128_000 + 1_000, "\(String(describing: job.largestChunkBytes))")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func targetedIdsPauseResumeAndCancel(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
                INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50000) g;
                """)
            var configuration = db.agentConfiguration(entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}")])
            configuration.backfill.chunkDuration = .milliseconds(20)
            try await withAgent(configuration) { _, store in
                // Documents go stale behind the agent's back; a targeted backfill repairs exactly those.
                var stale = IndexBatch()
                stale.deletes = ["item": ["7", "8"]]
                try await store.apply(stale, state: [:])
                var job = JobRecord(id: JobRecord.newID(), entity: "item", kind: .ids)
                job.ids = ["7", "8", "999999"]
                try await store.saveJob(job)
                try await waitForJob(store, job.id, .completed)
                #expect(try await store.count(entity: "item") == 50_000)

                // A full backfill can be paused, resumed and cancelled.
                let full = JobRecord(id: JobRecord.newID(), entity: "item", kind: .backfill)
                try await store.saveJob(full)
                _ = try await store.setJobControl(full.id, .pause)
                try await waitForJob(store, full.id, .paused)
                let pausedAt = try await store.job(full.id)?.processed ?? -1
                try await Task.sleep(for: .milliseconds(600))
                #expect(try await store.job(full.id)?.processed == pausedAt, "a paused job reads nothing")
                _ = try await store.setJobControl(full.id, .run)
                try await waitForJob(store, full.id, .running)
                _ = try await store.setJobControl(full.id, .cancel)
                try await waitForJob(store, full.id, .cancelled)
                #expect(try await store.count(entity: "item") == 50_000, "cancelling keeps what is indexed")
            }
        }
    }
}

/// Waits until a job reaches `status`.
func waitForJob(_ store: any IndexStore, _ id: String, _ status: JobRecord.Status, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await store.job(id)?.status != status {
        guard ContinuousClock.now < deadline else {
            Issue.record("job \(id) did not become \(status)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A value shared between test tasks.
final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}

@Suite struct RebuildTests {
    @Test(arguments: LiveServer.first)
    func rebuildAndRollbackKeepSearchAnsweringThroughout(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let rows = 20_000
            try await db.exec("""
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
                INSERT INTO items SELECT g, 'item number ' || g FROM generate_series(1, \(rows)) g;
                """)
            var configuration = db.agentConfiguration(entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}")])
            configuration.backfill.chunkDuration = .milliseconds(30)
            guard case .sqlite(let indexPath) = configuration.index else { return }
            try await withAgent(configuration) { _, store in
                let stop = Shared(false)
                let failures = Shared([String]())
                let queries = Shared(0)
                // Search without pause during the rebuild, the switch and the rollback.
                let searcher = Task {
                    let reader = try SQLiteIndexStore(configuration: .init(path: indexPath), logger: testLogger)
                    let vector = BuiltinEmbedder().vector("item number 4242")
                    while !stop.value.withLock({ $0 }) {
                        do {
                            let hits = try await reader.search(entity: "item", vector: vector, k: 3, filter: [:])
                            if hits.first?.id != "4242" { failures.value.withLock { $0.append("top hit \(hits.first?.id ?? "none")") } }
                        } catch {
                            failures.value.withLock { $0.append("\(error)") }
                        }
                        queries.value.withLock { $0 += 1 }
                        try await Task.sleep(for: .milliseconds(1))
                    }
                }
                // Writes during the rebuild must reach both generations.
                try await db.exec("UPDATE items SET title = 'renamed ' || id WHERE id % 1000 = 0")
                var job = JobRecord(id: JobRecord.newID(), entity: "item", kind: .rebuild)
                try await store.saveJob(job)
                try await db.exec("UPDATE items SET title = 'changed during rebuild ' || id WHERE id % 1000 = 1")
                try await waitForJob(store, job.id, .completed)
                job = try #require(try await store.job(job.id))
                #expect(try await store.activeGeneration("item") == job.generation)
                #expect(job.generation == 1 && job.previousGeneration == 0)
                try await db.exec("UPDATE items SET title = 'changed after switch ' || id WHERE id % 1000 = 2")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let afterSwitch = try await BackfillTests.compare(db, store, entity: "item", template: "{{title}}", sql: "SELECT id::text, title FROM items")
                #expect(afterSwitch.missing == 0 && afterSwitch.extra == 0 && afterSwitch.stale == 0, "\(afterSwitch)")

                // Searches ran before and after the switch; make sure some run after the rollback too.
                func waitForQueries(_ more: Int) async throws {
                    let target = queries.value.withLock { $0 } + more
                    while queries.value.withLock({ $0 }) < target { try await Task.sleep(for: .milliseconds(10)) }
                }
                try await waitForQueries(3)
                let rolled = try await RebuildRollback.perform(job, store: store)
                #expect(rolled.active == 0)
                #expect(try await store.activeGeneration("item") == 0)
                let afterRollback = try await BackfillTests.compare(db, store, entity: "item", template: "{{title}}", sql: "SELECT id::text, title FROM items")
                #expect(afterRollback.missing == 0 && afterRollback.extra == 0 && afterRollback.stale == 0, "the old generation was kept current: \(afterRollback)")
                await #expect(throws: SyncError.self) { _ = try await RebuildRollback.perform(try #require(try await store.job(job.id)), store: store) }

                try await waitForQueries(3)
                stop.value.withLock { $0 = true }
                try await searcher.value
                #expect(queries.value.withLock { $0 } >= 6)
                #expect(failures.value.withLock { $0 }.isEmpty, "search kept answering: \(failures.value.withLock { $0 }.prefix(5))")
            }
        }
    }
}
