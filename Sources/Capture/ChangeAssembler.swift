import Foundation
import Postgres

/// Turns pgoutput messages into committed transactions of ``RowChange``s.
///
/// Guarantees: a transaction is handed over only once its commit arrived, in the order commits arrive
/// (commit order); aborted streamed transactions and aborted subtransactions are discarded; a
/// transaction of any size is held in bounded memory (spilled to disk past the configured limits) and
/// handed over in bounded pieces.
///
/// Not thread-safe: one assembler belongs to one reader loop.
public struct ChangeAssembler: ~Copyable {
    public struct Configuration: Sendable {
        /// The key to identify rows of each table, e.g. primary keys from ``CatalogDiscovery``.
        /// Tables not listed use the columns the server flags as replica identity. Default: empty.
        public var keyColumns: [TableName: [String]] = [:]
        /// Changes kept in memory per open transaction before spilling to disk. Default: 10 000.
        public var maxChangesInMemory = 10_000
        /// Approximate bytes kept in memory per open transaction before spilling. Default: 32 MiB.
        public var maxBytesInMemory = 32 << 20
        /// Changes per handed-over piece of a transaction. Default: 2 000.
        public var pieceSize = 2_000
        /// Where spill files are created (they are unlinked at once). Default: the temporary directory.
        public var spoolDirectory = NSTemporaryDirectory()

        public init() {}
    }

    /// What one message produced.
    public enum Output {
        case none
        /// A non-transactional logical message: deliver it now, in stream order.
        case message(PgOutputMessage.LogicalMessage)
        /// A transaction committed: read its pieces.
        case committed(CommittedTransaction)
    }

    public let configuration: Configuration
    private var relations: [UInt32: RelationSchema] = [:]
    private var current: (buffer: TransactionBuffer, begin: PgOutputMessage.Begin)?
    private var streams: [UInt32: TransactionBuffer] = [:]
    private var activeStream: UInt32?

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Whether the next message is inside a Stream Start/Stop block (the decoder needs this).
    public var inStream: Bool { activeStream != nil }

    /// Whether some transaction has begun and not yet committed or aborted.
    public var hasOpenTransaction: Bool { current != nil || !streams.isEmpty }

    /// The current description of a relation, if the stream sent one.
    public func relation(_ id: UInt32) -> RelationSchema? { relations[id] }

    /// Forgets open transactions, e.g. after a reconnect: the server sends them again from the start.
    /// Relation descriptions are forgotten too, since a new session re-sends them.
    public mutating func reset() {
        current = nil
        streams.removeAll()
        activeStream = nil
        relations.removeAll()
    }

    private var limits: TransactionBuffer.Limits {
        .init(
            maxChanges: configuration.maxChangesInMemory, maxBytes: configuration.maxBytesInMemory,
            spoolDirectory: configuration.spoolDirectory)
    }

    /// Feeds one decoded message.
    public mutating func process(_ message: PgOutputMessage) throws(CaptureError) -> Output {
        switch message {
        case .begin(let begin):
            guard current == nil else {
                throw CaptureError(.malformedMessage, "Begin of xid \(begin.xid) while xid \(current?.begin.xid ?? 0) is open")
            }
            current = (TransactionBuffer(xid: begin.xid, limits: limits), begin)
            return .none
        case .commit(let commit):
            guard let open = current else {
                throw CaptureError(.malformedMessage, "Commit at \(commit.commitLSN) without Begin")
            }
            current = nil
            return .committed(CommittedTransaction(
                buffer: open.buffer, commitLSN: commit.commitLSN, endLSN: commit.endLSN,
                commitTime: commit.commitTimestamp, pieceSize: configuration.pieceSize))
        case .origin, .type:
            return .none
        case .relation(let relation):
            let table = TableName(schema: relation.namespace, name: relation.name)
            relations[relation.id] = RelationSchema(relation, keyColumns: configuration.keyColumns[table])
            return .none
        case .insert(let insert):
            try add(PendingChange(kind: .insert, schema: try schema(insert.relationID), newValues: insert.newTuple), insert.streamXID)
            return .none
        case .update(let update):
            try add(PendingChange(kind: .update, schema: try schema(update.relationID), newValues: update.newTuple, old: update.old), update.streamXID)
            return .none
        case .delete(let delete):
            try add(PendingChange(kind: .delete, schema: try schema(delete.relationID), old: delete.old), delete.streamXID)
            return .none
        case .truncate(let truncate):
            for id in truncate.relationIDs {
                try add(PendingChange(kind: .truncate, schema: try schema(id), truncateOptions: truncate.options), truncate.streamXID)
            }
            return .none
        case .message(let logical):
            guard logical.isTransactional else { return .message(logical) }
            try openBuffer(logical.streamXID).appendMessage(logical)
            return .none
        case .streamStart(let start):
            guard activeStream == nil else {
                throw CaptureError(.malformedMessage, "Stream Start of xid \(start.xid) inside the stream of xid \(activeStream ?? 0)")
            }
            activeStream = start.xid
            if streams[start.xid] == nil {
                streams[start.xid] = TransactionBuffer(xid: start.xid, limits: limits)
            }
            return .none
        case .streamStop:
            activeStream = nil
            return .none
        case .streamCommit(let commit):
            guard let buffer = streams.removeValue(forKey: commit.xid) else {
                throw CaptureError(.malformedMessage, "Stream Commit of unknown xid \(commit.xid)")
            }
            return .committed(CommittedTransaction(
                buffer: buffer, commitLSN: commit.commitLSN, endLSN: commit.endLSN,
                commitTime: commit.commitTimestamp, pieceSize: configuration.pieceSize))
        case .streamAbort(let abort):
            if abort.xid == abort.subXID {
                streams[abort.xid] = nil
            } else {
                try streams[abort.xid]?.abortSubtransaction(abort.subXID)
            }
            return .none
        }
    }

    private func schema(_ id: UInt32) throws(CaptureError) -> RelationSchema {
        guard let schema = relations[id] else {
            throw CaptureError(.unknownRelation, "change for relation \(id), which the stream never described")
        }
        return schema
    }

    private func openBuffer(_ streamXID: UInt32?) throws(CaptureError) -> TransactionBuffer {
        if let active = activeStream {
            guard let buffer = streams[active] else {
                throw CaptureError(.malformedMessage, "change in the stream of xid \(active), which never started")
            }
            return buffer
        }
        guard let current else {
            throw CaptureError(.malformedMessage, "change outside a transaction")
        }
        return current.buffer
    }

    private func add(_ change: PendingChange, _ streamXID: UInt32?) throws(CaptureError) {
        try openBuffer(streamXID).append(change, subXID: activeStream == nil ? nil : streamXID)
    }
}

/// A committed transaction whose changes are read in pieces.
public struct CommittedTransaction {
    public let xid: UInt32
    public let commitLSN: LSN
    public let endLSN: LSN
    public let commitTime: Int64
    /// Total number of row changes.
    public let changeCount: Int
    private let buffer: TransactionBuffer
    private var reader: TransactionBuffer.Reader
    private let pieceSize: Int
    private var sequence = 0
    private var finished = false

    init(buffer: TransactionBuffer, commitLSN: LSN, endLSN: LSN, commitTime: Int64, pieceSize: Int) {
        self.xid = buffer.xid
        self.buffer = buffer
        self.commitLSN = commitLSN
        self.endLSN = endLSN
        self.commitTime = commitTime
        self.changeCount = buffer.count
        self.reader = buffer.makeReader()
        self.pieceSize = max(1, pieceSize)
    }

    /// The next piece, or `nil` after the final one. An empty transaction yields one final piece
    /// with no changes, so its position can still be confirmed.
    public mutating func nextPiece() throws(CaptureError) -> TransactionPiece? {
        guard !finished else { return nil }
        let pending = try reader.next(pieceSize)
        let delivered = sequence * pieceSize + pending.count
        let isFinal = delivered >= changeCount
        let changes = pending.map { $0.rowChange(xid: xid, commitLSN: commitLSN, commitTime: commitTime) }
        defer { sequence += 1 }
        if isFinal { finished = true }
        return TransactionPiece(
            xid: xid, commitLSN: commitLSN, endLSN: endLSN, commitTime: commitTime, changes: changes,
            messages: isFinal ? buffer.messages : [], isFinal: isFinal, sequence: sequence)
    }
}
