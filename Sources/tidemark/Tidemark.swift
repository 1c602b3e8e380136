import ArgumentParser

/// The `tidemark` command line: wiring only; the work lives in the libraries.
@main
struct Tidemark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tidemark",
        abstract: "Keeps an AI search index equal to the rows of a PostgreSQL database, from its WAL.",
        version: "0.1.0",
        subcommands: [InitCommand.self, RunCommand.self, StatusCommand.self, BackfillCommand.self, EstimateCommand.self, JobsCommand.self, JobCommand.self, SearchCommand.self, ExportCommand.self, DeadLettersCommand.self, DiscoverCommand.self, TailCommand.self, ValidateCommand.self, RepairCommand.self, ValidationsCommand.self]
    )
}
