import Logging
import Postgres
import Synchronization

/// One ordinary connection to the source for the API's reads (status, discovery), opened on first
/// use and again after a failure. It never holds a transaction open and runs only catalog queries.
final class SourceProbe: Sendable {
    private let url: String
    private let logger: Logger
    private let state = Mutex<PostgresConnection?>(nil)

    init(url: String, logger: Logger) {
        self.url = url
        self.logger = logger
    }

    /// Runs `body` on the connection; a failure closes it, so the next call reconnects.
    func with<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection: PostgresConnection
        if let existing = state.withLock({ $0 }), await existing.isOpen {
            connection = existing
        } else {
            connection = try await PostgresConnection.connect(url, applicationName: "tidemark-api", connectTimeout: 5, logger: logger)
            let replaced = state.withLock { current -> PostgresConnection? in
                defer { current = connection }
                return current
            }
            await replaced?.close()
        }
        do {
            return try await body(connection)
        } catch {
            let dropped = state.withLock { current -> PostgresConnection? in
                guard current === connection else { return nil }
                defer { current = nil }
                return current
            }
            await dropped?.close()
            throw error
        }
    }

    func close() async {
        let connection = state.withLock { current -> PostgresConnection? in
            defer { current = nil }
            return current
        }
        await connection?.close()
    }
}
