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
        let configuration = options.load()
        let logger = options.makeLogger()
        let agent = Agent(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: agent, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            fail("\(error)")
        }
    }
}
