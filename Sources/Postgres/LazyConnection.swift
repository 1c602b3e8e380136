import Logging
import Synchronization

/// A connection opened on first use and reopened after it broke.
///
/// ``get()`` returns the open connection, or opens a new one when there is none or libpq reports
/// the old one unhealthy; a caller that sees a connection error simply calls ``get()`` again (after
/// its own backoff). Two tasks calling ``get()`` at once while the connection is down may each
/// open one; the last one opened is kept.
public final class LazyConnection: Sendable {
    private let url: String
    private let logger: Logger
    private let applicationName: String
    private let state = Mutex<PostgresConnection?>(nil)

    public init(url: String, applicationName: String = "tidemark", logger: Logger) {
        self.url = url
        self.applicationName = applicationName
        self.logger = logger
    }

    public func get() async throws -> PostgresConnection {
        if let existing = state.withLock({ $0 }), await existing.isOpen { return existing }
        let connection = try await PostgresConnection.connect(url, applicationName: applicationName, logger: logger)
        let replaced = state.withLock { current -> PostgresConnection? in
            defer { current = connection }
            return current
        }
        await replaced?.close()
        return connection
    }

    public func close() async {
        let connection = state.withLock { current -> PostgresConnection? in
            defer { current = nil }
            return current
        }
        await connection?.close()
    }
}
