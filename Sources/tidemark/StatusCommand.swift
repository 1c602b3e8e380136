import ArgumentParser
import Foundation
import Indexing
import Postgres
import Sync

/// `tidemark status`: where the index stands, and what the slot holds back on the source.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the checkpoint, documents per entity, dead letters, and the replication slot's lag on the source."
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            if case .sqlite(let path) = configuration.index { print("index:        \(path) (sqlite)") }
            print("checkpoint:   \(try await store.state("checkpoint") ?? "none (not loaded yet)")")
            let incarnation = try await store.state("slot.incarnation")
            let jobs = try await store.activeJobs()
            for entity in configuration.entities {
                let loadedUnder = try await store.state("loaded.\(entity.name)")
                let loaded = incarnation != nil && loadedUnder == incarnation
                var line = "entity:       \(entity.name) ← \(entity.table): \(try await store.count(entity: entity.name)) documents"
                if let job = jobs.first(where: { $0.entity == entity.name }) {
                    line += " — backfilling: \(JobProgress.summary(job))"
                } else {
                    line += loaded ? " (loaded)" : " (not loaded yet)"
                }
                print(line)
            }
            print("dead letters: \(try await store.deadLetters(entity: nil).count)")
            let connection = try await PostgresConnection.connect(configuration.source.url, logger: logger)
            let slot = try await connection.query(
                """
                SELECT active::text, confirmed_flush_lsn::text, wal_status,
                       pg_size_pretty(pg_current_wal_lsn() - restart_lsn)
                  FROM pg_replication_slots WHERE slot_name = $1
                """, [configuration.source.slot])
            await connection.close()
            if let row = slot.rows.first {
                print("slot:         \(configuration.source.slot) (active: \(row[0] == "true" ? "yes" : "no"), confirmed \(row[1] ?? "-"), WAL \(row[2] ?? "-"), retained \(row[3] ?? "-"))")
            } else {
                print("slot:         \(configuration.source.slot) does not exist (created on the next run)")
            }
        } catch {
            fail("\(error)")
        }
    }
}
