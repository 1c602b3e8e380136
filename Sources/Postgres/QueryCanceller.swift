import CLibPQ
import Foundation

/// Asks the server to cancel whatever statement a connection is running, from any thread.
///
/// Holds libpq's cancel handle (`PQgetCancel`), which is made for exactly this: `PQcancel` opens a
/// separate connection to the server and never touches the session's own `PGconn`, so it may run
/// while the connection's thread is blocked in a query. A request with no statement running is
/// harmless: the server ignores it.
final class QueryCanceller: @unchecked Sendable {
    // Guarded by `lock`: freed on close while another thread may be sending a cancel request.
    private var handle: OpaquePointer?
    private let lock = NSLock()

    /// Takes the cancel handle of a freshly opened connection.
    func attach(_ connection: OpaquePointer) {
        let fresh = PQgetCancel(connection)
        lock.withLock {
            if let handle { PQfreeCancel(handle) }
            handle = fresh
        }
    }

    /// Forgets the handle (the connection is closing). Later requests do nothing.
    func detach() {
        lock.withLock {
            if let handle { PQfreeCancel(handle) }
            handle = nil
        }
    }

    /// Sends the cancel request. Returns whether the server was reached; it answers nothing, and the
    /// statement, if one runs, fails with SQLSTATE 57014 (`query_canceled`).
    @discardableResult
    func cancel() -> Bool {
        lock.withLock {
            guard let handle else { return false }
            var message = [CChar](repeating: 0, count: 256)
            return PQcancel(handle, &message, Int32(message.count)) == 1
        }
    }

    deinit {
        if let handle { PQfreeCancel(handle) }
    }
}
