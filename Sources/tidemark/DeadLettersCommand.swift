import ArgumentParser
import Capture
import Foundation
import Indexing
import Postgres
import Server
import Sync

/// `tidemark dead-letters`: rows that could not be indexed, and retrying them.
struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List rows that could not be rendered, embedded or stored; --retry has the running agent reprocess them from the source."
    )

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Only this entity.")
    var entity: String?

    @Flag(name: .long, help: "Queue the rows for the running agent to read again from the source and index (an ids job per entity); follows its progress.")
    var retry = false

    @Flag(name: .long, help: "With --retry: queue the jobs and return at once.")
    var noWait = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            let letters = try await store.deadLetters(entity: entity)
            if !retry {
                if letters.isEmpty { print("no dead letters") }
                for letter in letters {
                    print("\(letter.entity) \(letter.id) [\(letter.stage), \(letter.attempts)×, lsn \(letter.lsn)]: \(letter.error)")
                }
                return
            }
            if letters.isEmpty {
                print("no dead letters")
                return
            }
            // The running agent executes the retry in stream order (an `ids` job per entity); through
            // its API when it answers, else recorded in the store for it.
            let client = await options.agentClient(configuration, logger: logger)
            let jobs: [JobRecord]
            if let client {
                jobs = try await client.retryDeadLetters(entity: entity)
            } else {
                jobs = try await DeadLetterRetry.queue(letters, store: store)
            }
            for job in jobs {
                print("queued \(job.id): \(job.ids?.count ?? 0) ids of \(job.entity); the running agent executes it")
            }
            if noWait { return }
            var failed = false
            for job in jobs {
                let final = try await JobProgress.follow(job.id, fetch: { id in
                    if let client { return try await client.job(id) }
                    return try await store.job(id)
                })
                let still = try await store.deadLetters(entity: job.entity).filter { job.ids?.contains($0.id) == true }.count
                print("\(final.id) \(final.status.rawValue): \(final.processed) rows read, \(still) still failing")
                failed = failed || final.status != .completed || still > 0
            }
            if failed { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            fail("\(error)")
        }
    }
}
