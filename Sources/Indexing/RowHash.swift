/// The hash validation compares a row with its document by: PostgreSQL's `hashtextextended`,
/// chained over the row's key values and source values (`Docs/validation.md`).
///
/// For the values v₁…vₙ — the key columns in key order, then the entity's source columns
/// (``Indexing/EntityMapping/sourceColumns``) in their order — each the column's text form (its
/// type's output function, as `concat(v)` gives it) or NULL:
///
/// ```
/// h₀ = 0
/// hᵢ = hashtextextended(coalesce(vᵢ, '') COLLATE "C", hᵢ₋₁ # (vᵢ IS NULL)::int::bigint)
/// ```
///
/// and the row hash is hₙ. No separators are needed: each value is hashed on its own with the
/// previous hash as its seed, and NULL differs from the empty text by the seed's lowest bit. A
/// document whose stored source values lack a column hashes that column with the seed's second bit
/// set (`# 2`), which no source row produces.
///
/// `hashtextextended` is PostgreSQL's `hash_bytes_extended` (Bob Jenkins' lookup3 with a 64-bit
/// seed) over the text's bytes in the database encoding; hash partitioning depends on it, so it is
/// stable across versions. This type computes the same function on the UTF-8 bytes of the text
/// forms the agent stores, which equals PostgreSQL's for UTF8 databases on little-endian servers —
/// the validator checks both before a validation (a probe computed on both sides).
public struct RowHash: Sendable, Equatable {
    /// The chain so far (h₀ = 0).
    public private(set) var value: UInt64 = 0

    public init() {}

    /// Adds a value (`nil` for NULL).
    public mutating func add(_ text: String?) {
        guard var text else {
            value = Self.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: value ^ 1)
            return
        }
        value = text.withUTF8 { Self.hash(UnsafeRawBufferPointer($0), seed: value) }
    }

    /// Adds a non-NULL value given as bytes.
    public mutating func add(bytes: UnsafeRawBufferPointer) {
        value = Self.hash(bytes, seed: value)
    }

    /// Adds NULL.
    public mutating func addNull() {
        value = Self.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: value ^ 1)
    }

    /// Adds a value the document does not have at all (its source values lack the column).
    public mutating func addMissing() {
        value = Self.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: value ^ 2)
    }

    /// The row hash of `values`, in order.
    public static func of(_ values: [String?]) -> UInt64 {
        var hash = RowHash()
        for value in values { hash.add(value) }
        return hash.value
    }

    /// PostgreSQL's `hash_bytes_extended(bytes, seed)` as it runs on a little-endian machine, which
    /// is what `hashtextextended(text, seed)` returns (as a signed bigint) for a deterministic
    /// collation.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var a: UInt32 = 0x9E37_79B9 &+ UInt32(truncatingIfNeeded: bytes.count) &+ 3_923_095
        var b = a
        var c = a
        if seed != 0 {
            // The seed counts as a leading 12-byte block of its two halves and four zero bytes.
            a &+= UInt32(truncatingIfNeeded: seed >> 32)
            b &+= UInt32(truncatingIfNeeded: seed)
            mix(&a, &b, &c)
        }
        var offset = 0
        var remaining = bytes.count
        while remaining >= 12 {
            a &+= word(bytes, offset)
            b &+= word(bytes, offset + 4)
            c &+= word(bytes, offset + 8)
            mix(&a, &b, &c)
            offset += 12
            remaining -= 12
        }
        // The last 0…11 bytes, little-endian; the lowest byte of c is left for the length.
        var index = 0
        while index < remaining {
            let byte = UInt32(bytes[offset + index])
            switch index {
            case 0..<4: a &+= byte << (8 * UInt32(index))
            case 4..<8: b &+= byte << (8 * UInt32(index - 4))
            default: c &+= byte << (8 * UInt32(index - 7))
            }
            index += 1
        }
        finalize(&a, &b, &c)
        return UInt64(b) << 32 | UInt64(c)
    }

    /// The row hash as PostgreSQL prints it (a signed bigint).
    public static func signed(_ value: UInt64) -> Int64 { Int64(bitPattern: value) }

    @inline(__always)
    private static func word(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    private static func rotate(_ x: UInt32, _ k: UInt32) -> UInt32 { (x << k) | (x >> (32 - k)) }

    @inline(__always)
    private static func mix(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        a &-= c; a ^= rotate(c, 4); c &+= b
        b &-= a; b ^= rotate(a, 6); a &+= c
        c &-= b; c ^= rotate(b, 8); b &+= a
        a &-= c; a ^= rotate(c, 16); c &+= b
        b &-= a; b ^= rotate(a, 19); a &+= c
        c &-= b; c ^= rotate(b, 4); b &+= a
    }

    @inline(__always)
    private static func finalize(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        c ^= b; c &-= rotate(b, 14)
        a ^= c; a &-= rotate(c, 11)
        b ^= a; b &-= rotate(a, 25)
        c ^= b; c &-= rotate(b, 16)
        a ^= c; a &-= rotate(c, 4)
        b ^= a; b &-= rotate(a, 14)
        c ^= b; c &-= rotate(b, 24)
    }
}
