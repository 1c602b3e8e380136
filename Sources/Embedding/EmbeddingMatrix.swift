/// A token-embedding matrix: one row of `columns` floats per token id, in one contiguous `[Float]`
/// (32 000 × 256 floats = 32 MB for the default model).
///
/// Immutable once built; rows are summed in SIMD lanes.
struct EmbeddingMatrix: Sendable {
    let rows: Int
    let columns: Int
    /// Row-major values: row `r` is `values[r * columns ..< (r + 1) * columns]`.
    let values: [Float]

    init(rows: Int, columns: Int, values: [Float]) {
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// Converts the tensor's little-endian data (F32, F16 or BF16) in `file` to floats.
    /// Throws when the tensor is not 2-D, has another element type, its byte count disagrees with
    /// its shape, or a value is not finite.
    init(_ tensor: SafetensorsFile.Tensor, in file: UnsafeRawBufferPointer) throws(EmbeddingError) {
        guard tensor.shape.count == 2, tensor.shape[0] > 0, tensor.shape[1] > 0 else {
            throw EmbeddingError(.configuration, "tensor '\(tensor.name)' has shape \(tensor.shape); a token-embedding matrix has two non-zero dimensions")
        }
        guard let size = SafetensorsFile.elementSize(tensor.dtype) else {
            throw EmbeddingError(.configuration, "tensor '\(tensor.name)' holds \(tensor.dtype); supported: F32, F16, BF16")
        }
        let rows = tensor.shape[0]
        let columns = tensor.shape[1]
        let (count, countOverflow) = rows.multipliedReportingOverflow(by: columns)
        let (byteCount, byteOverflow) = count.multipliedReportingOverflow(by: size)
        guard !countOverflow, !byteOverflow, byteCount == tensor.range.count else {
            throw EmbeddingError(
                .configuration,
                "tensor '\(tensor.name)': \(rows) × \(columns) \(tensor.dtype) values do not fit the \(tensor.range.count) bytes its data_offsets span")
        }
        let data = UnsafeRawBufferPointer(rebasing: file[tensor.range])
        let dtype = tensor.dtype
        var finite = true
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            switch dtype {
            case "F32":
                for index in 0..<count {
                    buffer[index] = Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
                }
            case "BF16":
                for index in 0..<count {
                    let bits = UInt16(littleEndian: data.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
                    buffer[index] = Float(bitPattern: UInt32(bits) << 16)
                }
            default:
                for index in 0..<count {
                    buffer[index] = Self.float(half: UInt16(littleEndian: data.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
                }
            }
            for index in 0..<count where !buffer[index].isFinite {
                finite = false
                break
            }
            initialized = count
        }
        guard finite else {
            throw EmbeddingError(.configuration, "tensor '\(tensor.name)' holds values that are not finite (NaN or infinity): the file is damaged")
        }
        self.init(rows: rows, columns: columns, values: values)
    }

    /// The value of an IEEE 754 half-precision number (all cases: zeros, subnormals, infinities, NaN).
    static func float(half bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        var mantissa = UInt32(bits) & 0x3FF
        switch exponent {
        case 0:
            guard mantissa != 0 else { return Float(bitPattern: sign) }
            // Subnormal: shift the mantissa up until its leading one is the implicit bit.
            var shifted: UInt32 = 127 - 15 + 1
            while mantissa & 0x400 == 0 {
                mantissa <<= 1
                shifted -= 1
            }
            return Float(bitPattern: sign | (shifted << 23) | ((mantissa & 0x3FF) << 13))
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        default:
            return Float(bitPattern: sign | ((exponent + 127 - 15) << 23) | (mantissa << 13))
        }
    }

    /// Adds the rows `ids` into `sum` (`columns` floats), 16 lanes at a time. Every id must be
    /// below ``rows`` (the embedder checks the tokenizer's ids against the matrix at load).
    func addRows(_ ids: [Int32], into sum: UnsafeMutableBufferPointer<Float>) {
        let columns = columns
        let wide = columns / 16 * 16
        values.withUnsafeBufferPointer { matrix in
            guard let base = matrix.baseAddress, let target = sum.baseAddress else { return }
            let raw = UnsafeMutableRawPointer(target)
            for id in ids {
                let row = UnsafeRawPointer(base + Int(id) * columns)
                var column = 0
                while column < wide {
                    let offset = column * 4
                    let total = raw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                        + row.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                    raw.storeBytes(of: total, toByteOffset: offset, as: SIMD16<Float>.self)
                    column += 16
                }
                let rowFloats = base + Int(id) * columns
                while column < columns {
                    target[column] += rowFloats[column]
                    column += 1
                }
            }
        }
    }
}
