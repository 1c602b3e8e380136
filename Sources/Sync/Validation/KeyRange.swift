import Indexing

/// A range of an entity's keys in key order: the keys greater than ``lower`` and at most ``upper``
/// (text forms of the key columns, in key order); `nil` means unbounded on that side.
///
/// Validation splits the key space into consecutive ranges: (−∞, b₁], (b₁, b₂], …, (bₙ, +∞), so every
/// key, on either side, falls into exactly one of them.
struct KeyRange: Sendable, Equatable, CustomStringConvertible {
    var lower: [String]?
    var upper: [String]?

    /// The whole key space.
    static let all = KeyRange(lower: nil, upper: nil)

    /// The consecutive ranges that `boundaries` (ascending) split the key space into, or the part of
    /// `within` they split (`boundaries` inside it).
    static func split(_ within: KeyRange = .all, at boundaries: [[String]]) -> [KeyRange] {
        var ranges: [KeyRange] = []
        ranges.reserveCapacity(boundaries.count + 1)
        var lower = within.lower
        for boundary in boundaries {
            ranges.append(KeyRange(lower: lower, upper: boundary))
            lower = boundary
        }
        ranges.append(KeyRange(lower: lower, upper: within.upper))
        return ranges
    }

    var description: String {
        "(\(lower.map { DocumentID.make($0) } ?? "−∞"), \(upper.map { DocumentID.make($0) } ?? "∞")]"
    }
}
