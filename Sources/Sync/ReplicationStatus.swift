import Foundation
import Postgres

/// The replication slot as the source server sees it: how far it is confirmed, how much WAL it
/// holds back, how long ago the stream was current. Read with one catalog query that any role may
/// run (`pg_replication_slots`, `pg_stat_replication` of its own walsender).
public struct ReplicationStatus: Sendable, Equatable, Codable {
    /// The slot's name.
    public var slot: String
    /// Whether the slot exists on the server.
    public var exists: Bool
    /// Whether a walsender streams from it now.
    public var active: Bool
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL's `wal_status`); `lost` means its
    /// WAL was removed and the index must be re-backfilled (the agent does that by itself).
    public var walStatus: String?
    /// The server's current WAL position.
    public var serverLSN: String
    /// Where the slot is confirmed (everything before is in the index).
    public var confirmedLSN: String?
    /// Bytes of WAL between the confirmed position and the server's current one.
    public var lagBytes: Int64
    /// Bytes of WAL the slot keeps on the server's disk (from its restart position).
    public var retainedBytes: Int64
    /// Seconds the index is behind the server (the walsender's `flush_lag`): 0 when caught up,
    /// `nil` when nothing streams from the slot.
    public var lagSeconds: Double?
    /// Bytes of WAL that may still be written before the slot is at risk of invalidation
    /// (`safe_wal_size`); `nil` when `max_slot_wal_keep_size` is unlimited.
    public var safeWALBytes: Int64?

    private static let sql = """
        SELECT pg_current_wal_lsn()::text, (s.slot_name IS NOT NULL)::text, coalesce(s.active, false)::text, s.wal_status,
               s.confirmed_flush_lsn::text,
               coalesce(pg_current_wal_lsn() - s.confirmed_flush_lsn, 0)::bigint::text,
               coalesce(pg_current_wal_lsn() - s.restart_lsn, 0)::bigint::text,
               s.safe_wal_size::text,
               (SELECT extract(epoch FROM r.flush_lag)::text FROM pg_stat_replication r WHERE r.pid = s.active_pid)
          FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1
        """

    /// Reads the status of `slot` on an ordinary connection to the source.
    public static func read(slot: String, on connection: PostgresConnection) async throws -> ReplicationStatus {
        let result = try await connection.query(sql, [slot])
        guard let row = result.rows.first else { throw SyncError(.schema, "the source answered no row for the replication status") }
        let exists = row[1] == "true"
        let active = row[2] == "true"
        let lagBytes = max(0, Int64(row[5] ?? "") ?? 0)
        var lagSeconds = row[8].flatMap { Double($0) }
        // The walsender reports no lag once the slot has caught up (NULL), and none at all while no
        // one streams from it.
        if lagSeconds == nil && active { lagSeconds = 0 }
        return ReplicationStatus(
            slot: slot, exists: exists, active: active, walStatus: row[3], serverLSN: row[0] ?? "0/0", confirmedLSN: row[4],
            lagBytes: exists ? lagBytes : 0, retainedBytes: max(0, Int64(row[6] ?? "") ?? 0), lagSeconds: lagSeconds,
            safeWALBytes: row[7].flatMap { Int64($0) })
    }
}
