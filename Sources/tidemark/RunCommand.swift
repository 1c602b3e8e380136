import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import Server
import ServiceLifecycle
import Sync

/// `tidemark run`: the long-running agent.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: initial load, then stream every committed change into the index until SIGTERM or SIGINT."
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        // Take over SIGTERM and SIGINT before anything else happens, so a signal sent at any moment
        // after start-up drains and checkpoints instead of killing the process.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let signals = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        let configuration = options.load()
        let logger = options.makeLogger()
        // The process's one metrics bootstrap: every library's swift-metrics go to this registry,
        // which /metrics renders.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(MetricsRecorder.prometheusFactory(registry: registry))
        let metrics = MetricsRecorder()
        let api = configuration.api
        var observer: (@Sendable (AppliedBatchReport) -> Void)?
        if api.enabled { observer = { @Sendable report in metrics.observe(report) } }
        let agent = Agent(configuration: configuration, logger: logger, observer: observer)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if api.enabled {
            var serverConfiguration = APIServer.Configuration(api: api)
            serverConfiguration.registry = registry
            // First in the group, so it shuts down last: the API answers while the agent drains.
            services.append(.init(service: APIServer(configuration: serverConfiguration, agent: agent, metrics: metrics, logger: logger)))
        }
        services.append(.init(service: agent, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        for source in signals {
            source.setEventHandler {
                logger.notice("signal received: draining and checkpointing")
                Task { await group.triggerGracefulShutdown() }
            }
            source.resume()
        }
        defer { signals.forEach { $0.cancel() } }
        do {
            try await group.run()
        } catch {
            fail("\(error)")
        }
    }
}
