import ArgumentParser
import Capture
import Foundation
import Postgres
import Sync

/// `tidemark init`: inspects the source and writes a commented starter configuration.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Inspect the source database and write a starter tidemark.yml: one entity per syncable table, the rest explained.",
        discussion: "Checks wal_level, the role's REPLICATION attribute, free slots and WAL senders, and the privilege to own the publication first, and says what to change."
    )

    @OptionGroup var options: SourceOptions

    @Option(name: .shortAndLong, help: "Where to write the configuration ('-' for standard output).")
    var output: String = "tidemark.yml"

    @Option(name: .long, help: "Only this schema (repeatable).")
    var schema: [String] = []

    @Option(name: .long, help: "Index file to configure.")
    var index: String = "tidemark.db"

    @Flag(name: .long, help: "Replace an existing file.")
    var force = false

    func run() async throws {
        let logger = try options.makeLogger()
        let url = try options.sourceURL()
        if output != "-" && FileManager.default.fileExists(atPath: output) && !force {
            fail("\(output) exists; pass --force to replace it, or --output another path")
        }
        let tables: [TableDescription]
        let findings: [SourceReadiness.Finding]
        do {
            let connection = try await PostgresConnection.connect(url, logger: logger)
            findings = try await SourceReadiness(logger: logger).check(on: connection)
            tables = try await CatalogDiscovery(configuration: .init(schemas: schema), logger: logger).discover(on: connection)
            await connection.close()
        } catch {
            fail("\(error)")
        }
        var starter = StarterConfiguration.Configuration(sourceURL: url)
        starter.indexPath = index
        let text = StarterConfiguration(configuration: starter).render(tables: tables, findings: findings)
        for finding in findings where finding.severity != .ok {
            FileHandle.standardError.write(Data("\(finding.severity == .blocking ? "must fix" : "warning"): \(finding.message)\n".utf8))
        }
        if output == "-" {
            print(text, terminator: "")
            return
        }
        do {
            try text.write(toFile: output, atomically: true, encoding: .utf8)
        } catch {
            fail("cannot write \(output): \(error.localizedDescription)")
        }
        let syncable = tables.filter(\.isSyncable).count
        print("wrote \(output): \(syncable) entities from \(tables.count) tables\(tables.count > syncable ? " (the others are listed in comments, with the fix)" : "")")
        if findings.contains(where: { $0.severity == .blocking }) {
            print("the source is not ready yet: fix what is marked 'must fix' above, then run: tidemark run --config \(output)")
        } else {
            print("next: review the templates, then run: tidemark run --config \(output)")
        }
    }
}
