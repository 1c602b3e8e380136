import AsyncHTTPClient
import Capture
import Foundation
import Indexing
import Metrics
import NIOCore
import Prometheus
import Server
import ServiceLifecycle
import Sync
import Testing

/// An agent and its API server running in this process on a fresh database with a `products`
/// table, reached over real HTTP on loopback.
struct APIHarness: Sendable {
    let database: TestDatabase
    let agent: Agent
    let server: APIServer
    let registry: PrometheusCollectorRegistry
    let baseURL: String
    let store: any IndexStore

    struct Answer: Sendable {
        var status: Int
        var headers: [String: String]
        var text: String
        /// The body as a JSON object (empty when it is not one).
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]) ?? [:] }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var errorMessage: String { ((json["error"] as? [String: Any])?["message"] as? String) ?? "" }
    }

    /// Sends a request; `body` is sent as is (so tests can send malformed JSON).
    func call(_ method: String, _ path: String, body: String? = nil, token: String? = nil, headers: [String: String] = [:]) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 32 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Answer(status: Int(response.status.code), headers: headers, text: String(buffer: buffer))
    }

    func get(_ path: String, token: String? = nil) async throws -> Answer { try await call("GET", path, token: token) }
    func post(_ path: String, _ body: String? = nil, token: String? = nil) async throws -> Answer { try await call("POST", path, body: body, token: token) }

    /// Waits until `/readyz` answers 200.
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            let answer = try await get("/readyz")
            if answer.status == 200 { return }
            last = answer.text
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the agent did not become ready: \(last)")
        throw CancellationError()
    }

    /// Waits until the job ends; returns its final JSON.
    func waitForJob(_ id: String, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let job = try await get("/api/ai/bulk-sync/status/\(id)").json
            if let status = job["status"] as? String, !["queued", "running", "paused"].contains(status) { return job }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("job \(id) did not finish")
        throw CancellationError()
    }
}

/// Runs an agent and its API on a new database with `rows` products until `body` returns.
func withAPI(
    on server: LiveServer, rows: Int = 50, host: String = "127.0.0.1", token: String? = nil,
    configure: (inout AgentConfiguration) -> Void = { _ in }, setUp: (TestDatabase) async throws -> Void = { _ in },
    _ body: (APIHarness) async throws -> Void
) async throws {
    try await withDatabase(on: server) { db in
        try await db.exec("""
            CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text, price numeric(10,2), category_id int);
            INSERT INTO products SELECT g, 'product ' || g, CASE WHEN g % 2 = 0 THEN 'quiet desk lamp number ' || g ELSE 'sturdy oak shelf ' || g END,
                   g * 1.5, g % 5 FROM generate_series(1, \(rows)) g;
            CREATE TABLE audit_log (at timestamptz, message text);
            """)
        try await setUp(db)
        var configuration = db.agentConfiguration(entities: [
            .init(name: "product", table: TableName(schema: "public", name: "products"), content: "{{name}}\n{{description}}", metadata: ["price", "category_id"])
        ])
        configuration.api.host = host
        configuration.api.port = 0
        configuration.api.token = token
        configure(&configuration)
        let registry = PrometheusCollectorRegistry()
        var metricsConfiguration = MetricsRecorder.Configuration()
        metricsConfiguration.factory = MetricsRecorder.prometheusFactory(registry: registry)
        let metrics = MetricsRecorder(configuration: metricsConfiguration)
        let agent = Agent(configuration: configuration, logger: testLogger, observer: { metrics.observe($0) })
        var serverConfiguration = APIServer.Configuration(api: configuration.api)
        serverConfiguration.registry = registry
        serverConfiguration.sampleInterval = .milliseconds(200)
        serverConfiguration.eventInterval = .milliseconds(200)
        let server = APIServer(configuration: serverConfiguration, agent: agent, metrics: metrics, logger: testLogger)
        let group = ServiceGroup(configuration: .bounded(
            services: [.init(service: server), .init(service: agent, successTerminationBehavior: .gracefullyShutdownGroup)]))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let port = try #require(await server.waitUntilBound(), "the API server did not start")
                let store = try await Agent.openStore(configuration, logger: testLogger)
                let harness = APIHarness(
                    database: db, agent: agent, server: server, registry: registry, baseURL: "http://\(host):\(port)", store: store)
                try await waitForLoaded(store, ["product"])
                try await body(harness)
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
