/// Builds the input of `COPY … FROM STDIN (FORMAT binary)`: a header, rows of length-prefixed
/// fields in each type's binary form (big-endian), and a trailer.
///
/// Binary COPY skips the server's text parsing, which for float arrays (vectors) is most of the
/// cost of a bulk write. The caller writes exactly the table's or column list's fields, in order,
/// for every row.
public struct CopyBinaryEncoder: Sendable {
    public private(set) var bytes: [UInt8]
    public private(set) var rows = 0

    public init(reservingCapacity capacity: Int = 1 << 16) {
        bytes = []
        bytes.reserveCapacity(capacity)
        // Signature, flags (no OIDs), header extension length.
        bytes.append(contentsOf: Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00])
        append32(0)
        append32(0)
    }

    /// Starts a row of `fields` fields.
    public mutating func beginRow(fields: Int) {
        append16(UInt16(truncatingIfNeeded: fields))
        rows += 1
    }

    /// A `NULL`.
    public mutating func null() { append32(UInt32(bitPattern: -1)) }

    /// `text` (or `varchar`, `name`): the UTF-8 bytes; `nil` writes `NULL`.
    public mutating func text(_ value: String?) {
        guard var value else { return null() }
        value.withUTF8 { utf8 in
            append32(UInt32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// `jsonb`: version 1, then the JSON text.
    public mutating func jsonb(_ json: String) {
        var json = json
        json.withUTF8 { utf8 in
            append32(UInt32(utf8.count + 1))
            bytes.append(1)
            bytes.append(contentsOf: utf8)
        }
    }

    /// `int4`.
    public mutating func int32(_ value: Int32) {
        append32(4)
        append32(UInt32(bitPattern: value))
    }

    /// `int8`.
    public mutating func int64(_ value: Int64) {
        append32(8)
        append64(UInt64(bitPattern: value))
    }

    /// `int8`, or `NULL` for `nil`.
    public mutating func int64(_ value: Int64?) {
        guard let value else { return null() }
        int64(value)
    }

    /// `bytea`: the bytes; `nil` writes `NULL`.
    public mutating func bytea(_ value: [UInt8]?) {
        guard let value else { return null() }
        append32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    /// `float8`.
    public mutating func float64(_ value: Double) {
        append32(8)
        append64(value.bitPattern)
    }

    /// Starts a field of `length` bytes in a type's binary form (e.g. an extension type's `recv`
    /// format); the caller then appends exactly that many bytes with the `append` methods.
    public mutating func beginField(length: Int) {
        append32(UInt32(length))
    }

    /// The finished input (with its trailer).
    public func finished() -> [UInt8] {
        var result = bytes
        result.append(0xFF)
        result.append(0xFF)
        return result
    }

    public mutating func appendFloat32(_ value: Float) {
        append32(value.bitPattern)
    }

    /// `values` as big-endian `float4`s, in one copy (the hot path of vector writes). The words are
    /// swapped in a scratch buffer and appended as raw bytes: no per-byte generic iteration, which
    /// unoptimized (debug) builds would pay for on every element.
    public mutating func appendFloat32s(_ values: [Float]) {
        values.withUnsafeBufferPointer { source in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: source.count) { words in
                for index in source.indices { words[index] = source[index].bitPattern.bigEndian }
                bytes.append(contentsOf: UnsafeRawBufferPointer(words))
            }
        }
    }

    public mutating func append16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    public mutating func append32(_ value: UInt32) {
        bytes.append(UInt8(value >> 24))
        bytes.append(UInt8((value >> 16) & 0xFF))
        bytes.append(UInt8((value >> 8) & 0xFF))
        bytes.append(UInt8(value & 0xFF))
    }

    public mutating func append64(_ value: UInt64) {
        append32(UInt32(truncatingIfNeeded: value >> 32))
        append32(UInt32(truncatingIfNeeded: value))
    }
}
