/// The header of a safetensors file: the names, element types, shapes and byte ranges of its tensors.
///
/// Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON
/// (`{"name": {"dtype": "F16", "shape": [rows, columns], "data_offsets": [begin, end]}, …}`, plus an
/// optional `__metadata__`), then the raw little-endian data; offsets count from the end of the header.
/// Every length and offset is checked against the file's size, so a truncated or malformed file
/// is an ``EmbeddingError/Code/configuration`` error, never an out-of-bounds read.
struct SafetensorsFile {
    /// One tensor of the file.
    struct Tensor: Sendable, Equatable {
        var name: String
        /// `F16`, `F32`, `BF16`, …
        var dtype: String
        var shape: [Int]
        /// Byte range of the data, from the start of the file.
        var range: Range<Int>
    }

    /// The tensors, by name order.
    let tensors: [Tensor]
    /// Bytes of the header JSON (8 + this is where data starts).
    let headerLength: Int

    /// Largest header accepted (the format's own limit is 100 MB).
    static let maximumHeaderLength = 100_000_000

    /// Bytes per element of the types the embedder reads.
    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F32": 4
        case "F16", "BF16": 2
        default: nil
        }
    }

    /// Reads the header of the file whose bytes are `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) throws(EmbeddingError) {
        guard bytes.count >= 8 else {
            throw EmbeddingError(.configuration, "the file has \(bytes.count) bytes, fewer than the 8 of a safetensors header length (truncated?)")
        }
        var length: UInt64 = 0
        for index in (0..<8).reversed() { length = length << 8 | UInt64(bytes[index]) }
        guard length <= UInt64(Self.maximumHeaderLength), Int(length) <= bytes.count - 8 else {
            throw EmbeddingError(.configuration, "the header length \(length) exceeds the file's \(bytes.count) bytes (truncated, or not a safetensors file)")
        }
        headerLength = Int(length)
        let header = Array(bytes[8..<8 + headerLength])
        let json: JSONValue
        do {
            json = try JSONValue.parse(header)
        } catch {
            throw EmbeddingError(.configuration, "the safetensors header is not valid JSON (\(error.message))")
        }
        guard let entries = json.object else { throw EmbeddingError(.configuration, "the safetensors header is not a JSON object") }
        let dataStart = 8 + headerLength
        var tensors: [Tensor] = []
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) where name != "__metadata__" {
            guard let object = value.object, let dtype = object["dtype"]?.string,
                let shapeValues = object["shape"]?.array, let offsets = object["data_offsets"]?.array, offsets.count == 2,
                let begin = offsets[0].integer, let end = offsets[1].integer
            else {
                throw EmbeddingError(.configuration, "tensor '\(name)': the header entry needs dtype, shape and data_offsets [begin, end]")
            }
            var shape: [Int] = []
            for dimension in shapeValues {
                guard let size = dimension.integer, size >= 0 else {
                    throw EmbeddingError(.configuration, "tensor '\(name)': the shape holds \(dimension.kind), not a size")
                }
                shape.append(size)
            }
            guard begin >= 0, begin <= end, end <= bytes.count - dataStart else {
                throw EmbeddingError(
                    .configuration,
                    "tensor '\(name)': data_offsets [\(begin), \(end)] lie outside the file's \(bytes.count - dataStart) data bytes (truncated?)")
            }
            tensors.append(Tensor(name: name, dtype: dtype, shape: shape, range: (dataStart + begin)..<(dataStart + end)))
        }
        self.tensors = tensors
    }

    /// The tensor named `name`, or, when `name` is `nil`, the file's only 2-D tensor.
    func matrixTensor(named name: String?) throws(EmbeddingError) -> Tensor {
        if let name {
            guard let tensor = tensors.first(where: { $0.name == name }) else {
                throw EmbeddingError(.configuration, "there is no tensor '\(name)'; the file has \(tensors.map(\.name).joined(separator: ", "))")
            }
            return tensor
        }
        let matrices = tensors.filter { $0.shape.count == 2 }
        guard matrices.count == 1, let only = matrices.first else {
            throw EmbeddingError(
                .configuration,
                matrices.isEmpty
                    ? "the file holds no 2-D tensor (a token-embedding matrix)"
                    : "the file holds several 2-D tensors (\(matrices.map(\.name).joined(separator: ", "))): name one with embedder.tensor")
        }
        return only
    }
}
