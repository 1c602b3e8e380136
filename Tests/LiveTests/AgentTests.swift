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

/// Wraps the built-in embedder to count calls, and to fail like a flaky provider when asked to.
final class CountingEmbedder: Embedder {
    let inner = BuiltinEmbedder()
    var model: String { inner.model }
    var dimensions: Int { inner.dimensions }
    var maxBatchSize: Int { 64 }
    private let state = Mutex<(calls: Int, texts: Int, failuresLeft: Int)>((0, 0, 0))
    let poison: String?

    /// How long each call takes (a slow provider).
    let delay: Duration

    init(poison: String? = nil, failures: Int = 0, delay: Duration = .zero) {
        self.poison = poison
        self.delay = delay
        state.withLock { $0.failuresLeft = failures }
    }

    var calls: Int { state.withLock { $0.calls } }
    var texts: Int { state.withLock { $0.texts } }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        let fail = state.withLock { state -> Bool in
            state.calls += 1
            state.texts += texts.count
            guard let poison, texts.contains(where: { $0.contains(poison) }), state.failuresLeft > 0 else { return false }
            state.failuresLeft -= 1
            return true
        }
        if delay > .zero { try await Task.sleep(for: delay) }
        if fail { throw IndexingError(.embedding, "provider rejected the input (HTTP 400)") }
        return try await inner.embed(texts)
    }
}

/// Runs an agent in a service group until `body` returns, then shuts it down gracefully.
func withAgent(
    _ configuration: AgentConfiguration, embedder: (any Embedder)? = nil, waitForLoad: Bool = true,
    _ body: (Agent, any IndexStore) async throws -> Void
) async throws {
    let agent = Agent(configuration: configuration, logger: testLogger, embedder: embedder)
    let group = ServiceGroup(configuration: .bounded(services: [.init(service: agent)]))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let store = try await Agent.openStore(configuration, logger: testLogger)
            if waitForLoad { try await waitForLoaded(store, configuration.entities.map(\.name)) }
            try await body(agent, store)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

extension ServiceGroupConfiguration {
    /// A group whose shutdown cannot hang a test run: a graceful shutdown still running after two
    /// minutes is escalated to cancellation, and a cancellation not done a minute later stops the
    /// process with the service's name (a test run that ends is better than one CI must kill).
    static func bounded(services: [ServiceGroupConfiguration.ServiceConfiguration]) -> ServiceGroupConfiguration {
        var configuration = ServiceGroupConfiguration(services: services, logger: testLogger)
        configuration.maximumGracefulShutdownDuration = .seconds(120)
        configuration.maximumCancellationDuration = .seconds(60)
        return configuration
    }
}

extension TestDatabase {
    func agentConfiguration(
        entities: [AgentConfiguration.Entity], indexPath: String = NSTemporaryDirectory() + "tidemark-\(UUID().uuidString).db",
        index: AgentConfiguration.Index? = nil
    ) -> AgentConfiguration {
        var configuration = AgentConfiguration(source: .init(url: url), entities: entities)
        configuration.source.slot = name
        configuration.source.heartbeatInterval = .milliseconds(200)
        configuration.index = index ?? .sqlite(path: indexPath)
        configuration.pipeline.batchDelay = .milliseconds(20)
        return configuration
    }
}

/// Waits until every entity's backfill under the current slot has completed.
func waitForLoaded(_ store: any IndexStore, _ entities: [String], timeout: Duration = .seconds(120), sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        let incarnation = try await store.state("slot.incarnation")
        var loaded = incarnation != nil
        for entity in entities where loaded {
            loaded = try await store.state("loaded.\(entity)") == incarnation
        }
        if loaded { return }
        guard ContinuousClock.now < deadline else {
            Issue.record("the entities were not loaded in time", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// Waits until the store's checkpoint reaches `target`.
func waitForCheckpoint(_ store: any IndexStore, _ target: LSN, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let text = try await store.state("checkpoint"), let lsn = LSN(text), lsn >= target { return }
        guard ContinuousClock.now < deadline else {
            Issue.record("the index did not catch up to \(target)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(50))
    }
}

@Suite(.serialized) struct AgentTests {
    let productEntity = AgentConfiguration.Entity(
        name: "product", table: TableName(schema: "public", name: "products"), content: "{{name}}\n{{description}}",
        metadata: ["price"])

    func createProducts(_ db: TestDatabase, rows: Int) async throws {
        try await db.exec("""
            CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text, price numeric, stock int DEFAULT 0);
            INSERT INTO products SELECT g, 'product ' || g, 'description of ' || g, g, 0 FROM generate_series(1, \(rows)) g;
            """)
    }

    @Test(arguments: LiveServer.all)
    func loadsThenStreamsAndOnlyContentChangesCostEmbeddings(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 300)
            let configuration = db.agentConfiguration(entities: [productEntity])
            let embedder = CountingEmbedder()
            try await withAgent(configuration, embedder: embedder) { agent, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.count(entity: "product") == 300)
                #expect(embedder.texts == 300)

                // Metadata-only and unrelated-column updates: no embedding call.
                let callsBefore = embedder.calls
                try await db.exec("UPDATE products SET price = price + 1 WHERE id <= 50")
                try await db.exec("UPDATE products SET stock = 7 WHERE id > 250")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(embedder.calls == callsBefore, "no content changed, so no embedding call")
                let exported = try await store.export(entity: "product", after: nil, limit: 1)
                #expect(exported.first?.metadata["price"] == "2")

                // A content change embeds exactly the changed documents; a rolled-back one never shows.
                try await db.exec("UPDATE products SET name = 'renamed ' || id WHERE id IN (1, 2)")
                try await db.exec("BEGIN; UPDATE products SET name = 'ghost' WHERE id = 3; ROLLBACK;")
                try await db.exec("INSERT INTO products VALUES (1000, 'new lamp', 'bright', 5); DELETE FROM products WHERE id = 4;")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(embedder.texts == 303)
                #expect(try await store.count(entity: "product") == 300)
                let hits = try await store.search(entity: "product", vector: BuiltinEmbedder().vector("renamed 1"), k: 1, filter: [:])
                #expect(hits.first?.id == "1")
                #expect(hits.first?.content == "renamed 1\ndescription of 1")
                #expect(agent.statistics.embeddingsSkipped == 100, "the 100 metadata-only updates")
                try await db.exec("TRUNCATE products")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.count(entity: "product") == 0)
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func replayAfterACrashCostsNoEmbeddings(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 100)
            let configuration = db.agentConfiguration(entities: [productEntity])
            try await withAgent(configuration) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            try await db.exec("UPDATE products SET description = 'changed ' || id WHERE id <= 40")
            let target = try await db.currentLSN()
            // Index the changes but "crash" before the checkpoint: put the old checkpoint back, so the
            // next start replays them from the slot.
            let store = try await Agent.openStore(configuration, logger: testLogger)
            let oldCheckpoint = try #require(try await store.state("checkpoint"))
            try await withAgent(configuration) { _, store in try await waitForCheckpoint(store, target) }
            try await store.apply(IndexBatch(), state: ["checkpoint": oldCheckpoint])
            try await db.exec("SELECT pg_drop_replication_slot('\(db.name)')")
            // Rows deleted while the agent was away are swept by the reload.
            try await db.exec("DELETE FROM products WHERE id > 90")
            // The slot is gone, so this start reloads everything: every document is already stored
            // with the same content, so not one embedding call is made.
            let embedder = CountingEmbedder()
            let oldIncarnation = try await store.state("slot.incarnation")
            try await withAgent(configuration, embedder: embedder) { _, store in
                // Wait for the reload under the new slot, not the stale "loaded" of the old one.
                let deadline = ContinuousClock.now + .seconds(60)
                while try await store.state("slot.incarnation") == oldIncarnation, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await waitForLoaded(store, ["product"])
                try await waitForCheckpoint(store, try await db.currentLSN())
            }
            #expect(embedder.texts == 0, "documents already stored with the same content are not embedded again")
            #expect(try await store.count(entity: "product") == 90)
        }
    }

    @Test(arguments: LiveServer.all)
    func unchangedToastKeepsTheContent(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE articles (id int PRIMARY KEY, title text, body text, views int DEFAULT 0);
                ALTER TABLE articles ALTER COLUMN body SET STORAGE EXTERNAL;
                """)
            let body = String(repeating: "long body text ", count: 1_000)
            let entity = AgentConfiguration.Entity(
                name: "article", table: TableName(schema: "public", name: "articles"), content: "{{title}}: {{body}}", metadata: ["views"])
            let configuration = db.agentConfiguration(entities: [entity])
            try await withAgent(configuration) { agent, store in
                try await db.connection.query("INSERT INTO articles VALUES (1, 'first', $1), (2, 'second', $1)", [body])
                try await waitForCheckpoint(store, try await db.currentLSN())
                // Same transaction as the insert for row 2: coalescing must keep the body too.
                try await db.exec("UPDATE articles SET title = 'first, edited', views = 3 WHERE id = 1")
                try await db.exec("BEGIN; INSERT INTO articles VALUES (3, 'third', \(PostgresConnection.quoteLiteral(body))); UPDATE articles SET title = 'third, edited' WHERE id = 3; COMMIT;")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let documents = try await store.export(entity: "article", after: nil, limit: 10)
                #expect(documents.first { $0.id == "1" }?.content == "first, edited: " + body, "the unchanged TOAST body is kept")
                #expect(documents.first { $0.id == "1" }?.metadata["views"] == "3")
                #expect(documents.first { $0.id == "3" }?.content == "third, edited: " + body, "coalesced in one batch")
                #expect(agent.statistics.deadLetters == 0)
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func aRowThatCannotBeEmbeddedIsDeadLetteredAndRetried(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await createProducts(db, rows: 20)
            let configuration = db.agentConfiguration(entities: [productEntity])
            let embedder = CountingEmbedder(poison: "POISON", failures: 100)
            try await withAgent(configuration, embedder: embedder) { _, store in
                try await waitForCheckpoint(store, try await db.currentLSN())
                try await db.exec("UPDATE products SET name = 'POISON pill' WHERE id = 5; INSERT INTO products VALUES (21, 'fine', 'ok', 1);")
                try await waitForCheckpoint(store, try await db.currentLSN())
                let letters = try await store.deadLetters(entity: "product")
                #expect(letters.map(\.id) == ["5"])
                #expect(letters.first?.stage == "embed")
                #expect(letters.first?.error.contains("HTTP 400") == true)
                #expect(try await store.count(entity: "product") == 21, "every other row kept flowing; the old document of 5 stays")
            }
            // Retry with a provider that now accepts the row: the running agent executes it.
            try await withAgent(configuration) { _, store in
                let jobs = try await DeadLetterRetry.queue(try await store.deadLetters(entity: nil), store: store)
                #expect(jobs.map(\.kind) == [.ids] && jobs.first?.ids == ["5"])
                let job = try #require(jobs.first)
                let deadline = ContinuousClock.now + .seconds(30)
                while try await store.job(job.id)?.status != .completed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await store.deadLetters(entity: nil).isEmpty)
            }
            let store = try await Agent.openStore(configuration, logger: testLogger)
            let five = try await store.export(entity: "product", after: "4", limit: 1)
            #expect(five.first?.content.hasPrefix("POISON pill") == true)
        }
    }

    @Test(arguments: LiveServer.first)
    func startupRejectsBadConfigurationWithTheKeyPath(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE keyless (note text); CREATE TABLE products (id int PRIMARY KEY, name text)")
            var configuration = db.agentConfiguration(entities: [AgentConfiguration.Entity(
                name: "note", table: TableName(schema: "public", name: "keyless"), content: "{{note}}")])
            let keyless = await #expect(throws: SyncError.self) { try await Agent(configuration: configuration, logger: testLogger).run() }
            #expect(keyless?.message.contains("entities.note.table") == true)
            #expect(keyless?.message.contains("no primary key") == true)
            configuration.entities = [AgentConfiguration.Entity(name: "product", table: TableName(schema: "public", name: "products"), content: "{{title}}")]
            let template = await #expect(throws: SyncError.self) { try await Agent(configuration: configuration, logger: testLogger).run() }
            #expect(template?.message.contains("entities.product.content: the template uses {{title}}") == true)
            configuration.source.url = "postgres://nobody:pw@127.0.0.1:1/none"
            let unreachable = await #expect(throws: PostgresError.self) { try await Agent(configuration: configuration, logger: testLogger).run() }
            #expect(unreachable?.message.contains("pw@") == false)
        }
    }
}
