import ArgumentParser
import Foundation
import Logging
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
        let agent = Agent(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: agent, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger))
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
