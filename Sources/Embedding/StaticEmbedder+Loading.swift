import Foundation

extension StaticEmbedder {
    /// The bytes of the file at `path`, or a configuration error naming `role` and the fix.
    static func read(_ path: String, role: String, hint: String) throws(EmbeddingError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EmbeddingError(.configuration, "\(role): \(path) does not exist; \(hint)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EmbeddingError(.configuration, "\(role): cannot read \(path) (permissions?); \(hint)")
        }
        return [UInt8](data)
    }

    /// The weights file, memory-mapped (its pages are read once, into the matrix, and released).
    static func map(_ path: String, hint: String) throws(EmbeddingError) -> Data {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EmbeddingError(.configuration, "embedder.weights: \(path) does not exist; \(hint)")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw EmbeddingError(.configuration, "embedder.weights: cannot read \(path): \(error.localizedDescription); \(hint)", underlying: error)
        }
    }

    /// A 64-bit fingerprint of `bytes` (not cryptographic: it tells model files apart). Eight bytes
    /// at a time, so that 16 MB cost a few milliseconds.
    static func fingerprint(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var hash = seed ^ UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15
        let words = bytes.count / 8
        for index in 0..<words {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            hash = (hash ^ mix(word)) &* 0xff51_afd7_ed55_8ccd
            hash = (hash << 27) | (hash >> 37)
        }
        var tail: UInt64 = 0
        for index in (words * 8)..<bytes.count { tail = tail << 8 | UInt64(bytes[index]) }
        return mix(hash ^ mix(tail))
    }

    /// `static:<weights file name>@<8 hex digits>`: the fingerprints of the weights, the tokenizer
    /// and the tensor name, folded into 32 bits.
    static func modelID(weights: String, tensor: String?, weightsFingerprint: UInt64, tokenizerFingerprint: UInt64) -> String {
        var tensorName = tensor ?? ""
        let tensorFingerprint = tensorName.withUTF8 { fingerprint(UnsafeRawBufferPointer($0), seed: 0x7465_6e73) }
        let combined = mix(weightsFingerprint ^ mix(tokenizerFingerprint) ^ mix(tensorFingerprint))
        let hex = String(UInt32(truncatingIfNeeded: combined >> 32), radix: 16)
        let name = URL(fileURLWithPath: weights).deletingPathExtension().lastPathComponent
        return "static:\(name)@\(String(repeating: "0", count: 8 - hex.count))\(hex)"
    }

    /// A 64-bit finalizer (splitmix64's): every output bit depends on every input bit.
    static func mix(_ value: UInt64) -> UInt64 {
        var value = value
        value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
        value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 31)
    }
}
