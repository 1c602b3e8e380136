extension Array where Element == UInt8 {
    /// Appends the UTF-8 encoding of `scalar` (one to four bytes), without allocating.
    mutating func appendUTF8(_ scalar: Unicode.Scalar) {
        let value = scalar.value
        switch value {
        case 0..<0x80:
            append(UInt8(value))
        case 0x80..<0x800:
            append(UInt8(0xC0 | (value >> 6)))
            append(UInt8(0x80 | (value & 0x3F)))
        case 0x800..<0x10000:
            append(UInt8(0xE0 | (value >> 12)))
            append(UInt8(0x80 | ((value >> 6) & 0x3F)))
            append(UInt8(0x80 | (value & 0x3F)))
        default:
            append(UInt8(0xF0 | (value >> 18)))
            append(UInt8(0x80 | ((value >> 12) & 0x3F)))
            append(UInt8(0x80 | ((value >> 6) & 0x3F)))
            append(UInt8(0x80 | (value & 0x3F)))
        }
    }
}

/// Decoding of UTF-8 that is known to be valid (it came from a `String` or was built by
/// ``Swift/Array/appendUTF8(_:)``).
enum UTF8Scalar {
    /// Bytes of the scalar whose first byte is `lead`.
    static func length(lead: UInt8) -> Int {
        if lead < 0x80 { return 1 }
        if lead < 0xE0 { return 2 }
        if lead < 0xF0 { return 3 }
        return 4
    }

    /// The scalar starting at `index` and its length in bytes.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> (scalar: Unicode.Scalar, length: Int) {
        let lead = bytes[index]
        let length = min(length(lead: lead), bytes.count - index)
        var value: UInt32
        switch length {
        case 1: value = UInt32(lead)
        case 2: value = UInt32(lead & 0x1F)
        case 3: value = UInt32(lead & 0x0F)
        default: value = UInt32(lead & 0x07)
        }
        var offset = 1
        while offset < length {
            value = value << 6 | UInt32(bytes[index + offset] & 0x3F)
            offset += 1
        }
        return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
    }
}
