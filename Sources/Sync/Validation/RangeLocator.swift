import Indexing
/// Finds the key range a document id falls into: the ranges end at ascending boundaries (the last
/// one is open), as ``KeyRange/split(_:at:)`` makes them, in ``KeyOrder``.
///
/// A single integer key — the common case — is compared as a number without building a parsed key,
/// which is what an index pass over millions of documents spends its time on.
struct RangeLocator: Sendable {
    private enum Bounds: Sendable {
        case integers([Int64])
        case general([[KeyOrder.Part]])
    }

    let order: KeyOrder
    private let bounds: Bounds
    private let general: [[KeyOrder.Part]]

    init(order: KeyOrder, boundaries: [[String]]) {
        self.order = order
        general = boundaries.map(order.key)
        let integers = order.kinds == [.integer] ? boundaries.compactMap { $0.count == 1 ? Int64($0[0]) : nil } : []
        bounds = order.kinds == [.integer] && integers.count == boundaries.count ? .integers(integers) : .general(general)
    }

    /// The number of ranges.
    var count: Int { general.count + 1 }

    /// The range of the document with this id, or `nil` when the id is no key of the entity.
    func range(of id: String) -> Int? {
        if case .integers(let values) = bounds, let key = Int64(id) {
            var low = 0
            var high = values.count
            while low < high {
                let middle = (low + high) / 2
                if key <= values[middle] { high = middle } else { low = middle + 1 }
            }
            return low
        }
        guard let texts = SourceValueScanner.keyTexts(id, keyCount: order.kinds.count) else { return nil }
        return KeyOrder.rangeIndex(of: order.key(texts), upperBounds: general)
    }
}
