// The static embedding model against the built-in hashing embedder: load time and memory,
// throughput on short and long texts (one core and all cores), tokenizer cost on a long text
// without pre-tokenization, and retrieval quality (recall@5, MRR) on the labelled demo-shop set.
//
//   Scripts/bench-embedding.sh [--model-dir models/wordllama] [--queries Benchmarks/RetrievalSet/shop-queries.json]
//       [--source postgres://postgres@127.0.0.1:54315/postgres] [--seconds 3]
import BenchmarkSupport
import Embedding
import Foundation
import Logging
import Postgres

struct Options {
    var modelDirectory = "models/wordllama"
    var queries = "Benchmarks/RetrievalSet/shop-queries.json"
    var source = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG15_URL"] ?? "postgres://postgres@127.0.0.1:54315/postgres"
    var seconds = 3.0

    init(_ arguments: [String]) throws {
        let values = try BenchmarkSupport.options(arguments, known: ["--model-dir", "--queries", "--source", "--seconds"])
        modelDirectory = values["--model-dir"] ?? modelDirectory
        queries = values["--queries"] ?? queries
        source = values["--source"] ?? source
        seconds = values["--seconds"].flatMap { Double($0) } ?? seconds
    }
}

struct RetrievalSet: Decodable {
    struct Query: Decodable {
        var kind: String
        var query: String
        var relevant: [Int]
    }

    var queries: [Query]
}

/// Resident set size of this process now (`VmRSS`), in MB.
func currentRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}

/// Demo-shop-like words for synthetic texts.
let vocabulary = """
    compact rugged elegant lightweight cordless foldable insulated adjustable waterproof vintage ergonomic solar wireless \
    handmade stackable quiet cast iron bamboo stainless steel oak linen ceramic recycled plastic copper walnut aluminium wool \
    glass skillet tent desk lamp backpack kettle headphones chair water bottle speaker planter notebook yoga mat lantern chef \
    knife monitor stand blanket travel mug bike light garden hose dumbbell keeps heat for hours survives a week of rain packs \
    down to the size of book charges over usb-c is dishwasher safe runs whisper ships fully assembled folds flat storage made \
    from reclaimed material has lifetime warranty pairs with any phone weighs less than kilo weekend campers small apartments \
    home baristas remote workers cyclists balcony gardeners long-haul travellers beginner runners and that in an the
    """.split(separator: " ").map(String.init)

func syntheticTexts(count: Int, words: Int, seed: UInt64) -> [String] {
    var state = seed
    func next() -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: state >> 33)
    }
    return (0..<count).map { index in
        var parts: [String] = []
        parts.reserveCapacity(words + 1)
        for _ in 0..<words { parts.append(vocabulary[next() % vocabulary.count]) }
        parts.append("#\(index)")
        return parts.joined(separator: next() % 5 == 0 ? ", " : " ")
    }
}

/// Texts per second of `body` over `texts`, repeated for at least `seconds`.
func throughput(_ texts: [String], seconds: Double, _ body: ([String]) async throws -> Void) async throws -> Double {
    let clock = ContinuousClock()
    let started = clock.now
    var done = 0
    repeat {
        try await body(texts)
        done += texts.count
    } while (clock.now - started).seconds < seconds
    return Double(done) / (clock.now - started).seconds
}

func cosine(_ a: [Float], _ b: [Float]) -> Float {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in VectorMath.dot(pa, pb) } }
}

/// recall@5 (relevant found in the top 5 over min(5, relevant)) and MRR (1 / rank of the first
/// relevant product in the full exact ranking), averaged over the queries of `kind` (`nil`: all).
func quality(_ embedder: any Embedder, products: [(id: Int, text: String)], set: RetrievalSet) async throws -> [String: (recall: Double, mrr: Double, count: Int)] {
    var vectors: [[Float]] = []
    for start in stride(from: 0, to: products.count, by: embedder.maxBatchSize) {
        vectors += try await embedder.embed(products[start..<min(start + embedder.maxBatchSize, products.count)].map(\.text))
    }
    var sums: [String: (recall: Double, mrr: Double, count: Int)] = [:]
    let queryVectors = try await embedder.embed(set.queries.map(\.query))
    for (query, queryVector) in zip(set.queries, queryVectors) {
        let relevant = Set(query.relevant)
        let ranked = zip(products, vectors).map { (id: $0.0.id, score: cosine(queryVector, $0.1)) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
        let top = ranked.prefix(5).filter { relevant.contains($0.id) }.count
        let recall = Double(top) / Double(min(5, relevant.count))
        let firstRank = (ranked.firstIndex { relevant.contains($0.id) } ?? ranked.count) + 1
        for key in [query.kind, "all"] {
            var entry = sums[key] ?? (0, 0, 0)
            entry.recall += recall
            entry.mrr += 1 / Double(firstRank)
            entry.count += 1
            sums[key] = entry
        }
    }
    return sums.mapValues { ($0.recall / Double($0.count), $0.mrr / Double($0.count), $0.count) }
}

func loadProducts(source: String, logger: Logger) async throws -> [(id: Int, text: String)] {
    let database = "tidemark_embedding_bench"
    let (url, _) = try await BenchmarkSupport.recreateDatabase(database, source: source, logger: logger)
    let connection = try await PostgresConnection.connect(url, logger: logger)
    try await connection.simpleQuery(String(contentsOfFile: "Deploy/demo-schema.sql", encoding: .utf8))
    let rows = try await connection.query("SELECT id, name || E'\\n' || description FROM products ORDER BY id").rows
    await connection.close()
    try await BenchmarkSupport.dropDatabase(database, source: source, logger: logger)
    return rows.compactMap { row in
        guard row.count == 2, let id = row[0].flatMap({ Int($0) }), let text = row[1] else { return nil }
        return (id, text)
    }
}

func main() async throws {
    let options = try Options(CommandLine.arguments)
    var logger = Logger(label: "embedding-benchmark")
    logger.logLevel = .warning
    let cores = ProcessInfo.processInfo.activeProcessorCount
    print("Static embedding benchmark (\(cores) cores)")

    var configuration = StaticEmbedder.Configuration()
    configuration.weights = options.modelDirectory + "/l2_supercat_256.safetensors"
    configuration.tokenizer = options.modelDirectory + "/l2_supercat_tokenizer_config.json"
    let rssBefore = currentRSSMegabytes()
    let loadStarted = ContinuousClock.now
    let embedder = try StaticEmbedder(configuration: configuration, logger: logger)
    let loadSeconds = (ContinuousClock.now - loadStarted).seconds
    let rssAfter = currentRSSMegabytes()
    print(String(format: "load: %.0f ms, RSS %.1f MB → %.1f MB (+%.1f MB); model %@, %d dimensions", loadSeconds * 1000, rssBefore, rssAfter, rssAfter - rssBefore, embedder.model, embedder.dimensions))

    let short = syntheticTexts(count: 20_000, words: 20, seed: 1)
    let long = syntheticTexts(count: 100, words: 2_000, seed: 2)
    let shortTokens = Double(short.reduce(0) { $0 + embedder.tokenCount($1) }) / Double(short.count)
    let longTokens = Double(long.reduce(0) { $0 + embedder.tokenCount($1) }) / Double(long.count)
    let builtin = BuiltinEmbedder()
    for (name, texts, tokens) in [("short (~20 words)", short, shortTokens), ("long (~2000 words)", long, longTokens)] {
        let single = try await throughput(texts, seconds: options.seconds) { batch in
            for text in batch { _ = embedder.vector(text) }
        }
        let all = try await throughput(texts, seconds: options.seconds) { batch in
            for start in stride(from: 0, to: batch.count, by: embedder.maxBatchSize) {
                _ = try await embedder.embed(Array(batch[start..<min(start + embedder.maxBatchSize, batch.count)]))
            }
        }
        let hashing = try await throughput(texts, seconds: options.seconds) { batch in
            for text in batch { _ = builtin.vector(text) }
        }
        print(String(format: "static %@, %.0f tokens/text: %.0f texts/s on 1 core, %.0f texts/s on %d cores (%.2f M tokens/s); builtin hashing: %.0f texts/s on 1 core",
            name, tokens, single, all, cores, all * tokens / 1e6, hashing))
    }

    var text20k = syntheticTexts(count: 1, words: 4_000, seed: 3)[0]
    text20k = String(text20k.prefix(20_000))
    var timings: [Double] = []
    var count = 0
    for _ in 0..<30 {
        let started = ContinuousClock.now
        count = embedder.tokenizer.encode(text20k).count
        timings.append((ContinuousClock.now - started).seconds)
    }
    timings.sort()
    print(String(format: "tokenizer, one 20 000-character text (one BPE sequence, %d tokens): median %.2f ms, max %.2f ms", count, timings[timings.count / 2] * 1000, timings.last.map { $0 * 1000 } ?? 0))

    let set = try JSONDecoder().decode(RetrievalSet.self, from: Data(contentsOf: URL(fileURLWithPath: options.queries)))
    let products = try await loadProducts(source: options.source, logger: logger)
    print("retrieval: \(set.queries.count) labelled queries over \(products.count) demo products (exact cosine, top 5)")
    let hashingQuality = try await quality(builtin, products: products, set: set)
    let staticQuality = try await quality(embedder, products: products, set: set)
    for kind in ["lexical", "paraphrase", "all"] {
        guard let hashing = hashingQuality[kind], let model = staticQuality[kind] else { continue }
        print(String(format: "  %-10@ (%2d queries)  builtin %@: recall@5 %.3f, MRR %.3f   |   static: recall@5 %.3f, MRR %.3f",
            kind, hashing.count, builtin.model, hashing.recall, hashing.mrr, model.recall, model.mrr))
    }
    print(String(format: "peak RSS %.0f MB", BenchmarkSupport.peakRSSMegabytes()))
}

try await main()
