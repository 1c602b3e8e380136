import Postgres

/// Builds pgoutput and walsender frames byte by byte, as the server writes them.
final class PgOutputBytes {
    var bytes: [UInt8] = []

    init(_ tag: Character) { bytes = [tag.asciiValue ?? 0] }

    @discardableResult func u8(_ value: UInt8) -> Self { bytes.append(value); return self }
    @discardableResult func char(_ value: Character) -> Self { bytes.append(value.asciiValue ?? 0); return self }
    @discardableResult func u16(_ value: UInt16) -> Self {
        bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
        return self
    }
    @discardableResult func u32(_ value: UInt32) -> Self {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
        return self
    }
    @discardableResult func u64(_ value: UInt64) -> Self {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        return self
    }
    @discardableResult func string(_ value: String) -> Self {
        bytes += Array(value.utf8) + [0]
        return self
    }
    @discardableResult func text(_ value: String) -> Self {
        char("t")
        u32(UInt32(value.utf8.count))
        bytes += Array(value.utf8)
        return self
    }
    @discardableResult func tuple(_ values: [String?]) -> Self {
        u16(UInt16(values.count))
        for value in values {
            if let value { text(value) } else { char("n") }
        }
        return self
    }

    static func begin(final: UInt64, xid: UInt32) -> [UInt8] {
        let b = PgOutputBytes("B")
        b.u64(final).u64(1_000_000).u32(xid)
        return b.bytes
    }

    static func commit(commit: UInt64, end: UInt64) -> [UInt8] {
        let b = PgOutputBytes("C")
        b.u8(0).u64(commit).u64(end).u64(1_000_000)
        return b.bytes
    }

    static func relation(id: UInt32, schema: String = "public", name: String, columns: [(String, Bool)], identity: Character = "d", xid: UInt32? = nil) -> [UInt8] {
        let b = PgOutputBytes("R")
        if let xid { b.u32(xid) }
        b.u32(id).string(schema).string(name).char(identity).u16(UInt16(columns.count))
        for (column, key) in columns {
            b.u8(key ? 1 : 0).string(column).u32(25).u32(UInt32(bitPattern: -1))
        }
        return b.bytes
    }

    static func insert(relation: UInt32, _ values: [String?], xid: UInt32? = nil) -> [UInt8] {
        let b = PgOutputBytes("I")
        if let xid { b.u32(xid) }
        b.u32(relation).char("N").tuple(values)
        return b.bytes
    }

    static func delete(relation: UInt32, key: [String?], xid: UInt32? = nil) -> [UInt8] {
        let b = PgOutputBytes("D")
        if let xid { b.u32(xid) }
        b.u32(relation).char("K").tuple(key)
        return b.bytes
    }

    static func streamStart(xid: UInt32, first: Bool) -> [UInt8] {
        let b = PgOutputBytes("S")
        b.u32(xid).u8(first ? 1 : 0)
        return b.bytes
    }

    static func streamCommit(xid: UInt32, commit: UInt64, end: UInt64) -> [UInt8] {
        let b = PgOutputBytes("c")
        b.u32(xid).u8(0).u64(commit).u64(end).u64(1_000_000)
        return b.bytes
    }

    static func streamAbort(xid: UInt32, subXID: UInt32) -> [UInt8] {
        let b = PgOutputBytes("A")
        b.u32(xid).u32(subXID)
        return b.bytes
    }
}
