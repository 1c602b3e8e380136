import Postgres

/// One committed row change, ready for indexing.
///
/// Handed over only after its transaction committed, in commit order. Values are aligned with
/// ``schema``'s columns; ``ColumnValue/unchangedToast`` marks a TOASTed value the update did not touch
/// (the previous value still holds).
public struct RowChange: Sendable, Equatable {
    public enum Operation: String, Sendable, Codable {
        case insert, update, delete, truncate
    }

    public var operation: Operation
    /// Table shape at the time of the change.
    public var schema: RelationSchema
    /// Key values in key-column order (empty for a truncate). For a delete, the deleted row's key; for
    /// an update that changed the key, the new key (the old one is in ``oldKey``).
    public var key: [ColumnValue]
    /// The new row (insert, update), aligned with `schema.columns`.
    public var newValues: [ColumnValue]?
    /// The old key when a delete happened or an update changed the key; `nil` otherwise.
    public var oldKey: [ColumnValue]?
    /// The whole old row, under `REPLICA IDENTITY FULL`.
    public var oldValues: [ColumnValue]?
    /// Truncate options: bit 1 CASCADE, bit 2 RESTART IDENTITY.
    public var truncateOptions: UInt8 = 0
    public var xid: UInt32
    /// The LSN of the commit record of the transaction.
    public var commitLSN: LSN
    /// Commit time, microseconds since 2000-01-01 UTC.
    public var commitTime: Int64

    public init(
        operation: Operation, schema: RelationSchema, key: [ColumnValue], newValues: [ColumnValue]?, oldKey: [ColumnValue]?,
        oldValues: [ColumnValue]?, truncateOptions: UInt8 = 0, xid: UInt32, commitLSN: LSN, commitTime: Int64
    ) {
        self.operation = operation
        self.schema = schema
        self.key = key
        self.newValues = newValues
        self.oldKey = oldKey
        self.oldValues = oldValues
        self.truncateOptions = truncateOptions
        self.xid = xid
        self.commitLSN = commitLSN
        self.commitTime = commitTime
    }

    public var table: TableName { schema.table }

    /// Value of column `name` in the new row (or, for a delete, the old row).
    public func value(_ name: String) -> ColumnValue? {
        guard let index = schema.index(of: name) else { return nil }
        return (newValues ?? oldValues)?[index]
    }

    /// The key as text, one element per key column (`nil` for a NULL key part).
    public var keyText: [String?] { key.map(\.text) }
}

/// A piece of one committed transaction.
///
/// A small transaction arrives as one piece. A large one arrives as several pieces in order, each
/// bounded in size, so that neither the reader nor the consumer holds it whole. Only after the piece
/// with ``isFinal`` is durable may the consumer confirm ``endLSN``.
public struct TransactionPiece: Sendable {
    public var xid: UInt32
    public var commitLSN: LSN
    /// The position just past the commit record: what to confirm once durable.
    public var endLSN: LSN
    public var commitTime: Int64
    public var changes: [RowChange]
    /// Transactional logical messages (`pg_logical_emit_message(true, …)`), delivered with the final piece.
    public var messages: [PgOutputMessage.LogicalMessage]
    public var isFinal: Bool
    /// Zero-based position of this piece in its transaction.
    public var sequence: Int
}

/// What the capture side hands downstream.
public enum CaptureEvent: Sendable {
    /// A piece of a committed transaction.
    case transaction(TransactionPiece)
    /// A non-transactional logical message, in WAL order relative to commits (watermarks, heartbeats).
    case message(PgOutputMessage.LogicalMessage)
    /// The server reported this WAL position while no transaction was open, and every transaction
    /// committed before it was delivered: a consumer may record it as its position (and then confirm
    /// it) once everything delivered before is durable. Lets an idle slot advance past WAL that is
    /// not about the published tables, without ever confirming more than the consumer recorded.
    case idle(LSN)

    /// The position a consumer may confirm after applying this event, if any.
    public var confirmableLSN: LSN? {
        switch self {
        case .transaction(let piece): piece.isFinal ? piece.endLSN : nil
        case .message(let message): message.lsn
        case .idle(let lsn): lsn
        }
    }
}
