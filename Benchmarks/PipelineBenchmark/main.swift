// End-to-end streaming: committed changes → documents → built-in embeddings → SQLite, measured
// against pg_recvlogical on the same WAL in the same run; then commit→searchable latency at a
// steady rate; then peak memory.
//
//   swift run -c release PipelineBenchmark --source postgres://postgres@127.0.0.1:54315/postgres \
//       --bin /usr/lib/postgresql/15/bin [--inserts 200000] [--updates 100000] [--rate 1000] [--seconds 20]
//       [--api on|off] [--status-rate 100] [--index sqlite|pgvector]
//
// With `--index pgvector` (the source must be the PostgreSQL 18 server, whose build has pgvector) the
// index lives in a database of its own on the same server.
//
// With `--api on` the agent runs as `tidemark run` does: with its API server and metrics, scraped
// once a second (`/metrics`, `/api/status`) during the throughput phase, and `/api/status` is
// loaded at `--status-rate` requests/s during the latency phase (its p50/p99 are reported).
//
// `TIDEMARK_BENCH_LOG=notice` (or `info`, `debug`) shows the agent's log, e.g. its "slow batch" lines.
import AsyncHTTPClient
import BenchmarkSupport
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import Prometheus
import Server
import ServiceLifecycle
import Sync
import Synchronization

struct Options {
    var source = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG15_URL"] ?? "postgres://postgres@127.0.0.1:54315/postgres"
    var bin = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG15_BIN"] ?? "/usr/lib/postgresql/15/bin"
    var inserts = 200_000
    var updates = 100_000
    var rate = 1_000
    var seconds = 20
    var api = false
    var statusRate = 100
    var index = "sqlite"
    /// `pipeline.embedding_concurrency` (`nil`: the agent's default for the embedder).
    var embeddingConcurrency: Int?

    init(_ arguments: [String]) throws {
        let values = try BenchmarkSupport.options(
            arguments, known: ["--source", "--bin", "--inserts", "--updates", "--rate", "--seconds", "--api", "--status-rate", "--index", "--embedding-concurrency"])
        embeddingConcurrency = values["--embedding-concurrency"].flatMap { Int($0) }
        api = values["--api"] == "on"
        index = values["--index"] ?? index
        statusRate = values["--status-rate"].flatMap { Int($0) } ?? statusRate
        source = values["--source"] ?? source
        bin = values["--bin"] ?? bin
        inserts = values["--inserts"].flatMap { Int($0) } ?? inserts
        updates = values["--updates"].flatMap { Int($0) } ?? updates
        rate = values["--rate"].flatMap { Int($0) } ?? rate
        seconds = values["--seconds"].flatMap { Int($0) } ?? seconds
    }
}

func insertLSN(_ connection: PostgresConnection) async throws -> LSN {
    let text = try await connection.query("SELECT pg_current_wal_insert_lsn()::text").rows.first?.first ?? nil
    return try LSN.parse(text ?? "")
}

func waitForCheckpoint(_ store: any IndexStore, _ target: LSN) async throws {
    while true {
        if let text = try await store.state("checkpoint"), let lsn = LSN(text), lsn >= target { return }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Whether the agent runs with its API and metrics (`--api on`), set once in `main`.
nonisolated(unsafe) var apiEnabled = false
/// The API's base URL while an agent runs with it.
nonisolated(unsafe) var apiBaseURL = ""

/// Runs the agent until `body` returns, then shuts it down gracefully. With the API on, as
/// `tidemark run` wires it: metrics observer, API server in the same group.
func withAgent(_ configuration: AgentConfiguration, logger: Logger, _ body: (Agent) async throws -> Void) async throws {
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
    let agent: Agent
    var server: APIServer?
    if apiEnabled {
        let registry = PrometheusCollectorRegistry()
        var metricsConfiguration = MetricsRecorder.Configuration()
        metricsConfiguration.factory = MetricsRecorder.prometheusFactory(registry: registry)
        let metrics = MetricsRecorder(configuration: metricsConfiguration)
        agent = Agent(configuration: configuration, logger: logger, observer: { metrics.observe($0) })
        var serverConfiguration = APIServer.Configuration()
        serverConfiguration.port = 0
        serverConfiguration.registry = registry
        let api = APIServer(configuration: serverConfiguration, agent: agent, metrics: metrics, logger: logger)
        server = api
        services.append(.init(service: api))
    } else {
        agent = Agent(configuration: configuration, logger: logger)
    }
    services.append(.init(service: agent, successTerminationBehavior: .gracefullyShutdownGroup))
    let group = ServiceGroup(configuration: .init(services: services, logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        if let server, let port = await server.waitUntilBound() { apiBaseURL = "http://127.0.0.1:\(port)" }
        try await body(agent)
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}

/// The `/api/status` load of the latency phase: when to stop, and what it measured.
final class StatusLoad: Sendable {
    let done = Mutex(false)
    let times = Mutex<[Double]>([])
    let errors = Mutex(0)
}

/// GET `path` on the running agent's API; returns the seconds it took.
func timedGet(_ path: String) async throws -> Double {
    let started = ContinuousClock.now
    let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: apiBaseURL + path), timeout: .seconds(10))
    _ = try await response.body.collect(upTo: 16 << 20)
    guard response.status == .ok else { throw BenchmarkError("GET \(path) answered \(response.status.code)") }
    return (ContinuousClock.now - started).seconds
}

/// What a Prometheus server and an open dashboard do: `/metrics` and `/api/status` once a second.
func scrape() async {
    while !Task.isCancelled {
        _ = try? await timedGet("/metrics")
        _ = try? await timedGet("/api/status")
        try? await Task.sleep(for: .seconds(1))
    }
}

func main() async throws {
    let options = try Options(CommandLine.arguments)
    apiEnabled = options.api
    var logger = Logger(label: "bench")
    logger.logLevel = ProcessInfo.processInfo.environment["TIDEMARK_BENCH_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .error
    let (url, version) = try await BenchmarkSupport.recreateDatabase("tidemark_pipeline_bench", source: options.source, logger: logger)
    let db = try await PostgresConnection.connect(url, logger: logger)
    try await db.simpleQuery("CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, body text, category int, price numeric(10,2))")

    let indexPath = NSTemporaryDirectory() + "tidemark-pipeline-bench-\(getpid()).db"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: indexPath + suffix) } }
    var configuration = AgentConfiguration(
        source: .init(url: url),
        entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}\n{{body}}", metadata: ["category", "price"])])
    configuration.source.slot = "bench_agent"
    configuration.source.publication = "bench"
    configuration.source.heartbeatInterval = .milliseconds(100)
    configuration.pipeline.embeddingConcurrency = options.embeddingConcurrency
    let store: any IndexStore
    switch options.index {
    case "sqlite":
        configuration.index = .sqlite(path: indexPath)
        store = try SQLiteIndexStore(configuration: .init(path: indexPath), logger: logger)
    case "pgvector":
        let (indexURL, _) = try await BenchmarkSupport.recreateDatabase("tidemark_pipeline_bench_index", source: options.source, logger: logger)
        configuration.index = .pgvector(url: indexURL, schema: "tidemark")
        store = try await PgVectorIndexStore.open(configuration: .init(url: indexURL), logger: logger)
    default:
        throw BenchmarkError("--index is sqlite or pgvector")
    }
    print("index: \(options.index)")

    // 1. First start: creates publication and slot, loads the (empty) table; wait for that job.
    try await withAgent(configuration, logger: logger) { _ in
        try await waitForCheckpoint(store, try await insertLSN(db))
        while true {
            let jobs = try await store.jobs(entity: "item")
            if !jobs.isEmpty && jobs.allSatisfy({ $0.status == .completed }) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    try await db.query("SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')")

    // 2. The workload, written while the agent is stopped: both consumers then read the same WAL.
    print("API and metrics: \(options.api ? "on (scraped every second)" : "off")")
    print("server: PostgreSQL \(version); workload: \(options.inserts) inserts + \(options.updates) content updates, 1000 rows per transaction")
    try await db.simpleQuery("""
        DO $$ BEGIN
          FOR i IN 0..\(options.inserts / 1000 - 1) LOOP
            INSERT INTO items SELECT g, 'item ' || g || ' ' || md5(g::text),
                   'A short description of item ' || g || ' with words like lamp, desk, oak and ' || md5((g * 7)::text),
                   g % 50, (g % 10000) / 100.0
              FROM generate_series(i * 1000 + 1, (i + 1) * 1000) g;
            COMMIT;
          END LOOP;
          FOR i IN 0..\(options.updates / 1000 - 1) LOOP
            UPDATE items SET title = title || ' v2' WHERE id BETWEEN i * 1000 + 1 AND (i + 1) * 1000;
            COMMIT;
          END LOOP;
        END $$
        """)
    let end = try await insertLSN(db)
    try await db.query("SELECT pg_logical_emit_message(false, 'bench', 'end')")
    let changes = options.inserts + options.updates

    let recvSeconds = try BenchmarkSupport.runRecvLogical(bin: options.bin, url: url, slot: "bench_recv", publication: "bench", end: end)

    var agentSeconds = 0.0
    var statistics = Pipeline.Statistics()
    try await withAgent(configuration, logger: logger) { agent in
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            if options.api { group.addTask { await scrape() } }
            try await waitForCheckpoint(store, end)
            agentSeconds = (ContinuousClock.now - started).seconds
            group.cancelAll()
        }
        statistics = agent.statistics
    }
    let documents = try await store.count(entity: "item")
    print("")
    print("streaming throughput (\(changes) changes, \(documents) documents in the index)")
    print(String(format: "  pg_recvlogical (decode only):              %8.0f changes/s  (%.2f s)", Double(changes) / recvSeconds, recvSeconds))
    print(String(format: "  tidemark (decode, render, embed, %@):%@ %8.0f changes/s  (%.2f s)  ratio %.2f×",
                 options.index, String(repeating: " ", count: max(0, 9 - options.index.count)), Double(changes) / agentSeconds, agentSeconds, recvSeconds / agentSeconds))
    print("  batches \(statistics.batches), embedded \(statistics.embeddedDocuments) documents in \(statistics.embeddingCalls) calls, skipped \(statistics.embeddingsSkipped)")

    // 3. Latency at a steady rate: 10-row transactions every 10 ms for 1000 rows/s.
    let rowsPerTransaction = 10
    let interval = Duration.milliseconds(1000 * rowsPerTransaction / max(1, options.rate))
    var latency = LatencyHistogram()
    let statusLoad = StatusLoad()
    // The driver's own delays: a slow statement is a stall before the change reaches the agent
    // (e.g. the source's WAL flush); a late start is this process not getting to run.
    var driver = (slowestStatement: 0.0, latestStart: 0.0)
    // A restarted agent's first changes wait while the source re-decodes its WAL from the slot's
    // restart_lsn, which moves only at running-transactions records (about 15 s apart) and so can
    // be 100 MB behind after the throughput phase. That is restart catch-up and is reported on its
    // own; the steady-state figures start once a first transaction has come through.
    let gapRow = try await db.query(
        "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = 'bench_agent'")
    let restartGap = (gapRow.rows.first?.first ?? nil).flatMap { Double($0) } ?? 0
    var warmUp = 0.0
    var nextID = options.inserts + 1
    var redecode = 0.0
    try await withAgent(configuration, logger: logger) { agent in
        // How long the source's walsender takes to re-read the WAL up to where the agent stopped.
        let startLSN = try await insertLSN(db)
        let redecodeStart = ContinuousClock.now
        while ContinuousClock.now - redecodeStart < .seconds(30) {
            let sent = try await db.query(
                """
                SELECT r.sent_lsn::text FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
                 WHERE s.slot_name = 'bench_agent'
                """)
            if let text = sent.rows.first?.first ?? nil, let lsn = LSN(text), lsn >= startLSN { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        redecode = (ContinuousClock.now - redecodeStart).seconds
        try await waitForCheckpoint(store, try await insertLSN(db))
        let warmUpStart = ContinuousClock.now
        try await db.query("INSERT INTO items VALUES ($1::bigint, 'warm-up', 'warm-up', 0, 1)", [String(nextID)])
        nextID += 1
        try await waitForCheckpoint(store, try await insertLSN(db))
        warmUp = (ContinuousClock.now - warmUpStart).seconds
        let baseline = agent.statistics.latency
        let load = Task {
            // Open loop: requests start on schedule whether or not earlier ones have answered.
            guard options.api else { return }
            let spacing = Duration.microseconds(1_000_000 / Int64(max(1, options.statusRate)))
            var next = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                while !statusLoad.done.withLock({ $0 }) {
                    group.addTask {
                        do {
                            let seconds = try await timedGet("/api/status")
                            statusLoad.times.withLock { $0.append(seconds) }
                        } catch {
                            statusLoad.errors.withLock { $0 += 1 }
                        }
                    }
                    next += spacing
                    try? await Task.sleep(until: next)
                }
            }
        }
        defer { statusLoad.done.withLock { $0 = true } }
        let deadline = ContinuousClock.now + .seconds(options.seconds)
        var tick = ContinuousClock.now
        var toggle = false
        while ContinuousClock.now < deadline {
            let statementStart = ContinuousClock.now
            driver.latestStart = max(driver.latestStart, (statementStart - tick).seconds)
            if toggle {
                try await db.query("UPDATE items SET body = body || ' x' WHERE id BETWEEN $1 AND $2", [String(nextID - 10), String(nextID - 1)])
            } else {
                try await db.query(
                    "INSERT INTO items SELECT g, 'steady ' || g, 'steady body ' || g, g % 50, 1 FROM generate_series($1::bigint, $2::bigint) g",
                    [String(nextID), String(nextID + rowsPerTransaction - 1)])
                nextID += rowsPerTransaction
            }
            driver.slowestStatement = max(driver.slowestStatement, (ContinuousClock.now - statementStart).seconds)
            toggle.toggle()
            tick += interval
            let now = ContinuousClock.now
            if tick > now { try await Task.sleep(until: tick) }
        }
        statusLoad.done.withLock { $0 = true }
        await load.value
        try await waitForCheckpoint(store, try await insertLSN(db))
        latency = agent.statistics.latency.subtracting(baseline)
    }
    print("")
    print(String(format: "after the restart: the source re-read %.0f MB of WAL from the slot's restart_lsn in %.0f ms; then a first transaction was searchable in %.0f ms",
                 restartGap / 1_048_576, redecode * 1000, warmUp * 1000))
    print("commit → searchable latency at \(options.rate) changes/s for \(options.seconds) s (\(latency.count) transactions)")
    print(String(format: "  p50 %.1f ms   p90 %.1f ms   p99 %.1f ms   max %.1f ms",
                 latency.percentile(0.5), latency.percentile(0.9), latency.percentile(0.99), latency.maximum))
    print(String(format: "  driver: slowest statement %.1f ms, latest start %.1f ms behind schedule",
                 driver.slowestStatement * 1000, driver.latestStart * 1000))
    if options.api {
        let times = statusLoad.times.withLock { $0 }.sorted()
        func percentile(_ fraction: Double) -> Double {
            times.isEmpty ? 0 : times[min(times.count - 1, Int((fraction * Double(times.count)).rounded(.up)) - 1)] * 1000
        }
        print(String(format: "GET /api/status at %d requests/s during that phase: %d requests, %d errors, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                     options.statusRate, times.count, statusLoad.errors.withLock { $0 }, percentile(0.5), percentile(0.99), (times.last ?? 0) * 1000))
    }
    print(String(format: "peak RSS of the process (agent and driver): %.1f MB", BenchmarkSupport.peakRSSMegabytes()))

    await db.close()
    if let vectorStore = store as? PgVectorIndexStore {
        await vectorStore.close()
        try await BenchmarkSupport.dropDatabase("tidemark_pipeline_bench_index", source: options.source, logger: logger)
    }
    try await BenchmarkSupport.dropDatabase("tidemark_pipeline_bench", source: options.source, logger: logger)
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
