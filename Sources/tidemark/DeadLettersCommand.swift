import ArgumentParser
import Capture
import Foundation
import Indexing
import Postgres
import Sync

/// `tidemark dead-letters`: rows that could not be indexed, and retrying them.
struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List rows that could not be rendered, embedded or stored; --retry reprocesses them from the source."
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Only this entity.")
    var entity: String?

    @Flag(name: .long, help: "Read the rows again from the source and index them.")
    var retry = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            let store = try Agent.openStore(configuration, logger: logger)
            let letters = try await store.deadLetters(entity: entity)
            if !retry {
                if letters.isEmpty { print("no dead letters") }
                for letter in letters {
                    print("\(letter.entity) \(letter.id) [\(letter.stage), \(letter.attempts)×, lsn \(letter.lsn)]: \(letter.error)")
                }
                return
            }
            let connection = try await PostgresConnection.connect(configuration.source.url, logger: logger)
            let entities = try await Agent.resolveEntities(configuration, on: connection, logger: logger)
            await connection.close()
            let rowSource = RowSource(url: configuration.source.url, logger: logger)
            let retrier = DeadLetterRetry(entities: entities, store: store, embedder: Agent.makeEmbedder(configuration), rowSource: rowSource, logger: logger)
            let outcome = try await retrier.retry(letters)
            await rowSource.close()
            print("retried \(letters.count): \(outcome.indexed) indexed, \(outcome.removed) gone from the source, \(outcome.stillFailing) still failing")
        } catch {
            fail("\(error)")
        }
    }
}
