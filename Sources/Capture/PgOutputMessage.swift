import Postgres

/// One message of the `pgoutput` logical decoding plugin (protocol versions 1 to 4).
///
/// See "Logical Replication Message Formats" in the PostgreSQL documentation. Messages that belong to
/// a streamed transaction (protocol 2+, between Stream Start and Stream Stop) carry that
/// transaction's id in `streamXID`; otherwise it is `nil`.
public enum PgOutputMessage: Sendable, Equatable {
    case begin(Begin)
    case commit(Commit)
    case origin(Origin)
    case relation(Relation)
    case type(TypeInfo)
    case insert(Insert)
    case update(Update)
    case delete(Delete)
    case truncate(Truncate)
    case message(LogicalMessage)
    case streamStart(StreamStart)
    case streamStop
    case streamCommit(StreamCommit)
    case streamAbort(StreamAbort)

    public struct Begin: Sendable, Equatable {
        /// LSN of the transaction's commit record.
        public var finalLSN: LSN
        /// Commit time, microseconds since 2000-01-01 UTC.
        public var commitTimestamp: Int64
        public var xid: UInt32
    }

    public struct Commit: Sendable, Equatable {
        public var flags: UInt8
        /// LSN of the commit record.
        public var commitLSN: LSN
        /// LSN just past the commit record: the position to confirm once the transaction is durable.
        public var endLSN: LSN
        public var commitTimestamp: Int64
    }

    public struct Origin: Sendable, Equatable {
        public var commitLSN: LSN
        public var name: String
    }

    public struct Relation: Sendable, Equatable {
        public struct Column: Sendable, Equatable {
            /// Part of the replica identity (the key, or every column under `REPLICA IDENTITY FULL`).
            public var isKey: Bool
            public var name: String
            public var typeOID: UInt32
            public var typeModifier: Int32
        }

        public var streamXID: UInt32?
        public var id: UInt32
        public var namespace: String
        public var name: String
        /// `d` default, `n` nothing, `f` full, `i` index.
        public var replicaIdentity: UInt8
        public var columns: [Column]
    }

    public struct TypeInfo: Sendable, Equatable {
        public var streamXID: UInt32?
        public var id: UInt32
        public var namespace: String
        public var name: String
    }

    public struct Insert: Sendable, Equatable {
        public var streamXID: UInt32?
        public var relationID: UInt32
        public var newTuple: [ColumnValue]
    }

    public struct Update: Sendable, Equatable {
        /// Which old values an update carries.
        public enum OldTuple: Sendable, Equatable {
            /// `K`: the old key (the key changed, identity DEFAULT or INDEX).
            case key([ColumnValue])
            /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
            case full([ColumnValue])
        }

        public var streamXID: UInt32?
        public var relationID: UInt32
        public var old: OldTuple?
        public var newTuple: [ColumnValue]
    }

    public struct Delete: Sendable, Equatable {
        public var streamXID: UInt32?
        public var relationID: UInt32
        /// The old key (`K`) or whole old row (`O`).
        public var old: Update.OldTuple
    }

    public struct Truncate: Sendable, Equatable {
        public var streamXID: UInt32?
        /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
        public var options: UInt8
        public var relationIDs: [UInt32]
    }

    public struct LogicalMessage: Sendable, Equatable {
        public var streamXID: UInt32?
        /// Written inside a transaction (delivered at its commit) rather than immediately.
        public var isTransactional: Bool
        public var lsn: LSN
        public var prefix: String
        public var content: [UInt8]
    }

    public struct StreamStart: Sendable, Equatable {
        public var xid: UInt32
        /// The first segment of this transaction's stream.
        public var isFirstSegment: Bool
    }

    public struct StreamCommit: Sendable, Equatable {
        public var xid: UInt32
        public var flags: UInt8
        public var commitLSN: LSN
        public var endLSN: LSN
        public var commitTimestamp: Int64
    }

    public struct StreamAbort: Sendable, Equatable {
        public var xid: UInt32
        /// Equal to `xid` when the whole transaction aborted; otherwise one subtransaction.
        public var subXID: UInt32
    }
}

/// One column value of a replicated row, keeping the three cases of the protocol apart.
public enum ColumnValue: Sendable, Hashable {
    /// SQL `NULL`.
    case null
    /// An unchanged TOASTed value: the stream does not carry it; keep the previous one.
    case unchangedToast
    /// The value in PostgreSQL's text format.
    case text(String)
    /// The value in binary format (only when binary transfer is requested).
    case binary([UInt8])

    /// The text form, or `nil` for null, unchanged TOAST, or binary.
    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}
