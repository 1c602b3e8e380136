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

/// A benchmark that cannot run as asked.
public struct BenchmarkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension BenchmarkSupport {
    /// `--name value` pairs from the command line; an option not in `known` is an error.
    public static func options(_ arguments: [String], known: Set<String>) throws -> [String: String] {
        var values: [String: String] = [:]
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            guard known.contains(argument) else {
                throw BenchmarkError("unknown option \(argument); known: \(known.sorted().joined(separator: " "))")
            }
            guard let value = iterator.next() else { throw BenchmarkError("missing value for \(argument)") }
            values[argument] = value
        }
        return values
    }

    /// Runs `pg_recvlogical` (pgoutput, protocol 2, to /dev/null) on `slot` until `end`; returns seconds.
    public static func runRecvLogical(bin: String, url: String, slot: String, publication: String, end: LSN) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin + "/pg_recvlogical")
        process.arguments = [
            "-d", url, "--slot", slot, "--start", "-o", "proto_version=2", "-o", "publication_names=\(publication)",
            "-E", end.description, "-f", "/dev/null", "-s", "1", "--no-loop",
        ]
        let started = ContinuousClock.now
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchmarkError("pg_recvlogical exited with \(process.terminationStatus)") }
        return (ContinuousClock.now - started).seconds
    }
}
