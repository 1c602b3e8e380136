/// A binary min-heap of candidate merges, ordered by rank and then by position (the leftmost of
/// equally ranked pairs merges first, as in the reference BPE). Push and pop are O(log n).
///
/// Owns a fixed-capacity buffer (the merge loop knows its bound: n − 1 initial pairs plus two per
/// merge), so the hot loop does no reallocation, reference counting or bounds checks.
struct MergeQueue: ~Copyable {
    /// A candidate: merge the symbol at `position` (holding `left`) with its right neighbour
    /// (holding `right`) into `merged`.
    struct Entry {
        /// `rank << 32 | position`: one integer comparison orders by rank, then position.
        var order: UInt64
        var left: Int32
        var right: Int32
        var merged: Int32

        var rank: UInt32 { UInt32(truncatingIfNeeded: order >> 32) }
        var position: Int { Int(UInt32(truncatingIfNeeded: order)) }
    }

    private let heap: UnsafeMutablePointer<Entry>
    private let capacity: Int
    private var count = 0

    /// A queue for at most `capacity` pushes.
    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        heap = .allocate(capacity: self.capacity)
    }

    deinit { heap.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// Adds an entry without restoring the heap order; call ``heapify()`` before the first pop.
    mutating func append(_ entry: Entry) {
        precondition(count < capacity, "MergeQueue capacity exceeded")
        (heap + count).initialize(to: entry)
        count += 1
    }

    /// Restores the heap order after ``append(_:)`` calls, in O(n).
    mutating func heapify() {
        var index = count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index, heap[index])
        }
    }

    mutating func push(_ entry: Entry) {
        precondition(count < capacity, "MergeQueue capacity exceeded")
        var child = count
        count += 1
        // Move parents down into the hole until the entry fits.
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.order < heap[parent].order else { break }
            (heap + child).initialize(to: heap[parent])
            child = parent
        }
        (heap + child).initialize(to: entry)
    }

    mutating func pop() -> Entry? {
        guard count > 0 else { return nil }
        let top = heap[0]
        count -= 1
        if count > 0 { siftDown(from: 0, heap[count]) }
        return top
    }

    /// Places `entry` at `start` or below, moving smaller children up into the hole.
    private func siftDown(from start: Int, _ entry: Entry) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && heap[right].order < heap[left].order ? right : left
            guard heap[smaller].order < entry.order else { break }
            heap[parent] = heap[smaller]
            parent = smaller
        }
        heap[parent] = entry
    }
}
