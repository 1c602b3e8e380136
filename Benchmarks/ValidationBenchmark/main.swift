// Validation cost: validating an in-sync entity of N rows beside `COPY (SELECT …) TO STDOUT` of the
// same rows (time, bytes the client receives, and the server's pg_stat_database counters), and the
// time to find drifted rows (documents deleted from the index file behind the agent's back).
//
//   swift run -c release ValidationBenchmark --source postgres://postgres@127.0.0.1:54315/postgres [--rows 1000000] [--drifted 10]
import BenchmarkSupport
import Capture
import Foundation
import GRDB
import Indexing
import Logging
import Postgres
import ServiceLifecycle
import Sync

/// The server's counters for one database (`pg_stat_database`).
struct DatabaseCounters {
    var tuplesReturned = 0
    var tuplesFetched = 0
    var blocks = 0

    static func read(_ connection: PostgresConnection, database: String) async throws -> DatabaseCounters {
        _ = try await connection.query("SELECT pg_stat_clear_snapshot()::text")
        let row = try await connection.query(
            "SELECT tup_returned::text, tup_fetched::text, (blks_hit + blks_read)::text FROM pg_stat_database WHERE datname = $1", [database]
        ).rows.first
        return DatabaseCounters(
            tuplesReturned: Int(row?[0] ?? "0") ?? 0, tuplesFetched: Int(row?[1] ?? "0") ?? 0, blocks: Int(row?[2] ?? "0") ?? 0)
    }

    static func - (lhs: DatabaseCounters, rhs: DatabaseCounters) -> DatabaseCounters {
        DatabaseCounters(
            tuplesReturned: lhs.tuplesReturned - rhs.tuplesReturned, tuplesFetched: lhs.tuplesFetched - rhs.tuplesFetched,
            blocks: lhs.blocks - rhs.blocks)
    }
}

/// Counters around `body`, read once every connection `body` used has closed (a backend flushes its
/// statistics when it exits) and the collector had a moment.
func measured<T>(_ monitor: PostgresConnection, _ database: String, _ body: () async throws -> T) async throws -> (T, DatabaseCounters) {
    let before = try await DatabaseCounters.read(monitor, database: database)
    let value = try await body()
    try await Task.sleep(for: .milliseconds(1_500))
    let after = try await DatabaseCounters.read(monitor, database: database)
    return (value, after - before)
}

func main() async throws {
    var source = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG15_URL"] ?? "postgres://postgres@127.0.0.1:54315/postgres"
    let values = try BenchmarkSupport.options(CommandLine.arguments, known: ["--source", "--rows", "--drifted", "--runs"])
    source = values["--source"] ?? source
    let rows = values["--rows"].flatMap { Int($0) } ?? 1_000_000
    let drifted = values["--drifted"].flatMap { Int($0) } ?? 10
    let runs = values["--runs"].flatMap { Int($0) } ?? 3
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let name = "tidemark_validation_bench"
    let (url, version) = try await BenchmarkSupport.recreateDatabase(name, source: source, logger: logger)
    let db = try await PostgresConnection.connect(url, logger: logger)
    try await db.simpleQuery("""
        CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, body text, category int);
        INSERT INTO items SELECT g, 'item ' || g || ' ' || md5(g::text),
               'A short description of item ' || g || ' with words like lamp, desk, oak and ' || md5((g * 7)::text), g % 50
          FROM generate_series(1, \(rows)) g;
        """)
    // Settled, as a table is between bursts of writes: statistics and visibility map up to date.
    try await db.simpleQuery("VACUUM ANALYZE items")
    print("server: PostgreSQL \(version); \(rows) rows")

    let indexPath = NSTemporaryDirectory() + "tidemark-validation-bench-\(getpid()).db"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: indexPath + suffix) } }
    var configuration = AgentConfiguration(
        source: .init(url: url),
        entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}\n{{body}}", metadata: ["category"])])
    configuration.source.slot = "bench_validation"
    configuration.index = .sqlite(path: indexPath)
    configuration.validation.schedule = nil
    let store = try SQLiteIndexStore(configuration: .init(path: indexPath), logger: logger)
    let agent = Agent(configuration: configuration, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [agent], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let loadStarted = ContinuousClock.now
        while try await store.jobs(entity: "item").first?.status != .completed {
            try await Task.sleep(for: .milliseconds(100))
        }
        print(String(format: "loaded by the agent in %.1f s", (ContinuousClock.now - loadStarted).seconds))

        // Baseline: COPY of the same rows, on a connection of its own.
        let (copy, copyCounters) = try await measured(db, name) { () -> (seconds: Double, bytes: Int) in
            let connection = try await PostgresConnection.connect(url, logger: logger)
            let started = ContinuousClock.now
            try await connection.startCopyOut("COPY (SELECT id, title, body, category FROM items ORDER BY id) TO STDOUT")
            var bytes = 0
            while let chunk = try await connection.readCopyOut() { bytes += chunk.count }
            let seconds = (ContinuousClock.now - started).seconds
            await connection.close()
            return (seconds, bytes)
        }

        func validate(_ checkContent: Bool) async throws -> (ValidationResult, DatabaseCounters) {
            var settings = Validator.Configuration()
            settings.checkContent = checkContent
            let connection = try await PostgresConnection.connect(url, logger: logger)
            let entities = try await Agent.resolveEntities(configuration, on: connection, logger: logger)
            await connection.close()
            let validator = Validator(configuration: settings, entities: entities, store: store, sourceURL: url, logger: logger)
            return try await measured(db, name) { try await validator.validate(entity: "item") }
        }

        print(String(format: "  COPY (SELECT …) TO STDOUT:            %6.2f s, %9d bytes received; server: %d tuples returned, %d blocks",
            copy.seconds, copy.bytes, copyCounters.tuplesReturned, copyCounters.blocks))
        for checkContent in [true, false] {
            var results: [(ValidationResult, DatabaseCounters)] = []
            for _ in 0..<runs { results.append(try await validate(checkContent)) }
            results.sort { $0.0.duration < $1.0.duration }
            let (result, counters) = results[results.count / 2]
            guard result.status == .inSync else { throw BenchmarkError("the entity is not in sync: \(result)") }
            print(String(
                format: "  validate, in sync (content check %@): %6.2f s (%.2f× COPY), %9d bytes received (%.3f%% of COPY); source statements %.2f s, index %.2f s; server: %d tuples returned, %d blocks; %d ranges  [median of %d]",
                checkContent ? "on " : "off", result.duration, result.duration / copy.seconds, result.source.bytes,
                100 * Double(result.source.bytes) / Double(copy.bytes), result.source.seconds, result.index.seconds, counters.tuplesReturned,
                counters.blocks, result.ranges, runs))
        }

        // Where the index side's time goes: the store's pages alone, then ids alone.
        for content in [false, true] {
            let started = ContinuousClock.now
            var after: String?
            var documents = 0
            while true {
                let page = try await store.validationPage(entity: "item", after: after, limit: 5_000, content: content)
                documents += page.count
                guard page.count == 5_000, let last = page.last else { break }
                after = last.id
            }
            print(String(format: "  index pages alone (content %@): %d documents in %.2f s", content ? "on " : "off", documents, (ContinuousClock.now - started).seconds))
        }
        let idsStarted = ContinuousClock.now
        var idCount = 0
        var lastID: String?
        while true {
            let page = try await store.documentIDs(entity: "item", after: lastID, limit: 20_000)
            idCount += page.count
            guard page.count == 20_000, let last = page.last else { break }
            lastID = last
        }
        print(String(format: "  index ids alone: %d in %.2f s", idCount, (ContinuousClock.now - idsStarted).seconds))

        // Drift: documents deleted from the index file behind the agent's back.
        var random = SystemRandomNumberGenerator()
        let victims = Set((0..<drifted * 4).map { _ in String(Int.random(in: 1...rows, using: &random)) }).prefix(drifted).sorted()
        let file = try DatabaseQueue(path: indexPath)
        try await file.write { db in
            for id in victims { try db.execute(sql: "DELETE FROM documents WHERE entity = 'item' AND id = ?", arguments: [id]) }
        }
        let (found, foundCounters) = try await validate(true)
        guard found.missing.count == victims.count, found.missing.sample == Array(victims.sorted().prefix(ValidationResult.sampleLimit)) else {
            throw BenchmarkError("validation did not find exactly the \(victims.count) deleted documents: \(found)")
        }
        print(String(
            format: "  validate, %d of %d documents missing: %6.2f s (%.2f× COPY), %9d bytes received; %d of %d ranges differed, %d ids re-checked; server: %d tuples returned, %d blocks",
            victims.count, rows, found.duration, found.duration / copy.seconds, found.source.bytes, found.differingRanges, found.ranges,
            found.candidates, foundCounters.tuplesReturned, foundCounters.blocks))
        let repairStarted = ContinuousClock.now
        let queued = try await ValidationRequests.submit(entity: "item", kind: .repair, trigger: "benchmark", store: store)
        let repaired = try await ValidationRequests.wait(for: queued.id, store: store)
        guard repaired.result?.status == .inSync else { throw BenchmarkError("the repair did not end in sync: \(repaired)") }
        print(String(format: "  repair (validate, ids job, validate):  %6.2f s", (ContinuousClock.now - repairStarted).seconds))
        print(String(format: "peak RSS of the process (agent, validator and driver): %.1f MB", BenchmarkSupport.peakRSSMegabytes()))

        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
    await db.close()
    try await BenchmarkSupport.dropDatabase(name, source: source, logger: logger)
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
