import ArgumentParser
import Foundation
import Logging
import Server
import Sync

/// Options of commands that read `tidemark.yml`.
struct ConfigOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Configuration file (YAML). Every key can be overridden by TIDEMARK_… variables.")
    var config: String = "tidemark.yml"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func load() -> AgentConfiguration {
        let path: String? = FileManager.default.fileExists(atPath: config) ? config : nil
        if path == nil && config != "tidemark.yml" {
            fail("configuration file \(config) does not exist")
        }
        do {
            return try ConfigurationLoader().load(path: path)
        } catch {
            fail("\(error.message)")
        }
    }

    func makeLogger() -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            fail("unknown log level '\(logLevel)'; use trace, debug, info, notice, warning, error or critical")
        }
        return bootstrapLogging(level)
    }

    /// A client of the running agent's API when one answers at the configured `api.listen`
    /// (`nil` otherwise, or when the API is disabled): job commands then go through it.
    func agentClient(_ configuration: AgentConfiguration, logger: Logger) async -> AgentClient? {
        guard configuration.api.enabled else { return nil }
        let client = AgentClient(configuration: .init(api: configuration.api), logger: logger)
        return await client.isUp(slot: configuration.source.slot, entities: configuration.entities.map(\.name)) ? client : nil
    }

    /// Stops with a clear message unless `entity` is configured.
    func requireEntity(_ entity: String, in configuration: AgentConfiguration) {
        guard configuration.entities.contains(where: { $0.name == entity }) else {
            fail("unknown entity '\(entity)'; configured: \(configuration.entities.map(\.name).joined(separator: ", "))")
        }
    }
}
