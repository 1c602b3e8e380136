// Throughput of the OpenAI-compatible embedder against the local provider (TestEmbeddingServer) at a
// request budget: embeds N short texts through embedEach in calls of --call-size texts, several calls
// in flight (as the pipeline does), and compares the rate achieved with the rate allowed.
//
//   swift run -c release ProviderBenchmark [--texts 100000] [--call-size 1024] [--calls-in-flight 8]
//       [--rpm 3000] [--inputs 256] [--concurrency 16] [--latency-ms 100] [--dimensions 64]
import BenchmarkSupport
import Embedding
import Foundation
import Logging
import TestEmbeddingServer

struct Options {
    var texts = 100_000
    var callSize = 1_024
    var callsInFlight = 8
    var rpm = 3_000
    var inputs = 256
    var concurrency = 16
    var latencyMs = 100
    var dimensions = 64

    init(_ arguments: [String]) throws {
        let known = ["--texts", "--call-size", "--calls-in-flight", "--rpm", "--inputs", "--concurrency", "--latency-ms", "--dimensions"]
        let values = try BenchmarkSupport.options(arguments, known: Set(known))
        func number(_ name: String, _ value: Int) throws -> Int {
            guard let text = values[name] else { return value }
            guard let parsed = Int(text), parsed > 0 else { throw BenchmarkError("\(name) needs a positive number, not \(text)") }
            return parsed
        }
        texts = try number("--texts", texts)
        callSize = try number("--call-size", callSize)
        callsInFlight = try number("--calls-in-flight", callsInFlight)
        rpm = try number("--rpm", rpm)
        inputs = try number("--inputs", inputs)
        concurrency = try number("--concurrency", concurrency)
        latencyMs = try number("--latency-ms", latencyMs)
        dimensions = try number("--dimensions", dimensions)
    }
}

func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
}

func main() async throws {
    let options = try Options(CommandLine.arguments)
    let logger = Logger(label: "provider-benchmark") { _ in SwiftLogNoOpLogHandler() }
    var serverConfiguration = TestEmbeddingServer.Configuration()
    serverConfiguration.latency = .milliseconds(options.latencyMs)
    serverConfiguration.dimensions = options.dimensions
    let server = try await TestEmbeddingServer.start(serverConfiguration)

    var configuration = OpenAIEmbedder.Configuration(url: server.baseURL, model: "bench-model")
    configuration.requestsPerMinute = options.rpm
    configuration.maxInputs = options.inputs
    configuration.concurrency = options.concurrency
    let embedder = try OpenAIEmbedder(configuration: configuration, logger: logger)

    // Short texts, all different (a product title or a sentence).
    let texts = (0..<options.texts).map { "item \($0): a short product title with a few words" }
    let calls = stride(from: 0, to: texts.count, by: options.callSize).map { Array(texts[$0..<min($0 + options.callSize, texts.count)]) }
    print("provider: local TestEmbeddingServer, \(options.latencyMs) ms a request, \(options.dimensions) dimensions")
    print("embedder: \(options.rpm) requests/min, \(options.inputs) inputs a request, concurrency \(options.concurrency)")
    print("workload: \(options.texts) texts in \(calls.count) embedEach calls of \(options.callSize), \(options.callsInFlight) calls in flight")

    let started = ContinuousClock.now
    var callLatencies: [Double] = []
    var failed = 0
    try await withThrowingTaskGroup(of: (Double, Int).self) { group in
        var next = 0
        func launch() {
            guard next < calls.count else { return }
            let call = calls[next]
            next += 1
            group.addTask {
                let begun = ContinuousClock.now
                let outcomes = try await embedder.embedEach(call)
                let failures = outcomes.filter { if case .failure = $0 { true } else { false } }.count
                return ((ContinuousClock.now - begun).seconds, failures)
            }
        }
        for _ in 0..<options.callsInFlight { launch() }
        for try await (latency, failures) in group {
            callLatencies.append(latency)
            failed += failures
            launch()
        }
    }
    let elapsed = (ContinuousClock.now - started).seconds
    let requests = server.requests.sorted { $0.arrivedAt < $1.arrivedAt }
    await embedder.shutdown()
    await server.stop()

    let allowed = Double(options.rpm) / 60
    let windowLimit = (options.rpm + 59) / 60
    let span = (requests.last.map { $0.arrivedAt - (requests.first?.arrivedAt ?? $0.arrivedAt) } ?? .zero).seconds
    // After the first window's burst, requests come at the budget's rate: that is the rate achieved.
    let steady = span > 0 ? Double(max(0, requests.count - windowLimit)) / span : 0
    var busiest = 0
    for (index, start) in requests.enumerated() {
        busiest = max(busiest, requests[index...].prefix { $0.arrivedAt < start.arrivedAt + .seconds(1) }.count)
    }
    let requestLatencies = requests.compactMap { record in record.answeredAt.map { ($0 - record.arrivedAt).seconds * 1_000 } }.sorted()
    let sortedCalls = callLatencies.map { $0 * 1_000 }.sorted()
    let statistics = embedder.statistics

    print("")
    print(String(format: "elapsed %.2f s: %d requests, %d inputs embedded, %d failed, %d retries",
        elapsed, statistics.requests, statistics.inputs, failed, statistics.retries))
    print(String(format: "  requests/s overall      %7.1f   = %.1f%% of the allowed %.1f", Double(requests.count) / elapsed, Double(requests.count) / elapsed / allowed * 100, allowed))
    // Arrival span after the first window's burst; the last window is partial, so this understates.
    print(String(format: "  requests/s after burst  %7.1f   (first window's %d excluded)", steady, windowLimit))
    print(String(format: "  inputs/s overall        %7.0f   (allowed %.0f)", Double(statistics.inputs) / elapsed, allowed * Double(options.inputs)))
    print("  busiest 1 s at the server: \(busiest) requests (budget \(windowLimit))")
    print(String(format: "  request latency at the server  p50 %.1f ms   p99 %.1f ms", percentile(requestLatencies, 0.5), percentile(requestLatencies, 0.99)))
    print(String(format: "  embedEach call latency        p50 %.1f ms   p99 %.1f ms", percentile(sortedCalls, 0.5), percentile(sortedCalls, 0.99)))
    print(String(format: "peak RSS: %.1f MB", BenchmarkSupport.peakRSSMegabytes()))
}

try await main()
