import Embedding
import Foundation
import Hummingbird
import Logging
import Synchronization

/// A local OpenAI-compatible embeddings provider for tests and benchmarks: `POST /v1/embeddings` on
/// 127.0.0.1 at an ephemeral port, with faults the test schedules (latency, 429 with `Retry-After`,
/// 5xx, 503 periods, connection refused, poisoned inputs, token limits, a required key) and a log
/// of every request (arrival and answer times, inputs, tokens, status, requests in flight).
///
/// Vectors are deterministic: seeded by a hash of the model and the text, normalised, of the
/// requested `dimensions` (``vector(for:model:dimensions:)``), so a text gets the same vector in
/// any request.
///
/// Lifetime: ``start(_:)`` listens and returns; ``stop()`` stops listening (clients then get
/// "connection refused") and ``restart()`` listens again on the same port. Call ``stop()`` at the
/// end of a test. The server runs in one task of its own (the only way for `start` to return while
/// it serves), which ``stop()`` cancels and awaits.
public final class TestEmbeddingServer: Sendable {
    /// One request as the server saw it.
    public struct Record: Sendable {
        /// Arrival order, from 0.
        public var sequence: Int
        public var arrivedAt: ContinuousClock.Instant
        /// When the answer was ready (nil while it is pending).
        public var answeredAt: ContinuousClock.Instant?
        public var inputs: Int
        /// Estimated tokens of all inputs (``Embedding/TokenEstimate``).
        public var tokens: Int
        /// HTTP status answered (0 while pending).
        public var status: Int
        public var model: String?
        public var dimensions: Int?
        /// Requests in flight when this one arrived, itself included.
        public var inFlight: Int
    }

    struct Faults: Sendable {
        var rateLimitCount = 0
        var rateLimitUntil: ContinuousClock.Instant?
        var rateLimitHeaders: [(String, String)] = []
        var failCount = 0
        var failStatus = 500
        var failBody: String?
        var unavailableUntil: ContinuousClock.Instant?
        var scripted: [(status: Int, body: String, contentType: String)] = []
    }

    struct State: Sendable {
        var configuration: Configuration
        var faults = Faults()
        var log: [Record] = []
        var nextSequence = 0
        var inFlight = 0
        var maxInFlight = 0
    }

    let state: Mutex<State>
    private let running = Mutex<Task<Void, Never>?>(nil)
    private let boundPort = Mutex<Int>(0)

    /// The port the server listens on (kept across ``stop()`` and ``restart()``).
    public var port: Int { boundPort.withLock { $0 } }

    /// The base URL to configure an embedder with: `http://127.0.0.1:PORT/v1`.
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    private init(configuration: Configuration) {
        state = Mutex(State(configuration: configuration))
    }

    /// Starts a server on 127.0.0.1 at an ephemeral port.
    public static func start(_ configuration: Configuration = Configuration()) async throws -> TestEmbeddingServer {
        let server = TestEmbeddingServer(configuration: configuration)
        try await server.listen(port: 0)
        return server
    }

    /// Stops listening: connections close, new ones are refused. Requests being answered are cut.
    public func stop() async {
        let task = running.withLock { task in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
    }

    /// Listens again on the same port (after ``stop()``).
    public func restart() async throws {
        await stop()
        try await listen(port: port)
    }

    /// Changes how the server answers from now on.
    public func configure(_ change: (inout Configuration) -> Void) {
        state.withLock { change(&$0.configuration) }
    }

    /// The next `count` requests answer 429 with these headers (`Retry-After` when `retryAfter` is
    /// given, plus `headers`, e.g. `retry-after-ms`).
    public func rateLimitNext(_ count: Int, retryAfter: String? = nil, headers: [String: String] = [:]) {
        state.withLock {
            $0.faults.rateLimitCount = count
            $0.faults.rateLimitHeaders = Self.headers(retryAfter: retryAfter, headers)
        }
    }

    /// Every request for `duration` answers 429 with these headers.
    public func rateLimit(for duration: Duration, retryAfter: String? = nil, headers: [String: String] = [:]) {
        state.withLock {
            $0.faults.rateLimitUntil = .now + duration
            $0.faults.rateLimitHeaders = Self.headers(retryAfter: retryAfter, headers)
        }
    }

    /// The next `count` requests answer `status` (default 500) with an error body (or `body`).
    public func failNext(_ count: Int, status: Int = 500, body: String? = nil) {
        state.withLock {
            $0.faults.failCount = count
            $0.faults.failStatus = status
            $0.faults.failBody = body
        }
    }

    /// Every request for `duration` answers 503 (the server is up but the model is not).
    public func unavailable(for duration: Duration) {
        state.withLock { $0.faults.unavailableUntil = .now + duration }
    }

    /// The next requests answer these bodies as they are, one each (malformed answers).
    public func answerNext(_ bodies: [(status: Int, body: String, contentType: String)]) {
        state.withLock { $0.faults.scripted.append(contentsOf: bodies) }
    }

    /// Every request so far, in arrival order.
    public var requests: [Record] { state.withLock { $0.log } }

    /// The most requests in flight at once so far.
    public var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    /// Forgets the request log and the in-flight maximum.
    public func resetLog() {
        state.withLock {
            $0.log.removeAll()
            $0.maxInFlight = $0.inFlight
        }
    }

    /// The vector this server answers for `text` and `model`: deterministic, unit length.
    public static func vector(for text: String, model: String, dimensions: Int) -> [Float] {
        var seed: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in model.utf8 + [0] + text.utf8 {
            seed ^= UInt64(byte)
            seed &*= 0x0000_0100_0000_01B3
        }
        var vector = [Float](repeating: 0, count: dimensions)
        var norm: Float = 0
        for index in 0..<dimensions {
            // SplitMix64
            seed &+= 0x9E37_79B9_7F4A_7C15
            var mixed = seed
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            mixed ^= mixed >> 31
            let value = Float(Double(mixed >> 11) / Double(1 << 53)) * 2 - 1
            vector[index] = value
            norm += value * value
        }
        let scale = norm > 0 ? 1 / norm.squareRoot() : 0
        return vector.map { $0 * scale }
    }

    private static func headers(retryAfter: String?, _ headers: [String: String]) -> [(String, String)] {
        var result = headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let retryAfter { result.append(("retry-after", retryAfter)) }
        return result
    }

    private func listen(port: Int) async throws {
        let router = Router()
        router.post("v1/embeddings") { request, _ in
            var request = request
            return await self.answer(&request)
        }
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let failure = Mutex<String?>(nil)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "test-embedding-server"),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "test-embedding-server", factory: { _ in SwiftLogNoOpLogHandler() }))
        let task = Task {
            do {
                try await app.run()
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            portContinuation.finish()
        }
        running.withLock { $0 = task }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            await stop()
            throw TestEmbeddingServerError("the test embedding server could not listen on 127.0.0.1:\(port): \(failure.withLock { $0 } ?? "unknown error")")
        }
        boundPort.withLock { $0 = bound }
    }
}

/// The test server could not start.
public struct TestEmbeddingServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
