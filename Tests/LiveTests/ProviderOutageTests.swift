import Embedding
import Foundation
import Indexing
import Postgres
import Sync
import TestEmbeddingServer
import Testing

/// The agent with an OpenAI-compatible provider (the local test server) that goes away while the
/// application writes: the pipeline pauses and lag grows, nothing becomes a dead letter, the agent
/// does not exit, and once the provider is back every change arrives and no content is embedded twice.
@Suite struct ProviderOutageTests {
    /// How long the provider is down; the issue asks for a minute. `TIDEMARK_OUTAGE_SECONDS` shortens
    /// it while working on the test.
    static let outage = Duration.seconds(Int(ProcessInfo.processInfo.environment["TIDEMARK_OUTAGE_SECONDS"] ?? "") ?? 60)

    @Test(arguments: LiveServer.all.prefix(1))
    func aProviderOutageDuringStreamingLosesNothingAndEmbedsNothingTwice(server: LiveServer) async throws {
        let provider = try await TestEmbeddingServer.start()
        defer { Task { await provider.stop() } }
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text, price numeric, stock int DEFAULT 0);
                INSERT INTO products SELECT g, 'product ' || g, 'description of ' || g, g, 0 FROM generate_series(1, 100) g;
                """)
            var configuration = db.agentConfiguration(entities: [ContractTests.products])
            var openai = OpenAIEmbedder.Configuration(url: provider.baseURL, model: "test-model")
            openai.initialBackoff = .milliseconds(100)
            openai.maxBackoff = .seconds(2)
            openai.timeout = .seconds(30)
            configuration.embedder.kind = .openai
            configuration.embedder.openai = openai
            try await withAgent(configuration) { agent, store in
                let loaded = Self.embeddedInputs(provider)
                #expect(loaded == 100, "the initial load embeds each row once")

                await provider.stop()  // connection refused from now on
                let down = ContinuousClock.now
                try await db.exec("UPDATE products SET description = 'new description of ' || id WHERE id <= 40")
                try await db.exec("DELETE FROM products WHERE id BETWEEN 41 AND 50")
                try await db.exec("UPDATE products SET price = price + 1 WHERE id BETWEEN 51 AND 70")  // metadata only
                try await db.exec("INSERT INTO products SELECT g, 'fresh ' || g, 'added while the provider was down', g, 0 FROM generate_series(1001, 1100) g")
                let written = try await db.currentLSN()

                // Down: the checkpoint and the slot stay behind the writes, nothing is dead-lettered.
                var lagged = true
                while ContinuousClock.now - down < Self.outage {
                    let checkpoint = try await store.state("checkpoint").flatMap { LSN($0) } ?? .zero
                    lagged = lagged && checkpoint < written
                    #expect(try await store.deadLetters(entity: nil).isEmpty, "a provider outage is not the rows' fault")
                    try await Task.sleep(for: .seconds(1))
                }
                #expect(lagged, "the checkpoint passed changes that were never embedded")
                let slotLag = try await db.scalar(
                    "SELECT pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::text FROM pg_replication_slots WHERE slot_name = $2",
                    [written.description, configuration.source.slot])
                #expect((slotLag.flatMap(Double.init) ?? 0) > 0, "the slot confirmed past changes not yet in the index (lag \(slotLag ?? "none"))")
                #expect(agent.runtime?.embedder.health.healthy == false, "the embedder reports the outage")

                try await provider.restart()
                try await waitForCheckpoint(store, written, timeout: .seconds(120))
                let after = try await drift(
                    db, store, entity: "product", sql: ContractTests.productsSQL, template: ContractTests.products.content, metadata: ["price"])
                #expect(after.isEmpty, "after the outage: \(after)")
                #expect(try await store.deadLetters(entity: nil).isEmpty)
                // 40 new descriptions and 100 new rows; deletes and the price change cost nothing,
                // and nothing sent before the outage is sent again.
                #expect(Self.embeddedInputs(provider) - loaded == 140)
            }
        }
    }

    /// Inputs the provider answered with vectors.
    static func embeddedInputs(_ provider: TestEmbeddingServer) -> Int {
        provider.requests.filter { $0.status == 200 }.reduce(0) { $0 + $1.inputs }
    }
}
