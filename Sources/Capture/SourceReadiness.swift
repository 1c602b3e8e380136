import Logging
import Postgres

/// Checks whether a source database is ready for logical replication by the connecting role, and
/// says what to change where it is not: `wal_level`, the role's `REPLICATION` attribute, free
/// replication slots and WAL senders, the privilege to own a publication, and WAL retention limits.
public struct SourceReadiness: Sendable {
    /// One finding.
    public struct Finding: Sendable, Equatable, Codable {
        public enum Severity: String, Sendable, Codable {
            /// Replication cannot work until this is fixed.
            case blocking
            /// Works, but deserves attention (WAL retention, few free slots).
            case warning
            /// Checked and fine.
            case ok
        }

        public var check: String
        public var severity: Severity
        /// What was found and, unless `ok`, what to change.
        public var message: String
    }

    public struct Configuration: Sendable {
        public init() {}
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs the checks on an ordinary connection as the role the agent will use.
    public func check(on connection: PostgresConnection) async throws -> [Finding] {
        let sql = """
            SELECT current_setting('wal_level'), current_user, r.rolreplication::text, r.rolsuper::text,
                   current_setting('max_replication_slots'), (SELECT count(*) FROM pg_replication_slots)::text,
                   current_setting('max_wal_senders'), (SELECT count(*) FROM pg_stat_replication)::text,
                   has_database_privilege(current_database(), 'CREATE')::text, current_database(),
                   current_setting('max_slot_wal_keep_size'), current_setting('server_version_num')
              FROM pg_roles r WHERE r.rolname = current_user
            """
        let result: QueryResult
        do {
            result = try await connection.query(sql)
        } catch {
            throw CaptureError(.catalog, "cannot read the server settings: \(error)", underlying: error)
        }
        guard let row = result.rows.first else { return [] }
        func text(_ index: Int) -> String { row[index] ?? "" }
        let role = PostgresConnection.quoteIdentifier(text(1))
        let database = PostgresConnection.quoteIdentifier(text(9))
        var findings: [Finding] = []
        if text(0) == "logical" {
            findings.append(.init(check: "wal_level", severity: .ok, message: "wal_level = logical"))
        } else {
            findings.append(.init(
                check: "wal_level", severity: .blocking,
                message: "wal_level is '\(text(0))'; logical replication needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL"))
        }
        let superuser = text(3) == "true"
        if text(2) == "true" || superuser {
            findings.append(.init(check: "replication", severity: .ok, message: "role \(text(1)) may replicate"))
        } else {
            findings.append(.init(
                check: "replication", severity: .blocking,
                message: "role \(text(1)) lacks the REPLICATION attribute: ALTER ROLE \(role) REPLICATION (or use Deploy/least-privilege.sql)"))
        }
        let slots = Int(text(4)) ?? 0
        let usedSlots = Int(text(5)) ?? 0
        if slots - usedSlots <= 0 {
            findings.append(.init(
                check: "replication_slots", severity: .blocking,
                message: "all \(slots) replication slots are in use (max_replication_slots): raise max_replication_slots and restart, or drop an unused slot (SELECT pg_drop_replication_slot(name))"))
        } else {
            findings.append(.init(
                check: "replication_slots", severity: slots - usedSlots == 1 ? .warning : .ok,
                message: "\(slots - usedSlots) of \(slots) replication slots free (max_replication_slots)"))
        }
        let senders = Int(text(6)) ?? 0
        let usedSenders = Int(text(7)) ?? 0
        if senders - usedSenders <= 0 {
            findings.append(.init(
                check: "wal_senders", severity: .blocking,
                message: "all \(senders) WAL senders are busy (max_wal_senders): raise max_wal_senders and restart"))
        } else {
            findings.append(.init(check: "wal_senders", severity: .ok, message: "\(senders - usedSenders) of \(senders) WAL senders free"))
        }
        if text(8) == "true" || superuser {
            findings.append(.init(check: "publication", severity: .ok, message: "role \(text(1)) may create and own the publication"))
        } else {
            findings.append(.init(
                check: "publication", severity: .warning,
                message: "role \(text(1)) has no CREATE privilege on database \(text(9)), which creating or owning a publication needs: GRANT CREATE ON DATABASE \(database) TO \(role), or have an administrator create the publication and hand it over (Deploy/least-privilege.sql)"))
        }
        if text(10) == "-1" {
            findings.append(.init(
                check: "wal_retention", severity: .warning,
                message: "max_slot_wal_keep_size is unlimited: a stopped agent's slot keeps WAL until the disk fills. Consider ALTER SYSTEM SET max_slot_wal_keep_size = '50GB' (a slot past it is invalidated; tidemark then re-backfills)"))
        } else {
            findings.append(.init(check: "wal_retention", severity: .ok, message: "max_slot_wal_keep_size = \(text(10))"))
        }
        return findings
    }
}
