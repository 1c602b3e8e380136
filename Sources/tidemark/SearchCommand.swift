import Embedding
import ArgumentParser
import Foundation
import Indexing
import Sync

/// `tidemark search`: the best matches for a text, with scores.
struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search the index of an entity."
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "What to look for.")
    var text: String

    @Option(name: .long, help: "Entity to search.")
    var entity: String

    @Option(name: .short, help: "How many results.")
    var k: Int = 5

    @Option(name: .long, parsing: .upToNextOption, help: "Metadata filters as key=value (all must match).")
    var filter: [String] = []

    @Flag(name: .long, help: "Print JSON lines.")
    var json = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        options.requireEntity(entity, in: configuration)
        guard k > 0 && k <= 1000 else { fail("-k must be between 1 and 1000") }
        var filters: [String: String] = [:]
        for item in filter {
            guard let equals = item.firstIndex(of: "=") else { fail("--filter '\(item)' must be key=value") }
            filters[String(item[..<equals])] = String(item[item.index(after: equals)...])
        }
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            let embedder = try Agent.makeEmbedder(configuration, logger: logger)
            let vector = try await embedder.embed([text])[0]
            let hits = try await store.search(entity: entity, vector: vector, k: k, filter: filters)
            if hits.isEmpty { print("no results") }
            for (rank, hit) in hits.enumerated() {
                if json {
                    let object: [String: Any] = [
                        "id": hit.id, "score": Double(hit.score), "content": hit.content,
                        "metadata": hit.metadata.mapValues { $0 as Any? ?? NSNull() },
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    let content = hit.content.replacingOccurrences(of: "\n", with: " · ")
                    print(String(format: "%2d. %.3f  [%@] ", rank + 1, hit.score, hit.id) + String(content.prefix(160)))
                }
            }
        } catch {
            fail("\(error)")
        }
    }
}
