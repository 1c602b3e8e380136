import ArgumentParser
import Foundation
import Indexing
import Sync

/// `tidemark export`: one JSON line per document, for scripting and checking.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write every document of an entity as a JSON line: id, content, content_hash, metadata, model, lsn."
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Entity to export.")
    var entity: String

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        options.requireEntity(entity, in: configuration)
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var after: String?
            while true {
                let page = try await store.export(entity: entity, after: after, limit: 1_000)
                if page.isEmpty { break }
                var output = Data()
                for document in page {
                    output.append(try encoder.encode(document))
                    output.append(0x0A)
                }
                FileHandle.standardOutput.write(output)
                after = page.last?.id
            }
        } catch {
            fail("\(error)")
        }
    }
}
