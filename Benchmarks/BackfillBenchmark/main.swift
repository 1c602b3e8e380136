// Backfill throughput: the agent's initial (watermarked, chunked) backfill of N rows with the built-in
// embedder (or the static model) into SQLite or pgvector, beside `COPY (SELECT …) TO STDOUT` of the
// same rows, in one run.
//
//   swift run -c release BackfillBenchmark --source postgres://postgres@127.0.0.1:54315/postgres [--rows 1000000]
//       [--index sqlite|pgvector] [--hnsw after|before] [--embedder builtin|static|provider] [--searches 500]
//
// `--embedder provider` embeds through the OpenAI-compatible client against the local test provider
// (`TestEmbeddingServer`, 100 ms a request) with a budget of 3000 requests/min × 256 inputs and 16
// requests in flight, and reports the request rate achieved against the rate the budget allows.
//
// After the load (and the HNSW build), `--searches` queries (default 500, 0 to skip) of k = 10 run
// one after another against the loaded index: their latency p50/p99, with and without a metadata
// filter, query embedding included.
//
// With pgvector (the source must be the PostgreSQL 18 server, whose build has it) the index lives in a
// database of its own on the same server; `--hnsw after` (the agent's way) builds the HNSW index once
// the load completed and reports that time too, `--hnsw before` creates it first so every row
// inserted grows it.
import BenchmarkSupport
import Capture
import Embedding
import Foundation
import Indexing
import Logging
import Postgres
import ServiceLifecycle
import Sync
import TestEmbeddingServer

func main() async throws {
    var source = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG15_URL"] ?? "postgres://postgres@127.0.0.1:54315/postgres"
    var rows = 1_000_000
    let values = try BenchmarkSupport.options(CommandLine.arguments, known: ["--source", "--rows", "--index", "--hnsw", "--embedder", "--searches"])
    source = values["--source"] ?? source
    rows = values["--rows"].flatMap { Int($0) } ?? rows
    let indexKind = values["--index"] ?? "sqlite"
    let hnswBefore = values["--hnsw"] == "before"
    let embedderKind = values["--embedder"] ?? "builtin"
    let searches = values["--searches"].flatMap { Int($0) } ?? 500
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let (url, version) = try await BenchmarkSupport.recreateDatabase("tidemark_backfill_bench", source: source, logger: logger)
    let db = try await PostgresConnection.connect(url, logger: logger)
    try await db.simpleQuery("""
        CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL, body text, category int);
        INSERT INTO items SELECT g, 'item ' || g || ' ' || md5(g::text),
               'A short description of item ' || g || ' with words like lamp, desk, oak and ' || md5((g * 7)::text), g % 50
          FROM generate_series(1, \(rows)) g;
        ANALYZE items;
        """)
    print("server: PostgreSQL \(version); \(rows) rows")

    // Baseline: the raw read.
    let copyStart = ContinuousClock.now
    try await db.startCopyOut("COPY (SELECT id, title, body, category FROM items ORDER BY id) TO STDOUT")
    var bytes = 0
    while let chunk = try await db.readCopyOut() { bytes += chunk.count }
    let copySeconds = (ContinuousClock.now - copyStart).seconds

    let indexPath = NSTemporaryDirectory() + "tidemark-backfill-bench-\(getpid()).db"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: indexPath + suffix) } }
    var configuration = AgentConfiguration(
        source: .init(url: url),
        entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}\n{{body}}", metadata: ["category"])])
    configuration.source.slot = "bench_backfill"
    if embedderKind == "static" { configuration.embedder.kind = .static }
    var provider: TestEmbeddingServer?
    let budgetRPM = 3_000
    if embedderKind == "provider" {
        var server = TestEmbeddingServer.Configuration()
        server.latency = .milliseconds(100)
        let started = try await TestEmbeddingServer.start(server)
        var openai = OpenAIEmbedder.Configuration(url: started.baseURL, model: "bench-model")
        openai.requestsPerMinute = budgetRPM
        openai.maxInputs = 256
        openai.concurrency = 16
        configuration.embedder.kind = .openai
        configuration.embedder.openai = openai
        configuration.pipeline.embeddingConcurrency = 16
        provider = started
    }
    let embedder = try Agent.makeEmbedder(configuration, logger: logger)
    let store: any IndexStore
    var vectorStore: PgVectorIndexStore?
    switch indexKind {
    case "sqlite":
        configuration.index = .sqlite(path: indexPath)
        store = try SQLiteIndexStore(configuration: .init(path: indexPath), logger: logger)
    case "pgvector":
        let (indexURL, _) = try await BenchmarkSupport.recreateDatabase("tidemark_backfill_bench_index", source: source, logger: logger)
        configuration.index = .pgvector(url: indexURL, schema: "tidemark")
        let opened = try await PgVectorIndexStore.open(configuration: .init(url: indexURL), logger: logger)
        if hnswBefore { try await opened.ensureSearchIndex(entity: "item", dimensions: embedder.dimensions) }
        vectorStore = opened
        store = opened
    default:
        throw BenchmarkError("--index is sqlite or pgvector")
    }
    print("index: \(indexKind)\(indexKind == "pgvector" ? (hnswBefore ? ", HNSW index created before the load" : ", HNSW index built after the load") : ""); embedder \(embedder.model)")
    let agent = Agent(configuration: configuration, logger: logger, embedder: embedder)
    let group = ServiceGroup(configuration: .init(services: [agent], logger: logger))
    var backfillSeconds = 0.0
    var chunks = 0
    var hnswSeconds = 0.0
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let started = ContinuousClock.now
        while true {
            if let job = try await store.jobs(entity: "item").first, job.status == .completed {
                backfillSeconds = (ContinuousClock.now - started).seconds
                chunks = job.chunks
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if vectorStore != nil && !hnswBefore {
            // The agent builds the index once the load completed: wait until it is valid.
            let name = "chunks_hnsw_" + String(EntityMapping.hash("item\u{1F}\(embedder.dimensions)").prefix(16))
            let indexStarted = ContinuousClock.now
            guard case .pgvector(let indexURL, _) = configuration.index else { return }
            let watcher = try await PostgresConnection.connect(indexURL, logger: logger)
            while try await watcher.query(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1 AND i.indisvalid", [name]
            ).rows.isEmpty {
                try await Task.sleep(for: .milliseconds(50))
            }
            await watcher.close()
            hnswSeconds = (ContinuousClock.now - indexStarted).seconds
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
    let documents = try await store.count(entity: "item")
    print(String(format: "  COPY (SELECT …) TO STDOUT:          %9.0f rows/s  (%.2f s, %.0f MB)", Double(rows) / copySeconds, copySeconds, Double(bytes) / 1e6))
    print(String(format: "  tidemark backfill (chunks, embed, %@): %6.0f rows/s  (%.2f s, %d chunks, %d documents)", indexKind, Double(rows) / backfillSeconds, backfillSeconds, chunks, documents))
    if hnswSeconds > 0 {
        print(String(format: "  HNSW index built after the load:     %.2f s (load + index: %.0f rows/s)", hnswSeconds, Double(rows) / (backfillSeconds + hnswSeconds)))
    }
    if searches > 0 {
        // Queries made of the table's own words, so they have near neighbours.
        let words = ["lamp", "desk", "oak", "item", "short", "description", "words"]
        var random = SystemRandomNumberGenerator()
        for (label, filter) in [("no filter", [String: String]()), ("filter category = 7", ["category": "7"])] {
            var latencies: [Double] = []
            latencies.reserveCapacity(searches)
            for index in 0..<searches {
                let query = "\(words[index % words.count]) \(words[Int.random(in: 0..<words.count, using: &random)]) item \(Int.random(in: 1...rows, using: &random))"
                let started = ContinuousClock.now
                let vector = try await embedder.embed([query])[0]
                let hits = try await store.search(entity: "item", vector: vector, k: 10, filter: filter)
                latencies.append((ContinuousClock.now - started).seconds * 1_000)
                if hits.isEmpty { throw BenchmarkError("search \(index) (\(label)) found nothing") }
            }
            latencies.sort()
            let p50 = latencies[latencies.count / 2]
            let p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
            print(String(format: "  search k=10 over %d documents, %@: p50 %.2f ms, p99 %.2f ms (%d queries)", documents, label, p50, p99, searches))
        }
    }
    if let provider {
        let requests = provider.requests.filter { $0.status == 200 }.sorted { $0.arrivedAt < $1.arrivedAt }
        let allowed = Double(budgetRPM) / 60
        let burst = (budgetRPM + 59) / 60
        let span = (requests.last.map { $0.arrivedAt - (requests.first?.arrivedAt ?? $0.arrivedAt) } ?? .zero).seconds
        let steady = span > 0 ? Double(max(0, requests.count - burst)) / span : 0
        let inputs = requests.reduce(0) { $0 + $1.inputs }
        print(String(format: "  provider: %d requests, %d inputs over %.2f s; %.1f requests/s after the first window's burst = %.1f%% of the allowed %.1f",
                     requests.count, inputs, span, steady, steady / allowed * 100, allowed))
        await provider.stop()
    }
    print(String(format: "peak RSS of the process (agent and driver): %.1f MB", BenchmarkSupport.peakRSSMegabytes()))
    await db.close()
    if let vectorStore {
        await vectorStore.close()
        try await BenchmarkSupport.dropDatabase("tidemark_backfill_bench_index", source: source, logger: logger)
    }
    try await BenchmarkSupport.dropDatabase("tidemark_backfill_bench", source: source, logger: logger)
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
