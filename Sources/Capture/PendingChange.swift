import Postgres

/// A change of a transaction that has not committed yet: what the assembler buffers or spools.
struct PendingChange: Sendable {
    enum Kind: UInt8 { case insert = 1, update = 2, delete = 3, truncate = 4 }

    var kind: Kind
    var schema: RelationSchema
    var newValues: [ColumnValue]?
    var old: PgOutputMessage.Update.OldTuple?
    var truncateOptions: UInt8 = 0

    /// Rough in-memory size, for the spill threshold.
    var estimatedBytes: Int {
        func size(_ values: [ColumnValue]?) -> Int {
            guard let values else { return 0 }
            var total = 16 * values.count
            for value in values {
                switch value {
                case .text(let text): total += text.utf8.count
                case .binary(let bytes): total += bytes.count
                default: break
                }
            }
            return total
        }
        let oldSize: Int
        switch old {
        case .key(let values), .full(let values): oldSize = size(values)
        case nil: oldSize = 0
        }
        return 64 + size(newValues) + oldSize
    }

    /// Turns the pending change into a ``RowChange`` once its transaction committed.
    func rowChange(xid: UInt32, commitLSN: LSN, commitTime: Int64) -> RowChange {
        let keyIndexes = schema.keyIndexes
        func keyOf(_ values: [ColumnValue]) -> [ColumnValue] {
            keyIndexes.map { $0 < values.count ? values[$0] : .null }
        }
        var oldValues: [ColumnValue]?
        var oldKeyValues: [ColumnValue]?
        switch old {
        case .key(let values): oldKeyValues = keyOf(values)
        case .full(let values):
            oldValues = values
            oldKeyValues = keyOf(values)
        case nil: break
        }
        var newValues = self.newValues
        // Under REPLICA IDENTITY FULL the old row has the real value of an unchanged TOAST column.
        if var values = newValues, let oldValues, values.contains(.unchangedToast) {
            for index in values.indices where values[index] == .unchangedToast && index < oldValues.count {
                values[index] = oldValues[index]
            }
            newValues = values
        }
        let operation: RowChange.Operation
        var key: [ColumnValue] = []
        var reportedOldKey: [ColumnValue]?
        switch kind {
        case .insert:
            operation = .insert
            key = keyOf(newValues ?? [])
        case .update:
            operation = .update
            key = keyOf(newValues ?? [])
            if let oldKeyValues, oldKeyValues != key { reportedOldKey = oldKeyValues }
        case .delete:
            operation = .delete
            key = oldKeyValues ?? []
            reportedOldKey = oldKeyValues
        case .truncate:
            operation = .truncate
        }
        return RowChange(
            operation: operation, schema: schema, key: key, newValues: newValues, oldKey: reportedOldKey,
            oldValues: oldValues, truncateOptions: truncateOptions, xid: xid, commitLSN: commitLSN,
            commitTime: commitTime)
    }
}

/// Binary form of ``PendingChange`` for the spool file. Schemas are written once and referenced by
/// index, so a 200k-row transaction does not repeat its column list 200k times.
enum PendingChangeCodec {
    static func encode(_ change: PendingChange, schemaIndex: Int, into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0])  // record length, patched below
        out.append(change.kind.rawValue)
        appendUInt32(UInt32(schemaIndex), to: &out)
        out.append(change.truncateOptions)
        appendTuple(change.newValues, to: &out)
        switch change.old {
        case nil:
            out.append(0)
        case .key(let values):
            out.append(1)
            appendTuple(values, to: &out)
        case .full(let values):
            out.append(2)
            appendTuple(values, to: &out)
        }
        let length = UInt32(out.count - start - 4)
        for i in 0..<4 { out[start + i] = UInt8(truncatingIfNeeded: length >> (24 - 8 * UInt32(i))) }
    }

    /// Decodes one record (without its length prefix).
    static func decode(_ bytes: ArraySlice<UInt8>, schemas: [RelationSchema]) throws(CaptureError) -> PendingChange {
        var reader = ByteReader(bytes, context: "spooled change")
        guard let kind = PendingChange.Kind(rawValue: try reader.uint8("kind")) else {
            throw reader.error("unknown change kind")
        }
        let schemaIndex = Int(try reader.uint32("schema index"))
        guard schemaIndex < schemas.count else { throw reader.error("schema index \(schemaIndex) out of range") }
        let options = try reader.uint8("truncate options")
        let newValues = try readTuple(&reader)
        let old: PgOutputMessage.Update.OldTuple?
        switch try reader.uint8("old marker") {
        case 0: old = nil
        case 1: old = .key(try readTuple(&reader) ?? [])
        case 2: old = .full(try readTuple(&reader) ?? [])
        default: throw reader.error("bad old-tuple marker")
        }
        return PendingChange(kind: kind, schema: schemas[schemaIndex], newValues: newValues, old: old, truncateOptions: options)
    }

    private static func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value >> 24))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }

    private static func appendTuple(_ values: [ColumnValue]?, to out: inout [UInt8]) {
        guard let values else {
            out.append(0)
            return
        }
        out.append(1)
        appendUInt32(UInt32(values.count), to: &out)
        for value in values {
            switch value {
            case .null: out.append(UInt8(ascii: "n"))
            case .unchangedToast: out.append(UInt8(ascii: "u"))
            case .text(let text):
                out.append(UInt8(ascii: "t"))
                appendUInt32(UInt32(text.utf8.count), to: &out)
                out.append(contentsOf: text.utf8)
            case .binary(let bytes):
                out.append(UInt8(ascii: "b"))
                appendUInt32(UInt32(bytes.count), to: &out)
                out.append(contentsOf: bytes)
            }
        }
    }

    private static func readTuple(_ reader: inout ByteReader) throws(CaptureError) -> [ColumnValue]? {
        guard try reader.uint8("tuple marker") == 1 else { return nil }
        let count = Int(try reader.uint32("column count"))
        guard count <= reader.remaining else { throw reader.error("column count exceeds record") }
        var values: [ColumnValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            switch try reader.uint8("value kind") {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"):
                let length = Int(try reader.uint32("length"))
                values.append(.text(String(decoding: try reader.take(length, "text"), as: UTF8.self)))
            case UInt8(ascii: "b"):
                let length = Int(try reader.uint32("length"))
                values.append(.binary(Array(try reader.take(length, "binary"))))
            default: throw reader.error("bad value kind")
            }
        }
        return values
    }
}
