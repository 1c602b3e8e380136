import Foundation

/// The order in which validation places an entity's keys into key ranges on the index side, where
/// keys are only the text forms inside document ids.
///
/// It equals PostgreSQL's order (the one the source side's range queries use) for integer keys
/// (compared as numbers), `numeric` keys (compared as decimals), and keys whose order is the byte
/// order of their text: `uuid`, and text types under a byte-order collation (`C`, `POSIX`, the
/// collation of the test servers). Other keys (text under a linguistic collation, timestamps with
/// time zones, floats) are compared by the bytes of their text, which is still a total order: a key
/// then may fall into another range on the index side than on the source side, which makes both
/// ranges differ and the validator compare them row by row, so the result stays exact and only the
/// cost grows (`Docs/validation.md`).
public struct KeyOrder: Sendable {
    /// How one key column compares.
    public enum Kind: Sendable, Equatable {
        case integer
        case decimal
        case bytes
    }

    /// One key column's value, parsed for comparison.
    public enum Part: Sendable, Equatable {
        case integer(Int64)
        case decimal(DecimalText)
        /// The UTF-8 bytes of the text (byte order is code point order).
        case bytes(String)

        /// Orders values of different kinds (a value that did not parse as its column's kind) by
        /// kind, so the order stays total.
        private var rank: Int {
            switch self {
            case .integer: 0
            case .decimal: 1
            case .bytes: 2
            }
        }

        public static func compare(_ lhs: Part, _ rhs: Part) -> Int {
            switch (lhs, rhs) {
            case (.integer(let a), .integer(let b)): return a < b ? -1 : a == b ? 0 : 1
            case (.decimal(let a), .decimal(let b)): return DecimalText.compare(a, b)
            case (.bytes(let a), .bytes(let b)): return KeyOrder.compareBytes(a, b)
            default: return lhs.rank < rhs.rank ? -1 : 1
            }
        }
    }

    public let kinds: [Kind]

    /// - Parameter keyTypes: the key columns' SQL types (`format_type`, as ``Indexing/EntityMapping/keyTypes``).
    public init(keyTypes: [String], keyCount: Int) {
        kinds = (0..<keyCount).map { index in
            guard index < keyTypes.count else { return .bytes }
            let type = keyTypes[index].lowercased()
            if ["smallint", "integer", "bigint", "oid"].contains(type) { return .integer }
            if type == "numeric" || type.hasPrefix("numeric(") { return .decimal }
            return .bytes
        }
    }

    /// A key parsed for comparison; `texts` has one text per key column.
    public func key(_ texts: [String]) -> [Part] {
        var parts: [Part] = []
        parts.reserveCapacity(texts.count)
        for (index, text) in texts.enumerated() {
            parts.append(part(text, index < kinds.count ? kinds[index] : .bytes))
        }
        return parts
    }

    private func part(_ text: String, _ kind: Kind) -> Part {
        switch kind {
        case .integer:
            if let value = Int64(text) { return .integer(value) }
        case .decimal:
            if let value = DecimalText(text) { return .decimal(value) }
        case .bytes:
            break
        }
        return .bytes(text)
    }

    /// Lexicographic comparison of two parsed keys: negative, zero or positive.
    public static func compare(_ lhs: [Part], _ rhs: [Part]) -> Int {
        for (a, b) in zip(lhs, rhs) {
            let order = Part.compare(a, b)
            if order != 0 { return order }
        }
        return lhs.count < rhs.count ? -1 : lhs.count == rhs.count ? 0 : 1
    }

    /// The index of the range (of those `upperBounds` end, ascending, plus the open last one) that
    /// holds `key`: the first bound at or above it, or `upperBounds.count` when it is above all.
    public static func rangeIndex(of key: [Part], upperBounds: [[Part]]) -> Int {
        var low = 0
        var high = upperBounds.count
        while low < high {
            let middle = (low + high) / 2
            if compare(key, upperBounds[middle]) <= 0 {
                high = middle
            } else {
                low = middle + 1
            }
        }
        return low
    }

    public static func compareBytes(_ a: String, _ b: String) -> Int {
        var a = a
        var b = b
        return a.withUTF8 { left in
            b.withUTF8 { right in
                let common = min(left.count, right.count)
                if common > 0, let l = left.baseAddress, let r = right.baseAddress {
                    let order = memcmp(l, r, common)
                    if order != 0 { return order < 0 ? -1 : 1 }
                }
                return left.count < right.count ? -1 : left.count == right.count ? 0 : 1
            }
        }
    }
}

extension KeyOrder {
    /// A key as bytes whose byte order (`memcmp`, then length) is ``compare(_:_:)``'s order: what
    /// an index store keeps per document (`order_key`) so that it can cut its documents into the
    /// validator's key ranges with plain comparisons, inside SQL.
    ///
    /// Each part is a tag (its kind's rank), then: an integer as 8 big-endian bytes with the sign bit
    /// flipped; a decimal as its sign class, then (finite, non-zero) the count of integer digits
    /// (4 bytes), the digits and a terminator, every byte inverted for a negative value; text as its
    /// UTF-8 bytes and a 0 byte (PostgreSQL text holds no 0 byte). Every part's encoding is
    /// prefix-free, so concatenating them orders keys part by part.
    public func encoded(_ texts: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(texts.count * 10)
        for part in key(texts) { Self.append(part, to: &bytes) }
        return bytes
    }

    static func append(_ part: Part, to bytes: inout [UInt8]) {
        switch part {
        case .integer(let value):
            bytes.append(1)
            let flipped = UInt64(bitPattern: value) ^ (1 << 63)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: flipped >> UInt64(shift))) }
        case .decimal(let value):
            bytes.append(2)
            bytes.append(UInt8(value.sign + 2))  // -Infinity 0, negative 1, zero 2, positive 3, Infinity 4, NaN 5
            guard abs(value.sign) == 1 else { return }
            var magnitude: [UInt8] = []
            let count = UInt32(value.integer.count)
            for shift in stride(from: 24, through: 0, by: -8) { magnitude.append(UInt8(truncatingIfNeeded: count >> UInt32(shift))) }
            magnitude += value.integer
            magnitude += value.fraction
            magnitude.append(0)
            bytes += value.sign < 0 ? magnitude.map { ~$0 } : magnitude
        case .bytes(let text):
            bytes.append(3)
            bytes += text.utf8
            bytes.append(0)
        }
    }

    /// Byte order of two encoded keys: negative, zero or positive (what SQLite's BLOB and
    /// PostgreSQL's `bytea` comparisons give).
    public static func compareEncoded(_ a: [UInt8], _ b: [UInt8]) -> Int {
        for (x, y) in zip(a, b) where x != y { return x < y ? -1 : 1 }
        return a.count < b.count ? -1 : a.count == b.count ? 0 : 1
    }
}

/// A `numeric` value's text (`-12.340`, `NaN`, `Infinity`) reduced to what orders it: sign, the
/// integer digits without leading zeros, the fraction digits without trailing zeros.
public struct DecimalText: Sendable, Equatable {
    /// −2: −Infinity, −1: negative, 0: zero, 1: positive, 2: +Infinity, 3: NaN (PostgreSQL sorts NaN last).
    public var sign: Int
    public var integer: [UInt8]
    public var fraction: [UInt8]

    public init?(_ text: String) {
        switch text {
        case "NaN": self.init(sign: 3)
        case "Infinity": self.init(sign: 2)
        case "-Infinity": self.init(sign: -2)
        default:
            var bytes = Array(text.utf8)
            var negative = false
            if bytes.first == UInt8(ascii: "-") {
                negative = true
                bytes.removeFirst()
            }
            let point = bytes.firstIndex(of: UInt8(ascii: "."))
            var integer = Array(bytes[..<(point ?? bytes.count)])
            var fraction = point.map { Array(bytes[($0 + 1)...]) } ?? []
            guard !integer.isEmpty || !fraction.isEmpty,
                (integer + fraction).allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { return nil }
            while integer.first == UInt8(ascii: "0") { integer.removeFirst() }
            while fraction.last == UInt8(ascii: "0") { fraction.removeLast() }
            let zero = integer.isEmpty && fraction.isEmpty
            self.init(sign: zero ? 0 : negative ? -1 : 1, integer: integer, fraction: fraction)
        }
    }

    private init(sign: Int, integer: [UInt8] = [], fraction: [UInt8] = []) {
        self.sign = sign
        self.integer = integer
        self.fraction = fraction
    }

    public static func compare(_ a: DecimalText, _ b: DecimalText) -> Int {
        if a.sign != b.sign { return a.sign < b.sign ? -1 : 1 }
        guard abs(a.sign) == 1 else { return 0 }
        var magnitude: Int
        if a.integer.count != b.integer.count {
            magnitude = a.integer.count < b.integer.count ? -1 : 1
        } else if a.integer != b.integer {
            magnitude = a.integer.lexicographicallyPrecedes(b.integer) ? -1 : 1
        } else if a.fraction != b.fraction {
            magnitude = a.fraction.lexicographicallyPrecedes(b.fraction) ? -1 : 1
        } else {
            magnitude = 0
        }
        return a.sign < 0 ? -magnitude : magnitude
    }
}
