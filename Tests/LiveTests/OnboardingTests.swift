import Foundation
import Indexing
import Postgres
import Testing

@testable import Sync

/// `tidemark init` on a real catalog writes a configuration the loader accepts and the agent runs;
/// job commands go through a running agent's API when it answers.
@Suite struct OnboardingTests {
    @Test(arguments: LiveServer.all)
    func initWritesAConfigurationThatLoadsAndRuns(server: LiveServer) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text, price numeric(10,2), in_stock boolean);
                CREATE TABLE events (at timestamptz, payload jsonb);
                CREATE SCHEMA crm;
                CREATE TABLE crm.contacts (email text PRIMARY KEY, full_name varchar(200), notes text, score int);
                INSERT INTO products SELECT g, 'p' || g, 'd' || g, g, g % 2 = 0 FROM generate_series(1, 20) g;
                INSERT INTO crm.contacts VALUES ('a@example.com', 'Ada', 'likes lamps', 3);
                """)
            let directory = NSTemporaryDirectory() + "tidemark-init-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/tidemark.yml"
            let result = try await TidemarkBinary.run(binary, ["init", "--source", db.url, "--output", path, "--index", directory + "/index.db"])
            #expect(result.status == 0, "\(result.error)")
            #expect(result.output.contains("2 entities from 3 tables"), "\(result.output)")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("ok: wal_level = logical"), "\(text)")
            #expect(text.contains("public.events: no primary key"), "\(text)")
            // Refuses to overwrite without --force.
            #expect(try await TidemarkBinary.run(binary, ["init", "--source", db.url, "--output", path]).status != 0)

            var configuration = try ConfigurationLoader(environment: [:]).load(path: path)
            #expect(configuration.entities.map(\.name) == ["crm_contacts", "products"])
            let products = try #require(configuration.entities.last)
            #expect(products.content == "{{name}}\n{{description}}")
            #expect(products.metadata == ["price", "in_stock"])
            #expect(configuration.entities[0].content == "{{email}}\n{{full_name}}\n{{notes}}")
            configuration.source.slot = db.name
            try await withAgent(configuration) { (_: Agent, store: any IndexStore) async throws -> Void in
                let products = try await store.count(entity: "products")
                let contacts = try await store.count(entity: "crm_contacts")
                let document = try await store.document(entity: "products", id: "4")
                #expect(products == 20)
                #expect(contacts == 1)
                #expect(document?.metadata["in_stock"] == "t")
            }
        }
    }

    /// With an agent answering at the configured `api.listen`, `tidemark backfill` and
    /// `tidemark job` act through its API: the job lands in the agent's index even though the
    /// command's own configuration names another index file.
    @Test(arguments: LiveServer.first)
    func jobCommandsGoThroughTheRunningAgent(server: LiveServer) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        try await withAPI(on: server) { api in
            let port = try #require(api.server.boundPort)
            let directory = NSTemporaryDirectory() + "tidemark-cli-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let configuration = api.agent.configuration
            let path = directory + "/tidemark.yml"
            try """
                source: { url: "\(configuration.source.url)", slot: \(configuration.source.slot) }
                index: { kind: sqlite, path: "\(directory)/elsewhere.db" }
                api: { listen: "127.0.0.1:\(port)" }
                entities:
                  product: { table: public.products, content: "{{name}}" }
                """.write(toFile: path, atomically: true, encoding: .utf8)
            var environment = ProcessInfo.processInfo.environment
            environment["TIDEMARK_API_LISTEN"] = "127.0.0.1:\(port)"
            let queued = try await TidemarkBinary.run(binary, ["backfill", "product", "--ids", "1", "2", "--config", path], environment: environment)
            #expect(queued.status == 0, "\(queued.error)")
            let id = try #require(queued.output.split(separator: " ").dropFirst().first.map(String.init), "\(queued.output)")
            let job = try #require(try await api.store.job(id), "the job is in the agent's index: \(queued.output)")
            #expect(job.kind == .ids && job.estimatedTotal == 2 && job.status == .completed, "\(job)")
            #expect(!FileManager.default.fileExists(atPath: directory + "/elsewhere.db"), "the command did not open its own index")
            let paused = try await TidemarkBinary.run(binary, ["job", id, "pause", "--config", path], environment: environment)
            #expect(paused.status != 0 && paused.error.contains("only queued, running or paused"), "\(paused.error)")
            let shown = try await TidemarkBinary.run(binary, ["job", id, "--config", path], environment: environment)
            #expect(shown.status == 0 && shown.output.contains(id), "\(shown.error)")
            let retried = try await TidemarkBinary.run(binary, ["dead-letters", "--retry", "--config", path], environment: environment)
            #expect(retried.status == 0, "\(retried.error)")
        }
    }
}
