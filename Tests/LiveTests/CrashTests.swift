import Capture
import Foundation
import Indexing
import Postgres
import Synchronization
import Testing

@testable import Sync

/// The agent is killed with SIGKILL at random instants while a mixed workload runs; at the end the
/// index must equal the source rendered through the same template.
@Suite(.serialized) struct CrashTests {
    @Test(arguments: LiveCase.all)
    func survivesRepeatedSIGKILLWithNothingMissingExtraOrStale(live: LiveCase) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        let directory = NSTemporaryDirectory() + "tidemark-crash-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await withDatabase(live, directory: directory) { db, index in
            try await db.exec("""
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL, body text, category text, hits int DEFAULT 0);
                INSERT INTO items SELECT g, 'item ' || g, 'body of item ' || g, 'c' || (g % 5), 0 FROM generate_series(1, 3000) g;
                """)
            let configPath = directory + "/tidemark.yml"
            let template = "{{title}}\\n{{body}}"
            try """
                source: { url: "\(db.url)", slot: \(db.name), heartbeat_interval: 200ms }
                \(index.yaml)
                pipeline: { batch_size: 200, batch_delay: 20ms }
                entities:
                  item:
                    table: public.items
                    content: "\(template)"
                    metadata: [category]
                """.write(toFile: configPath, atomically: true, encoding: .utf8)

            let stop = Mutex(false)
            let progress = Mutex(0)
            let workload = Task {
                var random = SplitMix64(seed: 42)
                let connection = try await PostgresConnection.connect(db.url, logger: testLogger)
                var nextID = 3001
                var operations = 0
                while !stop.withLock({ $0 }) {
                    let id = Int(random.next() % UInt64(nextID - 1)) + 1
                    switch random.next() % 10 {
                    case 0, 1:
                        try await connection.query("INSERT INTO items VALUES ($1, $2, $3, $4)", [String(nextID), "new \(nextID)", "fresh body \(operations)", "c\(nextID % 5)"])
                        nextID += 1
                    case 2, 3, 4:
                        try await connection.query("UPDATE items SET title = $2, body = body || '.' WHERE id = $1", [String(id), "edited \(operations)"])
                    case 5:
                        try await connection.query("UPDATE items SET category = 'moved' WHERE id = $1", [String(id)])
                    case 6:
                        try await connection.query("UPDATE items SET hits = hits + 1 WHERE id = $1", [String(id)])
                    case 7:
                        try await connection.query("DELETE FROM items WHERE id = $1", [String(id)])
                    case 8:
                        try await connection.simpleQuery("BEGIN; UPDATE items SET title = 'rolled back' WHERE id = \(id); DELETE FROM items WHERE id = \(id + 1); ROLLBACK;")
                    default:
                        try await connection.simpleQuery("BEGIN; INSERT INTO items VALUES (\(nextID), 'pair \(nextID)', 'x', 'c0'); UPDATE items SET body = 'paired' WHERE id = \(id); DELETE FROM items WHERE id = \(nextID); COMMIT;")
                        nextID += 1
                    }
                    operations += 1
                    progress.withLock { $0 = operations }
                    try await Task.sleep(for: .milliseconds(1))
                }
                await connection.close()
                return operations
            }

            var random = SplitMix64(seed: 7)
            var kills = 0
            // Lifetimes during which the workload wrote (the machine's load decides how much).
            var busyLifetimes = 0
            for _ in 0..<10 {
                let before = progress.withLock { $0 }
                let agent = try AgentProcess(binary: binary, config: configPath)
                let lifetime = 300 + Int(random.next() % 1_500)
                try await Task.sleep(for: .milliseconds(lifetime))
                agent.kill(SIGKILL)
                #expect(agent.wait() == SIGKILL)
                kills += 1
                if progress.withLock({ $0 }) > before { busyLifetimes += 1 }
            }
            stop.withLock { $0 = true }
            let operations = try await workload.value
            // One more commit after the last agent died, so only the next agent can reach the target
            // (and it is surely running, with its signal handlers, when it gets there).
            try await db.exec("UPDATE items SET hits = hits + 1 WHERE id = (SELECT min(id) FROM items)")
            let target = try await db.currentLSN()

            // A last clean run catches up; SIGTERM then drains and exits 0.
            let logPath = directory + "/last-run.log"
            let agent = try AgentProcess(binary: binary, config: configPath, log: logPath, level: "info")
            let store = try await index.open()
            let beforeStart = try await store.state("checkpoint") ?? "none"
            try await waitForCheckpoint(store, target, timeout: .seconds(120))
            try await waitForLoaded(store, ["item"])
            let reached = try await store.state("checkpoint") ?? "none"
            let running = agent.process.isRunning
            agent.kill(SIGTERM)
            let status = agent.wait()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            #expect(status == 0 && agent.process.terminationReason == .exit, "graceful shutdown exits 0; target \(target), checkpoint before start \(beforeStart), reached \(reached), running \(running); log:\n\(log.suffix(3000))")

            // Compare the index with the source rendered through the same template.
            let contentTemplate = try ContentTemplate("{{title}}\n{{body}}")
            let rows = try await db.connection.query("SELECT id::text, title, body, category FROM items")
            var expected: [String: (content: String, category: String?)] = [:]
            for row in rows.rows {
                let values: [String: String?] = ["title": row[1], "body": row[2]]
                expected[row[0] ?? ""] = (contentTemplate.render(values), row[3])
            }
            var exported: [String: ExportedDocument] = [:]
            var after: String?
            while true {
                let page = try await store.export(entity: "item", after: after, limit: 1_000)
                if page.isEmpty { break }
                for document in page { exported[document.id] = document }
                after = page.last?.id
            }
            let missing = expected.keys.filter { exported[$0] == nil }
            let extra = exported.keys.filter { expected[$0] == nil }
            let stale = expected.filter { id, value in
                guard let document = exported[id] else { return false }
                return document.content != value.content || document.metadata["category"] != value.category
                    || document.contentHash != EntityMapping.hash(value.content)
            }
            #expect(kills == 10)
            #expect(busyLifetimes >= 9 && operations >= 50, "the workload ran throughout: \(operations) operations, during \(busyLifetimes) of 10 agent lifetimes")
            #expect(missing.isEmpty, "missing: \(missing.prefix(10))")
            #expect(extra.isEmpty, "extra: \(extra.prefix(10))")
            #expect(stale.isEmpty, "stale: \(stale.keys.prefix(10))")
            #expect(exported.count == expected.count && expected.count > 2_000)
        }
    }
}

/// `tidemark run` in a child process.
final class AgentProcess {
    let process = Process()

    init(binary: String, config: String, log: String? = nil, level: String = "warning") throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", "--config", config, "--log-level", level]
        process.environment = TidemarkBinary.environment
        process.standardOutput = FileHandle.nullDevice
        if let log, FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) {
            process.standardError = handle
        } else {
            process.standardError = FileHandle.standardError
        }
        try process.run()
    }

    func kill(_ signal: Int32) { _ = Glibc.kill(process.processIdentifier, signal) }

    /// Exit status, or the signal that ended the process.
    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}
