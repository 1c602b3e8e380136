import ArgumentParser
import Capture
import Foundation
import Postgres

/// `tidemark discover`: what can be synced, and why not for the rest.
struct DiscoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discover",
        abstract: "List the tables of the source database: keys, columns, replica identity, size, and whether each can be synced."
    )

    @OptionGroup var options: SourceOptions

    @Option(name: .long, help: "Only this schema (repeatable).")
    var schema: [String] = []

    @Option(name: .long, help: "Report membership in this publication.")
    var publication: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        let logger = try options.makeLogger()
        let url = try options.sourceURL()
        let tables: [TableDescription]
        do {
            let connection = try await PostgresConnection.connect(url, logger: logger)
            let discovery = CatalogDiscovery(configuration: .init(schemas: schema, publication: publication), logger: logger)
            tables = try await discovery.discover(on: connection)
            await connection.close()
        } catch {
            fail("\(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let data = try encoder.encode(tables)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(DiscoverCommand.render(tables), terminator: "")
        }
    }

    /// A plain-text table followed by the reasons for each table that cannot be synced.
    static func render(_ tables: [TableDescription]) -> String {
        guard !tables.isEmpty else { return "no tables found\n" }
        let header = ["TABLE", "EST. ROWS", "KEY", "IDENTITY", "TEXT COLUMNS", "PUBLISHED", "SYNC"]
        let rows = tables.map { table -> [String] in
            [
                table.table.description, String(table.estimatedRows),
                table.keyColumns.isEmpty ? "-" : table.keyColumns.joined(separator: ", "),
                table.replicaIdentity,
                table.columns.filter(\.isTextLike).map(\.name).joined(separator: ", "),
                table.isPublished ? "yes" : "no",
                table.isSyncable ? "yes" : "NO (see below)",
            ]
        }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], min(cell.count, 40)) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let clipped = cell.count > 40 ? String(cell.prefix(39)) + "…" : cell
                return clipped.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        var output = line(header)
        for row in rows { output += line(row) }
        let unsyncable = tables.filter { !$0.isSyncable }
        if !unsyncable.isEmpty {
            output += "\ncannot be synced:\n"
            for table in unsyncable {
                output += "  \(table.table): \(table.unsyncableReason ?? "")\n"
            }
        }
        return output
    }
}
