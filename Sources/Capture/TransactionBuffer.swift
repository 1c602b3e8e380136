import Foundation
import Postgres

/// The changes of one transaction that has not committed yet.
///
/// Changes stay in memory up to a byte and count limit; past it they are spilled to an unlinked
/// temporary file (gone when closed, even after a crash), so a transaction of any size needs bounded
/// memory. Subtransaction aborts of streamed transactions cut the buffer back to where the
/// subtransaction began, as PostgreSQL's own apply worker does.
final class TransactionBuffer {
    struct Limits: Sendable {
        var maxChanges: Int
        var maxBytes: Int
        var spoolDirectory: String
    }

    let xid: UInt32
    private let limits: Limits
    private var memory: [PendingChange] = []
    private var memoryBytes = 0
    private(set) var messages: [PgOutputMessage.LogicalMessage] = []
    private var schemas: [RelationSchema] = []
    private var schemaIndexByRelation: [UInt32: Int] = [:]
    private var spool: Int32 = -1
    private var spoolSize = 0
    /// Byte offset of each spooled record, to cut the file back on a subtransaction abort.
    private var offsets: [Int] = []
    /// Where each subtransaction's first change sits, in order of first appearance.
    private var subtransactions: [(xid: UInt32, position: Int)] = []
    /// Index into `subtransactions` by xid, so that each change costs O(1) however many
    /// subtransactions the transaction has (a PL/pgSQL loop with an EXCEPTION block opens one per
    /// iteration).
    private var subtransactionSlots: [UInt32: Int] = [:]

    init(xid: UInt32, limits: Limits) {
        self.xid = xid
        self.limits = limits
    }

    deinit { closeSpool() }

    /// Number of changes held, in memory and spilled.
    var count: Int { offsets.count + memory.count }
    /// Whether part of the transaction lives on disk.
    var hasSpilled: Bool { !offsets.isEmpty }

    func append(_ change: PendingChange, subXID: UInt32? = nil) throws(CaptureError) {
        if let subXID, subXID != xid, subtransactions.last?.xid != subXID, subtransactionSlots[subXID] == nil {
            subtransactionSlots[subXID] = subtransactions.count
            subtransactions.append((subXID, count))
        }
        memoryBytes += change.estimatedBytes
        memory.append(change)
        if memory.count >= limits.maxChanges || memoryBytes >= limits.maxBytes {
            try spill()
        }
    }

    func appendMessage(_ message: PgOutputMessage.LogicalMessage) {
        messages.append(message)
    }

    /// Drops the changes of subtransaction `subXID` and of every subtransaction that began after it.
    ///
    /// Costs O(number of changes and subtransactions dropped), so aborts too are O(1) per change.
    func abortSubtransaction(_ subXID: UInt32) throws(CaptureError) {
        guard let slot = subtransactionSlots[subXID] else { return }
        let position = subtransactions[slot].position
        for dropped in subtransactions[slot...] { subtransactionSlots[dropped.xid] = nil }
        subtransactions.removeSubrange(slot...)
        if position >= offsets.count {
            let cut = position - offsets.count
            memoryBytes -= memory[cut...].reduce(0) { $0 + $1.estimatedBytes }
            memory.removeSubrange(cut...)
        } else {
            let byteOffset = offsets[position]
            guard ftruncate(spool, off_t(byteOffset)) == 0 else {
                throw CaptureError(.spool, "cannot truncate the spool file: errno \(errno)")
            }
            spoolSize = byteOffset
            offsets.removeSubrange(position...)
            memory.removeAll()
            memoryBytes = 0
        }
    }

    private func spill() throws(CaptureError) {
        if spool < 0 { try openSpool() }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(memoryBytes + memory.count * 16)
        for change in memory {
            offsets.append(spoolSize + bytes.count)
            PendingChangeCodec.encode(change, schemaIndex: schemaIndex(change.schema), into: &bytes)
        }
        try writeAll(bytes, at: spoolSize)
        spoolSize += bytes.count
        memory.removeAll(keepingCapacity: true)
        memoryBytes = 0
    }

    private func schemaIndex(_ schema: RelationSchema) -> Int {
        if let index = schemaIndexByRelation[schema.id], schemas[index] == schema { return index }
        schemas.append(schema)
        schemaIndexByRelation[schema.id] = schemas.count - 1
        return schemas.count - 1
    }

    private func openSpool() throws(CaptureError) {
        let template = (limits.spoolDirectory as NSString).appendingPathComponent("tidemark-spool-XXXXXX")
        var path = Array(template.utf8CString)
        let descriptor = path.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw CaptureError(.spool, "cannot create a spool file in \(limits.spoolDirectory): errno \(errno); set a writable spool directory")
        }
        // Unlinked at once: the space is returned when the descriptor closes, crash or not.
        path.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        spool = descriptor
    }

    private func closeSpool() {
        if spool >= 0 {
            close(spool)
            spool = -1
        }
    }

    private func writeAll(_ bytes: [UInt8], at offset: Int) throws(CaptureError) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                pwrite(spool, buffer.baseAddress! + written, buffer.count - written, off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw CaptureError(.spool, "cannot write the spool file: errno \(errno) (disk full?)")
            }
            written += result
        }
    }

    /// Reads the buffered changes back in order, `pieceSize` at a time. Call once, after commit.
    func makeReader() -> Reader { Reader(buffer: self) }

    /// Sequential reader over a committed transaction's changes: spooled ones first, then memory.
    struct Reader {
        fileprivate let buffer: TransactionBuffer
        private var fileOffset = 0
        private var pending: [UInt8] = []
        private var pendingStart = 0
        private var memoryIndex = 0

        fileprivate init(buffer: TransactionBuffer) { self.buffer = buffer }

        /// Up to `count` changes; an empty array once everything was read.
        mutating func next(_ count: Int) throws(CaptureError) -> [PendingChange] {
            var result: [PendingChange] = []
            result.reserveCapacity(min(count, buffer.count))
            while result.count < count, let change = try nextSpooled() {
                result.append(change)
            }
            while result.count < count, memoryIndex < buffer.memory.count {
                result.append(buffer.memory[memoryIndex])
                memoryIndex += 1
            }
            return result
        }

        private mutating func nextSpooled() throws(CaptureError) -> PendingChange? {
            while true {
                let available = pending.count - pendingStart
                if available >= 4 {
                    let length = pending[pendingStart..<pendingStart + 4].reduce(0) { $0 << 8 | Int($1) }
                    if available >= 4 + length {
                        let record = pending[pendingStart + 4..<pendingStart + 4 + length]
                        pendingStart += 4 + length
                        return try PendingChangeCodec.decode(record, schemas: buffer.schemas)
                    }
                }
                guard fileOffset < buffer.spoolSize else {
                    if available > 0 { throw CaptureError(.spool, "spool file ends inside a record") }
                    return nil
                }
                // Refill: keep the partial record, read the next megabyte.
                pending.removeSubrange(0..<pendingStart)
                pendingStart = 0
                let chunk = min(1 << 20, buffer.spoolSize - fileOffset)
                let oldCount = pending.count
                pending.append(contentsOf: repeatElement(0, count: chunk))
                let spool = buffer.spool
                let offset = fileOffset
                let read = pending.withUnsafeMutableBytes { raw in
                    pread(spool, raw.baseAddress! + oldCount, chunk, off_t(offset))
                }
                guard read > 0 else {
                    throw CaptureError(.spool, "cannot read the spool file: errno \(errno)")
                }
                pending.removeLast(chunk - read)
                fileOffset += read
            }
        }
    }
}
