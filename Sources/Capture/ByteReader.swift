import Postgres

/// A bounds-checked big-endian reader over a slice of bytes.
///
/// Every read checks the remaining length first, so truncated input throws instead of trapping.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    private(set) var index: Int
    /// The message type, for error messages.
    let context: String

    init(_ bytes: ArraySlice<UInt8>, context: String) {
        self.bytes = bytes
        self.index = bytes.startIndex
        self.context = context
    }

    /// Offset from the start of the message.
    var offset: Int { index - bytes.startIndex }
    var remaining: Int { bytes.endIndex - index }
    var isAtEnd: Bool { index >= bytes.endIndex }

    func error(_ what: String) -> CaptureError {
        CaptureError(.malformedMessage, "\(context) message: \(what) at offset \(offset) of \(bytes.count) bytes")
    }

    private mutating func require(_ count: Int, _ what: String) throws(CaptureError) {
        guard count >= 0, remaining >= count else {
            throw error("truncated \(what) (needs \(count) bytes, \(remaining) left)")
        }
    }

    mutating func uint8(_ what: String = "byte") throws(CaptureError) -> UInt8 {
        try require(1, what)
        defer { index += 1 }
        return bytes[index]
    }

    mutating func uint16(_ what: String = "int16") throws(CaptureError) -> UInt16 {
        try require(2, what)
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    mutating func uint32(_ what: String = "int32") throws(CaptureError) -> UInt32 {
        try require(4, what)
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[index + i]) }
        index += 4
        return value
    }

    mutating func uint64(_ what: String = "int64") throws(CaptureError) -> UInt64 {
        try require(8, what)
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[index + i]) }
        index += 8
        return value
    }

    mutating func int64(_ what: String = "int64") throws(CaptureError) -> Int64 {
        Int64(bitPattern: try uint64(what))
    }

    mutating func lsn(_ what: String = "LSN") throws(CaptureError) -> LSN {
        LSN(try uint64(what))
    }

    /// A NUL-terminated string.
    mutating func cString(_ what: String = "string") throws(CaptureError) -> String {
        guard let end = bytes[index...].firstIndex(of: 0) else {
            throw error("unterminated \(what)")
        }
        defer { index = end + 1 }
        return String(decoding: bytes[index..<end], as: UTF8.self)
    }

    mutating func take(_ count: Int, _ what: String) throws(CaptureError) -> ArraySlice<UInt8> {
        try require(count, what)
        defer { index += count }
        return bytes[index..<index + count]
    }
}
