import Logging
import Postgres

/// Creates or verifies what logical replication needs on the source: `wal_level = logical`, a
/// publication of the configured tables, and a `pgoutput` slot.
///
/// All names are quoted as identifiers; nothing from configuration is spliced into SQL unquoted.
public struct ReplicationSetup: Sendable {
    public struct Configuration: Sendable {
        public var slotName: String
        public var publicationName: String
        /// Tables the publication must contain (exactly these).
        public var tables: [TableName]

        public init(slotName: String, publicationName: String, tables: [TableName]) {
            self.slotName = slotName
            self.publicationName = publicationName
            self.tables = tables
        }
    }

    /// The slot as the server reports it.
    public struct SlotState: Sendable, Equatable {
        /// Created by this call (so nothing was confirmed yet).
        public var created: Bool
        /// For a new slot, the position from which it is consistent; else its `confirmed_flush_lsn`.
        public var confirmedFlush: LSN
        public var restartLSN: LSN?
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Checks `wal_level`, then makes the publication contain exactly the configured tables and
    /// publish inserts, updates, deletes and truncates, with `publish_via_partition_root = false`:
    /// with the option, a `TRUNCATE` of one partition is not published at all (see ``PartitionMap``).
    /// An existing publication with the option on is changed, and that is logged.
    ///
    /// - Returns: the configured tables that were not in the publication (all of them when it was
    ///   created): their changes since they left it — or since a table of the same name replaced
    ///   the one published — never reached the stream, so their entities must be read again.
    @discardableResult
    public func ensurePublication(on connection: PostgresConnection) async throws -> [TableName] {
        let level = try await connection.query("SELECT current_setting('wal_level')").rows.first?.first ?? nil
        guard level == "logical" else {
            throw CaptureError(
                .serverConfiguration,
                "wal_level is '\(level ?? "unknown")' on the source; logical replication needs wal_level = logical (set it in postgresql.conf and restart PostgreSQL)")
        }
        let name = PostgresConnection.quoteIdentifier(configuration.publicationName)
        // ONLY: an inheritance parent's children are tables of their own. Without it they join the
        // publication, and then every UPDATE through the parent fails on a child without a replica
        // identity — the application would break. Partitions of a partitioned table are published
        // either way.
        let tableList = configuration.tables.map { "ONLY " + $0.quoted }.joined(separator: ", ")
        let existing = try await connection.query(
            "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate, puballtables, pubviaroot FROM pg_publication WHERE pubname = $1",
            [configuration.publicationName])
        if existing.rows.isEmpty {
            let target = configuration.tables.isEmpty ? "" : " FOR TABLE \(tableList)"
            try await connection.query("CREATE PUBLICATION \(name)\(target) WITH (publish_via_partition_root = false)")
            logger.info("publication created", metadata: ["publication.name": "\(configuration.publicationName)"])
            return configuration.tables
        }
        var added: [TableName] = []
        if existing.rows[0][1] == "t" {
            logger.debug("publication covers all tables", metadata: ["publication.name": "\(configuration.publicationName)"])
        } else {
            // The members themselves (pg_publication_tables lists a partitioned table's leaves instead).
            let rows = try await connection.query(
                """
                SELECT n.nspname, c.relname FROM pg_publication_rel r
                  JOIN pg_publication p ON p.oid = r.prpubid
                  JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE p.pubname = $1
                """, [configuration.publicationName])
            let current = Set(rows.rows.compactMap { row in
                row[0].flatMap { schema in row[1].map { TableName(schema: schema, name: $0) } }
            })
            added = configuration.tables.filter { !current.contains($0) }
            if current != Set(configuration.tables) {
                if configuration.tables.isEmpty {
                    for table in current { try await connection.query("ALTER PUBLICATION \(name) DROP TABLE \(table.quoted)") }
                } else {
                    try await connection.query("ALTER PUBLICATION \(name) SET TABLE \(tableList)")
                }
                logger.info(
                    "publication tables updated",
                    metadata: ["publication.name": "\(configuration.publicationName)", "tables": "\(configuration.tables)"])
            }
        }
        if existing.rows[0][0] != "t" {
            try await connection.query("ALTER PUBLICATION \(name) SET (publish = 'insert, update, delete, truncate')")
        }
        if existing.rows[0][2] == "t" {
            try await connection.query("ALTER PUBLICATION \(name) SET (publish_via_partition_root = false)")
            logger.warning(
                "publication had publish_via_partition_root = true, under which a TRUNCATE of one partition is never published; set it to false (changes now arrive under each partition's name, which tidemark maps to the partitioned table)",
                metadata: ["publication.name": "\(configuration.publicationName)"])
        }
        return added
    }

    /// Returns the slot's state, creating it with `pgoutput` if it does not exist.
    ///
    /// - Throws: ``CaptureError`` `replicationSetup` when a slot of that name uses another plugin or
    ///   database, and `slotLost` when the slot was invalidated (its WAL is gone: re-backfill).
    public func ensureSlot(on connection: PostgresConnection) async throws -> SlotState {
        let rows = try await connection.query(
            """
            SELECT plugin, database, confirmed_flush_lsn::text, restart_lsn::text, wal_status,
                   current_database()
              FROM pg_replication_slots WHERE slot_name = $1
            """, [configuration.slotName])
        if let row = rows.rows.first {
            guard row[0] == "pgoutput", row[1] == row[5] else {
                throw CaptureError(
                    .replicationSetup,
                    "replication slot \"\(configuration.slotName)\" exists but uses plugin \(row[0] ?? "none") on database \(row[1] ?? "none"); choose another slot name or drop it")
            }
            if row[4] == "lost" || row[3] == nil {
                throw CaptureError(
                    .slotLost,
                    "replication slot \"\(configuration.slotName)\" was invalidated (wal_status = lost); its changes are gone: drop the slot and re-backfill")
            }
            return SlotState(
                created: false, confirmedFlush: row[2].flatMap { LSN($0) } ?? .zero, restartLSN: row[3].flatMap { LSN($0) })
        }
        let created = try await connection.query(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", [configuration.slotName])
        let lsn = created.rows.first?.first.flatMap { $0.flatMap { LSN($0) } } ?? .zero
        logger.info("replication slot created", metadata: ["slot.name": "\(configuration.slotName)", "lsn.consistent": "\(lsn)"])
        return SlotState(created: true, confirmedFlush: lsn, restartLSN: lsn)
    }

    /// Drops the slot if it exists.
    ///
    /// A slot still held by a walsender (55006) — typically that of an agent that was just killed,
    /// whose connection the server has not noticed closing yet — is waited for up to `patience`;
    /// after that the error says which process holds it (another agent using the same slot?).
    public func dropSlot(on connection: PostgresConnection, patience: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                try await connection.query(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    [configuration.slotName])
                return
            } catch let error as PostgresError where error.sqlState == "55006" && ContinuousClock.now < deadline {
                logger.info("replication slot still in use; waiting for it to be released", metadata: ["slot.name": "\(configuration.slotName)"])
                try await Task.sleep(for: .milliseconds(200))
            } catch let error as PostgresError where error.sqlState == "55006" {
                throw CaptureError(
                    .replicationSetup,
                    "replication slot \"\(configuration.slotName)\" is in use by another process (\(error.message)); is another tidemark running with the same source.slot?",
                    underlying: error)
            }
        }
    }

    /// Drops the publication if it exists.
    public func dropPublication(on connection: PostgresConnection) async throws {
        try await connection.query("DROP PUBLICATION IF EXISTS \(PostgresConnection.quoteIdentifier(configuration.publicationName))")
    }

    /// WAL the slot holds back on the server, in bytes (`pg_current_wal_lsn() - restart_lsn`).
    public func retainedWAL(on connection: PostgresConnection) async throws -> Int64? {
        let rows = try await connection.query(
            "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = $1",
            [configuration.slotName])
        return rows.rows.first?.first.flatMap { $0.flatMap { Int64($0) } }
    }
}
