import Capture
import Foundation
import Indexing
import Logging
import Postgres
import Testing

@testable import Sync

/// Changes to the source that leave no trace in the replication stream (partitions attached or
/// detached, tables swapped or rewritten, publication edits), changes to the configuration, and
/// concurrent jobs: each test is named after the reviewer's case and failed before its fix.
@Suite(.serialized) struct SourceChangeTests {
    static let products = ContractTests.products
    static let productsSQL = ContractTests.productsSQL
    static let events = ContractTests.events
    static let eventsSQL = ContractTests.eventsSQL

    func createProducts(_ db: TestDatabase, rows: Int) async throws {
        try await db.exec("""
            CREATE TABLE products (id int PRIMARY KEY, name varchar(200) NOT NULL, description text, price numeric, stock int DEFAULT 0);
            INSERT INTO products SELECT g, 'product ' || g, 'description of ' || g, g, 0 FROM generate_series(1, \(rows)) g;
            """)
    }

    func createEvents(_ db: TestDatabase, rows: Int = 200) async throws {
        try await db.exec("""
            CREATE TABLE events (region text NOT NULL, id int NOT NULL, title text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
            CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
            CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
            INSERT INTO events SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g, 'event ' || g FROM generate_series(1, \(rows)) g;
            """)
    }

    /// Waits until the index equals the source (healing runs in the background), or returns the drift.
    func settledDrift(
        _ db: TestDatabase, _ store: any IndexStore, entity: AgentConfiguration.Entity, sql: String, timeout: Duration = .seconds(20)
    ) async throws -> Drift {
        let deadline = ContinuousClock.now + timeout
        while true {
            try await waitForCheckpoint(store, try await db.currentLSN())
            let current = try await drift(db, store, entity: entity.name, sql: sql, template: entity.content, metadata: entity.metadata)
            if current.isEmpty || ContinuousClock.now > deadline { return current }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Waits until no job of `entity` is active.
    func waitForIdle(_ store: any IndexStore, entity: String, timeout: Duration = .seconds(90)) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await store.activeJobs().contains(where: { $0.entity == entity }) {
            guard ContinuousClock.now < deadline else {
                Issue.record("the jobs of \(entity) did not finish in time")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: 1

    @Test(arguments: LiveServer.all)
    func partitionsAttachedAndDetachedDuringABackfillAreHealed(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createEvents(db, rows: 6_000)
            var configuration = db.agentConfiguration(entities: [Self.events])
            configuration.source.partitionCheckInterval = .milliseconds(100)
            configuration.backfill.chunkDuration = .milliseconds(5)
            configuration.backfill.maxChunkBytes = 1_500
            try await withAgent(configuration, waitForLoad: false) { _, store in
                // Wait until the initial load is past the keys of the partition to be attached ('asia' < 'eu').
                let deadline = ContinuousClock.now + .seconds(60)
                while true {
                    let job = try await store.activeJobs().first { $0.entity == "event" }
                    if let cursor = job?.cursor, cursor.first == "eu" { break }
                    guard ContinuousClock.now < deadline else {
                        Issue.record("the backfill did not start")
                        return
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await db.exec("""
                    CREATE TABLE events_asia (region text NOT NULL, id int NOT NULL, title text, PRIMARY KEY (region, id));
                    INSERT INTO events_asia SELECT 'asia', g, 'asian event ' || g FROM generate_series(9000, 9050) g;
                    ALTER TABLE events ATTACH PARTITION events_asia FOR VALUES IN ('asia');
                    UPDATE events SET title = 'touched ' || id WHERE region = 'us' AND id < 200;
                    ALTER TABLE events DETACH PARTITION events_us;
                    """)
                #expect(try await store.activeJobs().contains { $0.entity == "event" }, "the first load is still running")
                try await waitForLoaded(store, ["event"])
                try await waitForIdle(store, entity: "event")
                let after = try await settledDrift(db, store, entity: Self.events, sql: Self.eventsSQL)
                #expect(after.isEmpty, "after ATTACH and DETACH during a backfill: \(after)")
            }
        }
    }

    // MARK: 2

    @Test(arguments: LiveServer.all)
    func aPartitionDetachedModifiedAndReattachedWhileTheAgentIsDownIsHealed(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createEvents(db)
            var configuration = db.agentConfiguration(entities: [Self.events])
            configuration.source.partitionCheckInterval = .milliseconds(100)
            try await withAgent(configuration) { _, store in
                let loaded = try await settledDrift(db, store, entity: Self.events, sql: Self.eventsSQL)
                #expect(loaded.isEmpty, "initial load: \(loaded)")
            }
            try await db.exec("""
                ALTER TABLE events DETACH PARTITION events_us;
                UPDATE events_us SET title = 'edited while detached ' || id WHERE id < 50;
                DELETE FROM events_us WHERE id BETWEEN 51 AND 99;
                INSERT INTO events_us VALUES ('us', 7001, 'inserted while detached');
                ALTER TABLE events ATTACH PARTITION events_us FOR VALUES IN ('us');
                """)
            try await withAgent(configuration) { _, store in
                let after = try await settledDrift(db, store, entity: Self.events, sql: Self.eventsSQL)
                #expect(after.isEmpty, "after DETACH, changes, re-ATTACH while down: \(after)")
            }
        }
    }

    // MARK: 3

    @Test(arguments: LiveServer.all)
    func aTableSwapMigrationIsHealed(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.source.partitionCheckInterval = .milliseconds(100)
            try await withAgent(configuration) { _, store in
                try await db.exec("""
                    CREATE TABLE products_new (LIKE products INCLUDING ALL);
                    INSERT INTO products_new SELECT id, CASE WHEN id % 3 = 0 THEN 'migrated ' || id ELSE name END, description, price, stock
                      FROM products WHERE id <= 280;
                    INSERT INTO products_new VALUES (5000, 'only in the new table', 'new', 1, 0);
                    BEGIN;
                    ALTER TABLE products RENAME TO products_old;
                    ALTER TABLE products_new RENAME TO products;
                    COMMIT;
                    """)
                try await db.exec("UPDATE products SET description = 'after the swap' WHERE id <= 20; DELETE FROM products WHERE id BETWEEN 21 AND 30;")
                let after = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(after.isEmpty, "after a table swap: \(after)")
                try await db.exec("UPDATE products SET description = 'streamed again' WHERE id <= 5")
                let streamed = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL, timeout: .seconds(5))
                #expect(streamed.isEmpty, "changes to the new table stream: \(streamed)")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func aTableDroppedFromThePublicationIsHealed(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.source.partitionCheckInterval = .milliseconds(100)
            try await withAgent(configuration) { _, store in
                let loaded = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(loaded.isEmpty, "initial load: \(loaded)")
            }
            try await db.exec("""
                ALTER PUBLICATION tidemark DROP TABLE products;
                UPDATE products SET description = 'edited unpublished' WHERE id <= 40;
                DELETE FROM products WHERE id BETWEEN 41 AND 60;
                INSERT INTO products VALUES (9000, 'inserted unpublished', 'x', 1, 0);
                """)
            try await withAgent(configuration) { _, store in
                let after = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(after.isEmpty, "after the table was dropped from the publication (restart): \(after)")
                // And while running: the watcher notices.
                try await db.exec("""
                    ALTER PUBLICATION tidemark DROP TABLE products;
                    UPDATE products SET description = 'edited unpublished, running' WHERE id <= 20;
                    DELETE FROM products WHERE id BETWEEN 61 AND 70;
                    """)
                let running = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(running.isEmpty, "after the table was dropped from the publication (running): \(running)")
            }
        }
    }

    // MARK: 4

    @Test(arguments: LiveServer.all)
    func aTableRewritingAlterIsHealed(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.source.partitionCheckInterval = .milliseconds(100)
            try await withAgent(configuration) { _, store in
                let loaded = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(loaded.isEmpty, "initial load: \(loaded)")
                try await db.exec("ALTER TABLE products ALTER COLUMN name TYPE text USING upper(name)")
                let after = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(after.isEmpty, "after a rewriting ALTER TABLE: \(after)")
            }
        }
    }

    // MARK: 5

    @Test(arguments: LiveServer.all)
    func entityConfigurationChangesAreBackfilled(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            try await db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 10) g;")
            let notes = AgentConfiguration.Entity(name: "note", table: TableName(schema: "public", name: "notes"), content: "{{body}}")
            let path = NSTemporaryDirectory() + "tidemark-\(UUID().uuidString).db"
            var configuration = db.agentConfiguration(entities: [Self.products, notes], indexPath: path)
            try await withAgent(configuration) { _, store in
                let loaded = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(loaded.isEmpty, "initial load: \(loaded)")
            }
            // A new template and metadata.
            var changed = Self.products
            changed.content = "{{name}} costs {{price}}"
            changed.metadata = ["stock"]
            configuration = db.agentConfiguration(entities: [changed, notes], indexPath: path)
            let changedSQL = "SELECT id::text, name, price::text AS price, stock::text AS stock FROM products"
            try await withAgent(configuration) { _, store in
                let after = try await settledDrift(db, store, entity: changed, sql: changedSQL)
                #expect(after.isEmpty, "after a template change: \(after)")
            }
            // The entity removed, rows changed, the entity added again.
            configuration = db.agentConfiguration(entities: [notes], indexPath: path)
            try await withAgent(configuration) { _, _ in }
            try await db.exec("""
                UPDATE products SET name = 'renamed ' || id WHERE id <= 30;
                DELETE FROM products WHERE id BETWEEN 31 AND 50;
                INSERT INTO products VALUES (7000, 'added meanwhile', 'x', 3, 1);
                """)
            configuration = db.agentConfiguration(entities: [changed, notes], indexPath: path)
            try await withAgent(configuration) { _, store in
                let after = try await settledDrift(db, store, entity: changed, sql: changedSQL)
                #expect(after.isEmpty, "after the entity was removed and added again: \(after)")
            }
        }
    }

    // MARK: 6

    @Test(arguments: LiveServer.first)
    func twoConcurrentRebuildsOfOneEntityKeepEveryRow(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 6_000)
            var configuration = db.agentConfiguration(entities: [Self.products])
            configuration.backfill.chunkDuration = .milliseconds(5)
            configuration.backfill.maxChunkBytes = 2_000
            try await withAgent(configuration) { _, store in
                let first = JobRecord(id: JobRecord.newID(), entity: "product", kind: .rebuild)
                try await store.saveJob(first)
                // The second rebuild is queued while the first is half-way.
                let deadline = ContinuousClock.now + .seconds(60)
                while try await store.job(first.id)?.cursor == nil, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                }
                let second = JobRecord(id: JobRecord.newID(), entity: "product", kind: .rebuild)
                try await store.saveJob(second)
                #expect(try await Agent.activeRebuild(of: "product", in: store) != nil, "a second rebuild is refused while one is active")
                try await waitForJob(store, first.id, .completed, timeout: .seconds(120))
                try await waitForJob(store, second.id, .completed, timeout: .seconds(120))
                let after = try await settledDrift(db, store, entity: Self.products, sql: Self.productsSQL)
                #expect(after.isEmpty, "after two rebuilds queued at once: \(after)")
            }
        }
    }

    // MARK: 7

    @Test(arguments: LiveServer.first)
    func aLoadIsRecordedInTheJobsCompletingTransaction(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            // Several small entities: several completions to observe.
            var entities: [AgentConfiguration.Entity] = []
            for number in 1...8 {
                try await db.exec("CREATE TABLE t\(number) (id int PRIMARY KEY, body text); INSERT INTO t\(number) SELECT g, 'row ' || g FROM generate_series(1, 20) g;")
                entities.append(AgentConfiguration.Entity(name: "e\(number)", table: TableName(schema: "public", name: "t\(number)"), content: "{{body}}"))
            }
            let path = NSTemporaryDirectory() + "tidemark-\(UUID().uuidString).db"
            var configuration = db.agentConfiguration(entities: entities, indexPath: path)
            configuration.backfill.maxConcurrent = 8
            // A second view of the same file: the job is read first, then the state; a completed job
            // without its load recorded is exactly what a SIGKILL at that instant would leave.
            let observer = try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
            try await withAgent(configuration, waitForLoad: false) { _, _ in
                var violations: [String] = []
                var done = Set<String>()
                let deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline, done.count < entities.count {
                    for job in try await observer.jobs() where job.loadsIncarnation != nil && job.status == .completed && !done.contains(job.entity) {
                        done.insert(job.entity)
                        let loaded = try await observer.state("loaded.\(job.entity)")
                        if loaded != job.loadsIncarnation { violations.append(job.entity) }
                    }
                }
                #expect(done.count == entities.count)
                #expect(violations.isEmpty, "loads completed before their loaded.<entity> was recorded: \(violations)")
            }
        }
    }
}
