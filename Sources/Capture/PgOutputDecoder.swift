import Postgres

/// Decodes `pgoutput` messages: a pure function from bytes to ``PgOutputMessage``.
///
/// Malformed or truncated input throws a ``CaptureError`` with code `malformedMessage` naming the
/// message type and byte offset; it never traps and never loops.
public enum PgOutputDecoder {
    /// Decodes one pgoutput message (the payload of an XLogData frame).
    ///
    /// - Parameter inStream: whether the message arrived between Stream Start and Stream Stop, in
    ///   which case data messages carry the streamed transaction's id first (protocol 2+).
    public static func decode(_ bytes: ArraySlice<UInt8>, inStream: Bool = false) throws(CaptureError) -> PgOutputMessage {
        guard let tag = bytes.first else {
            throw CaptureError(.malformedMessage, "empty pgoutput message")
        }
        let name = messageName(tag)
        var reader = ByteReader(bytes, context: name)
        _ = try reader.uint8("tag")
        let message: PgOutputMessage
        switch tag {
        case UInt8(ascii: "B"):
            message = .begin(.init(
                finalLSN: try reader.lsn("final LSN"), commitTimestamp: try reader.int64("timestamp"),
                xid: try reader.uint32("xid")))
        case UInt8(ascii: "C"):
            message = .commit(.init(
                flags: try reader.uint8("flags"), commitLSN: try reader.lsn("commit LSN"),
                endLSN: try reader.lsn("end LSN"), commitTimestamp: try reader.int64("timestamp")))
        case UInt8(ascii: "O"):
            message = .origin(.init(commitLSN: try reader.lsn("origin LSN"), name: try reader.cString("origin name")))
        case UInt8(ascii: "R"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let id = try reader.uint32("relation id")
            let namespace = try reader.cString("namespace")
            let relationName = try reader.cString("relation name")
            let identity = try reader.uint8("replica identity")
            let count = Int(try reader.uint16("column count"))
            var columns: [PgOutputMessage.Relation.Column] = []
            columns.reserveCapacity(min(count, reader.remaining / 10 + 1))
            for _ in 0..<count {
                let flags = try reader.uint8("column flags")
                columns.append(.init(
                    isKey: flags & 1 != 0, name: try reader.cString("column name"),
                    typeOID: try reader.uint32("column type"), typeModifier: Int32(bitPattern: try reader.uint32("type modifier"))))
            }
            message = .relation(.init(
                streamXID: xid, id: id, namespace: namespace, name: relationName,
                replicaIdentity: identity, columns: columns))
        case UInt8(ascii: "Y"):
            let xid = inStream ? try reader.uint32("xid") : nil
            message = .type(.init(
                streamXID: xid, id: try reader.uint32("type id"), namespace: try reader.cString("namespace"),
                name: try reader.cString("type name")))
        case UInt8(ascii: "I"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let relation = try reader.uint32("relation id")
            let marker = try reader.uint8("tuple marker")
            guard marker == UInt8(ascii: "N") else { throw reader.error("expected 'N' tuple, found \(describe(marker))") }
            message = .insert(.init(streamXID: xid, relationID: relation, newTuple: try tuple(&reader)))
        case UInt8(ascii: "U"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let relation = try reader.uint32("relation id")
            var marker = try reader.uint8("tuple marker")
            var old: PgOutputMessage.Update.OldTuple?
            if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                let values = try tuple(&reader)
                old = marker == UInt8(ascii: "K") ? .key(values) : .full(values)
                marker = try reader.uint8("tuple marker")
            }
            guard marker == UInt8(ascii: "N") else { throw reader.error("expected 'N' tuple, found \(describe(marker))") }
            message = .update(.init(streamXID: xid, relationID: relation, old: old, newTuple: try tuple(&reader)))
        case UInt8(ascii: "D"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let relation = try reader.uint32("relation id")
            let marker = try reader.uint8("tuple marker")
            let old: PgOutputMessage.Update.OldTuple
            switch marker {
            case UInt8(ascii: "K"): old = .key(try tuple(&reader))
            case UInt8(ascii: "O"): old = .full(try tuple(&reader))
            default: throw reader.error("expected 'K' or 'O' tuple, found \(describe(marker))")
            }
            message = .delete(.init(streamXID: xid, relationID: relation, old: old))
        case UInt8(ascii: "T"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let count = Int(try reader.uint32("relation count"))
            let options = try reader.uint8("options")
            guard count <= reader.remaining / 4 else { throw reader.error("relation count \(count) exceeds the message") }
            var ids: [UInt32] = []
            ids.reserveCapacity(count)
            for _ in 0..<count { ids.append(try reader.uint32("relation id")) }
            message = .truncate(.init(streamXID: xid, options: options, relationIDs: ids))
        case UInt8(ascii: "M"):
            let xid = inStream ? try reader.uint32("xid") : nil
            let flags = try reader.uint8("flags")
            let lsn = try reader.lsn("message LSN")
            let prefix = try reader.cString("prefix")
            let length = Int(try reader.uint32("content length"))
            let content = Array(try reader.take(length, "content"))
            message = .message(.init(
                streamXID: xid, isTransactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: content))
        case UInt8(ascii: "S"):
            message = .streamStart(.init(xid: try reader.uint32("xid"), isFirstSegment: try reader.uint8("first segment") == 1))
        case UInt8(ascii: "E"):
            message = .streamStop
        case UInt8(ascii: "c"):
            message = .streamCommit(.init(
                xid: try reader.uint32("xid"), flags: try reader.uint8("flags"),
                commitLSN: try reader.lsn("commit LSN"), endLSN: try reader.lsn("end LSN"),
                commitTimestamp: try reader.int64("timestamp")))
        case UInt8(ascii: "A"):
            let xid = try reader.uint32("xid")
            let sub = try reader.uint32("subtransaction xid")
            // Protocol 4 (parallel apply) appends the abort LSN and time; we have no use for them.
            if reader.remaining >= 16 { _ = try reader.take(16, "abort position") }
            message = .streamAbort(.init(xid: xid, subXID: sub))
        default:
            throw CaptureError(.malformedMessage, "unknown pgoutput message type \(describe(tag)) at offset 0 of \(bytes.count) bytes")
        }
        guard reader.isAtEnd else {
            throw reader.error("\(reader.remaining) unexpected trailing bytes")
        }
        return message
    }

    /// Reads TupleData: a column count, then per column `n`, `u`, `t` + text or `b` + binary.
    static func tuple(_ reader: inout ByteReader) throws(CaptureError) -> [ColumnValue] {
        let count = Int(try reader.uint16("tuple column count"))
        guard count <= reader.remaining else {
            throw reader.error("tuple column count \(count) exceeds the message")
        }
        var values: [ColumnValue] = []
        values.reserveCapacity(count)
        for column in 0..<count {
            let kind = try reader.uint8("column kind")
            switch kind {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"):
                let length = Int(try reader.uint32("value length"))
                let bytes = try reader.take(length, "text value of column \(column)")
                values.append(.text(String(decoding: bytes, as: UTF8.self)))
            case UInt8(ascii: "b"):
                let length = Int(try reader.uint32("value length"))
                values.append(.binary(Array(try reader.take(length, "binary value of column \(column)"))))
            default:
                throw reader.error("unknown column kind \(describe(kind)) for column \(column)")
            }
        }
        return values
    }

    static func messageName(_ tag: UInt8) -> String {
        switch tag {
        case UInt8(ascii: "B"): "Begin"
        case UInt8(ascii: "C"): "Commit"
        case UInt8(ascii: "O"): "Origin"
        case UInt8(ascii: "R"): "Relation"
        case UInt8(ascii: "Y"): "Type"
        case UInt8(ascii: "I"): "Insert"
        case UInt8(ascii: "U"): "Update"
        case UInt8(ascii: "D"): "Delete"
        case UInt8(ascii: "T"): "Truncate"
        case UInt8(ascii: "M"): "Message"
        case UInt8(ascii: "S"): "Stream Start"
        case UInt8(ascii: "E"): "Stream Stop"
        case UInt8(ascii: "c"): "Stream Commit"
        case UInt8(ascii: "A"): "Stream Abort"
        default: "unknown (\(describe(tag)))"
        }
    }

    static func describe(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? "'\(Character(UnicodeScalar(byte)))'" : "0x" + String(byte, radix: 16)
    }
}
