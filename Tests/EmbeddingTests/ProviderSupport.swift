import Embedding
import Foundation
import Logging
import Synchronization
import TestEmbeddingServer

/// Keeps every log line (message, metadata, error), to check what the embedder wrote.
final class LogCapture: Sendable {
    let storage = Mutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }
    var logger: Logger { Logger(label: "tidemark.embedding.test") { _ in Forwarder(capture: self) } }

    struct Forwarder: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.storage.withLock { $0.append("\(event.level) \(event.message) \(all) \(event.error.map { "\($0)" } ?? "")") }
        }
    }
}

/// A quiet logger for tests that do not look at the log.
let quietLogger = Logger(label: "tidemark.embedding.test") { _ in SwiftLogNoOpLogHandler() }

/// Runs `body` against a fresh local provider and an embedder pointed at it; shuts both down after.
/// Retries are quick (50 ms doubling up to 500 ms) unless `configure` says otherwise.
func withProvider(
    _ server: TestEmbeddingServer.Configuration = .init(),
    logger: Logger = quietLogger,
    configure: (inout OpenAIEmbedder.Configuration) -> Void = { _ in },
    _ body: (TestEmbeddingServer, OpenAIEmbedder) async throws -> Void
) async throws {
    let provider = try await TestEmbeddingServer.start(server)
    var configuration = OpenAIEmbedder.Configuration(url: provider.baseURL, model: "test-model")
    configuration.initialBackoff = .milliseconds(50)
    configuration.maxBackoff = .milliseconds(500)
    configuration.timeout = .seconds(10)
    configure(&configuration)
    let embedder: OpenAIEmbedder
    do {
        embedder = try OpenAIEmbedder(configuration: configuration, logger: logger)
    } catch {
        await provider.stop()
        throw error
    }
    do {
        try await body(provider, embedder)
    } catch {
        await embedder.shutdown()
        await provider.stop()
        throw error
    }
    await embedder.shutdown()
    await provider.stop()
}

/// Texts of about `tokens` estimated tokens each (four characters per token), all different.
func texts(_ count: Int, tokens: Int = 3, prefix: String = "text") -> [String] {
    (0..<count).map { index in
        let head = "\(prefix)-\(index)-"
        let length = max(head.count, tokens * 4)
        return head + String(repeating: "x", count: length - head.count)
    }
}

/// The vectors the test server answers for `texts` (model `test-model`).
func expectedVectors(_ texts: [String], dimensions: Int = 64) -> [[Float]] {
    texts.map { TestEmbeddingServer.vector(for: $0, model: "test-model", dimensions: dimensions) }
}

extension Duration {
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The largest sum of `weight` over arrivals inside any interval of `length` (intervals starting
/// at an arrival).
func busiestWindow(_ records: [TestEmbeddingServer.Record], length: Duration, weight: (TestEmbeddingServer.Record) -> Int = { _ in 1 }) -> Int {
    let sorted = records.sorted { $0.arrivedAt < $1.arrivedAt }
    var best = 0
    for (index, start) in sorted.enumerated() {
        var total = 0
        for record in sorted[index...] where record.arrivedAt < start.arrivedAt + length { total += weight(record) }
        best = max(best, total)
    }
    return best
}
