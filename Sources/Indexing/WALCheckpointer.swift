import Foundation
import GRDB
import Logging

/// Copies the SQLite write-ahead log back into the database file on a connection and thread of its
/// own, so that the pipeline's commits never wait for it.
///
/// By default SQLite checkpoints inside the commit that takes the log past 1 000 pages: that commit
/// copies ~4 MB and syncs the file before it returns, and the next batch waits behind it. Moved here
/// (a `PASSIVE` checkpoint every ``interval``, which waits for no reader or writer), streaming went
/// from 25–28k to 31–33k changes/s and the commit → searchable p99 from 5.6–6.4 ms to 2.4–3.0 ms
/// (`PipelineBenchmark`, alternated; `Docs/pipeline.md`). The store's writer keeps an automatic
/// checkpoint at ``backstopPages`` in case this thread falls behind or fails.
final class WALCheckpointer: @unchecked Sendable {
    /// How often the log is copied back.
    static let interval: TimeInterval = 0.1
    /// The writer's own automatic checkpoint (16 MB), far above what the log reaches while this runs.
    static let backstopPages = 4_096

    private let connection: DatabaseQueue
    private let logger: Logger
    private let condition = NSCondition()
    private var stopped = false
    private var finished = false
    private var failing = false

    init(path: String, configuration: GRDB.Configuration, logger: Logger) throws {
        var configuration = configuration
        configuration.label = "tidemark.index.checkpoint"
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "tidemark.index.checkpoint"
        thread.start()
    }

    /// Ends the thread and closes its connection before returning, so that the store's own
    /// connections close last: the last one to close copies the log back and deletes the `-wal`
    /// and `-shm` files. (Closed later, on its own thread, this connection would delete them by path
    /// after the store is gone — a backup restored there in the meantime included.)
    func stop() {
        condition.withLock {
            stopped = true
            condition.broadcast()
            while !finished { condition.wait() }
        }
        try? connection.close()
    }

    private func run() {
        while true {
            let stop = condition.withLock { () -> Bool in
                if !stopped { _ = condition.wait(until: Date(timeIntervalSinceNow: Self.interval)) }
                if stopped {
                    finished = true
                    condition.broadcast()
                }
                return stopped
            }
            if stop { return }
            checkpoint()
        }
    }

    /// Whether a checkpoint failed only because another connection holds the checkpoint (another
    /// process's store on the same file, or the writer's backstop).
    static func isContention(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
    }

    private func checkpoint() {
        do {
            try connection.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
            if failing {
                failing = false
                logger.notice("index checkpoints work again")
            }
        } catch where Self.isContention(error) {
            // Another connection is checkpointing: it copies the pages.
        } catch {
            // A checkpoint that cannot run now loses nothing: the log keeps the pages, the next
            // attempt (or the writer's backstop) copies them.
            if !failing {
                failing = true
                logger.warning("index checkpoint failed; retrying every 100 ms", metadata: ["error": "\(error)"])
            }
        }
    }
}
