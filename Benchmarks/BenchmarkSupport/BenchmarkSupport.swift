import Foundation
import Logging
import Postgres

/// Helpers shared by the benchmark executables.
public enum BenchmarkSupport {
    /// Peak resident set size of this process (`VmHWM`), in MB.
    public static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }

    /// `url` with its database replaced.
    public static func databaseURL(_ url: String, _ database: String) -> String {
        guard let slash = url.range(of: "/", options: .backwards) else { return url }
        return String(url[..<slash.upperBound]) + database
    }

    /// Drops (with its replication slots) and creates `database`; returns its URL and the server version.
    public static func recreateDatabase(_ database: String, source: String, logger: Logger) async throws -> (url: String, version: String) {
        let admin = try await PostgresConnection.connect(source, logger: logger)
        try await dropDatabase(database, on: admin)
        try await admin.query("CREATE DATABASE \(PostgresConnection.quoteIdentifier(database))")
        let version = try await admin.query("SHOW server_version").rows.first?.first ?? nil
        await admin.close()
        return (databaseURL(source, database), version ?? "?")
    }

    /// Drops `database` and its replication slots.
    public static func dropDatabase(_ database: String, source: String, logger: Logger) async throws {
        let admin = try await PostgresConnection.connect(source, logger: logger)
        try await dropDatabase(database, on: admin)
        await admin.close()
    }

    private static func dropDatabase(_ database: String, on admin: PostgresConnection) async throws {
        _ = try? await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1", [database])
        try await admin.query("DROP DATABASE IF EXISTS \(PostgresConnection.quoteIdentifier(database)) WITH (FORCE)")
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
