import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Sync
import Synchronization

/// The agent's HTTP surface: the JSON API (`/api/…`, paths of `Docs/openapi.yaml`), the admin page
/// (`/`), server-sent events (`/api/events`), Prometheus metrics (`/metrics`) and the probes
/// (`/healthz`, `/readyz`).
///
/// Runs as a `Service` in the agent's `ServiceGroup`: graceful shutdown stops accepting
/// connections, ends event streams and lets requests in flight finish. Guarantees: every answer is
/// JSON (the page and metrics aside); a malformed request is a 4xx with a message, never a crash;
/// access follows ``AccessPolicy``; job actions are ``JobOperator``'s, exactly what the command
/// line does.
public final class APIServer: Service, Sendable {
    public struct Configuration: Sendable {
        /// Address to bind. Default `127.0.0.1`.
        public var host = "127.0.0.1"
        /// Port; 0 picks a free one (see ``APIServer/boundPort``). Default 7601.
        public var port = 7601
        /// The bearer token, if configured (never logged).
        public var token: String?
        /// `/readyz` fails beyond this lag in bytes. Default 1 GiB.
        public var readyMaxLagBytes: Int64 = 1 << 30
        /// `/readyz` fails beyond this lag in time. Default 5 min.
        public var readyMaxLag: Duration = .seconds(300)
        /// How often `/api/events` sends an update. Default 1 s.
        public var eventInterval: Duration = .seconds(1)
        /// How old a status report may be (``StatusReporter``). Default 250 ms.
        public var statusCacheTTL: Duration = .milliseconds(250)
        /// How often the metrics' gauges are sampled. Default 2 s.
        public var sampleInterval: Duration = .seconds(2)
        /// Registry `/metrics` renders; `nil` (default) answers 404 there.
        public var registry: PrometheusCollectorRegistry?

        public init() {}

        /// The settings of the configuration's `api` section.
        public init(api: AgentConfiguration.API) {
            host = api.host
            port = api.port
            token = api.token
            readyMaxLagBytes = api.readyMaxLagBytes
            readyMaxLag = api.readyMaxLag
        }

        /// Anything but loopback: every call needs the token.
        public var isExposed: Bool { !AgentConfiguration.API.isLoopback(host) }
    }

    /// The version reported by `/api/status`.
    public static let version = "0.1.0"

    public let configuration: Configuration
    let agent: Agent
    let metrics: MetricsRecorder?
    let validator: any DriftValidation
    let logger: Logger
    let probe: SourceProbe
    let reporter: StatusReporter
    private let bound = Mutex<Int?>(nil)

    /// - Parameters:
    ///   - agent: the agent whose state is served and whose store jobs go to.
    ///   - metrics: sampled and rendered at `/metrics` (with ``Configuration/registry``).
    ///   - validator: what the drift paths call; by default the running agent's validator.
    public init(
        configuration: Configuration, agent: Agent, metrics: MetricsRecorder? = nil, validator: (any DriftValidation)? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.agent = agent
        self.metrics = metrics
        self.validator = validator ?? AgentDriftValidation(agent: agent)
        self.logger = logger
        self.probe = SourceProbe(url: agent.configuration.source.url, logger: logger)
        self.reporter = StatusReporter(configuration: .init(cacheTTL: configuration.statusCacheTTL), agent: agent, probe: probe, logger: logger)
    }

    /// The port the server listens on, once it does.
    public var boundPort: Int? { bound.withLock { $0 } }

    /// Waits until the server listens; returns its port (`nil` after `timeout`).
    public func waitUntilBound(timeout: Duration = .seconds(30)) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let port = boundPort { return port }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return boundPort
    }

    public func run() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(ErrorMiddleware(logger: logger))
        router.middlewares.add(AccessPolicy(token: configuration.token, exposed: configuration.isExposed))
        addStatusRoutes(to: router)
        addBulkSyncRoutes(to: router)
        addJobRoutes(to: router)
        addSearchRoutes(to: router)
        addDeadLetterRoutes(to: router)
        addEventRoutes(to: router)
        addPageRoutes(to: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tidemark"),
            onServerRunning: { [logger, configuration] channel in
                let port = channel.localAddress?.port
                self.bound.withLock { $0 = port }
                logger.info(
                    "API listening",
                    metadata: [
                        "api.address": "\(configuration.host):\(port.map(String.init) ?? "?")",
                        "api.token": "\(configuration.token == nil ? "none" : "set")",
                        "api.exposed": "\(configuration.isExposed)",
                    ])
            },
            logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.run() }
                group.addTask { await self.sampleMetrics() }
                // The server ends on graceful shutdown; the sampler with it.
                _ = try await group.next()
                group.cancelAll()
            }
        } catch {
            await probe.close()
            throw ServerError(.startup, "the API could not serve on \(configuration.host):\(configuration.port): \(error)", underlying: error)
        }
        await probe.close()
    }

    /// Feeds the metrics' gauges from the status report until cancelled or shut down.
    private func sampleMetrics() async {
        guard let metrics else { return }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if let report = try? await reporter.report() { metrics.sample(report) }
            do {
                try await Task.sleep(for: configuration.sampleInterval)
            } catch {
                return
            }
        }
    }

    /// The running agent's store, embedder and entities, or 503 while it starts.
    func runtime() throws -> Agent.Runtime { try agent.requireRuntime() }

    /// The configured entity named `name`, or 404.
    func entity(_ name: String) throws -> AgentConfiguration.Entity {
        guard let entity = agent.configuration.entities.first(where: { $0.name == name }) else {
            throw ServerError(
                .notFound, "unknown entity '\(name)'; configured: \(agent.configuration.entities.map(\.name).joined(separator: ", "))")
        }
        return entity
    }

    func jobOperator() throws -> JobOperator {
        JobOperator(store: try runtime().store, entities: agent.configuration.entities.map(\.name))
    }
}

extension Agent {
    /// The running agent's store, embedder and entities, or ``ServerError`` 503 while it starts.
    func requireRuntime() throws -> Agent.Runtime {
        guard let runtime else {
            throw ServerError(.unavailable, "the agent is starting (connecting to the source, opening the index); try again in a moment")
        }
        return runtime
    }
}
