import ArgumentParser
import Sync

/// `tidemark estimate ENTITY`: what embedding an entity would take, before spending anything.
struct EstimateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Print rows, estimated tokens, provider requests, the time they take at the configured budgets, and the cost of embedding an entity.",
        discussion: """
            Renders a sample of up to 1000 rows with the entity's templates and counts their tokens with the \
            configured embedder's estimate. The time assumes every request takes --latency-ms (the provider's real \
            latency grows with request size and load) and counts no retries. Reads the source; writes nothing.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "Entity to estimate.")
    var entity: String

    @Option(name: .long, parsing: .upToNextOption, help: "Only these document ids (the key's text; composite keys as JSON arrays).")
    var ids: [String] = []

    @Option(name: .long, help: "Time one provider request is assumed to take, in milliseconds.")
    var latencyMs: Int = 500

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        options.requireEntity(entity, in: configuration)
        guard latencyMs > 0 else { fail("--latency-ms must be at least 1") }
        do {
            try await DryRun.report(entity, ids: ids, configuration: configuration, assumedLatency: .milliseconds(latencyMs), logger: logger)
        } catch {
            fail("\(error)")
        }
    }
}
