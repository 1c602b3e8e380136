/// The parts of a `tokenizer.json`, read and checked: what ``Tokenizer`` is built from.
///
/// Every section the encoding depends on is either understood or refused with an error naming the
/// section and the supported types. `post_processor`, `decoder`, `padding` and `truncation` do not
/// change the ids of `encode(text, add_special_tokens=False)` and are ignored.
struct TokenizerDefinition {
    var addedVocabulary: AddedVocabulary
    var normalizer: TextNormalizer
    var preTokenizer: PreTokenizer
    var model: Tokenizer.Model
    var idLimit: Int
    var summary: String

    static let normalizerTypes = ["Sequence", "Prepend", "Replace", "Lowercase", "Strip", "StripAccents", "NFC", "NFD", "NFKC", "NFKD", "BertNormalizer"]
    static let preTokenizerTypes = ["Sequence", "BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Metaspace"]
    static let modelTypes = ["BPE", "WordPiece"]

    init(json: [UInt8]) throws(EmbeddingError) {
        guard let root = try JSONValue.parse(json).object else {
            throw EmbeddingError(.configuration, "the file is JSON but not an object; expected a Hugging Face tokenizer.json")
        }
        guard let modelObject = root["model"]?.object else {
            throw EmbeddingError(.configuration, "no 'model' object; expected a Hugging Face tokenizer.json")
        }
        let normalizerSteps = try Self.normalizerSteps(root["normalizer"] ?? .null, path: "normalizer")
        normalizer = TextNormalizer(steps: normalizerSteps)
        preTokenizer = PreTokenizer(steps: try Self.preTokenizerSteps(root["pre_tokenizer"] ?? .null, path: "pre_tokenizer"))
        let (model, modelSummary) = try Self.model(modelObject)
        self.model = model
        let vocabulary: Vocabulary
        switch model {
        case .bytePair(let bpe): vocabulary = bpe.vocabulary
        case .wordPiece(let wordPiece): vocabulary = wordPiece.vocabulary
        }

        var raw: [AddedVocabulary.Token] = []
        var normalized: [AddedVocabulary.Token] = []
        var largest = vocabulary.count - 1
        for (index, entry) in (root["added_tokens"]?.array ?? []).enumerated() {
            let path = "added_tokens[\(index)]"
            guard let object = entry.object, let content = object["content"]?.string, let id = object["id"]?.integer, id >= 0, id < Int(Int32.max) else {
                throw EmbeddingError(.configuration, "\(path) must be an object with a string 'content' and a non-negative integer 'id'")
            }
            let special = object["special"]?.bool ?? false
            let isNormalized = object["normalized"]?.bool ?? !special
            var token = AddedVocabulary.Token(content: Array(content.utf8), id: Int32(id))
            token.singleWord = object["single_word"]?.bool ?? false
            token.leftStrip = object["lstrip"]?.bool ?? false
            token.rightStrip = object["rstrip"]?.bool ?? false
            largest = max(largest, id)
            if isNormalized {
                token.content = normalizer.normalize(token.content)
                normalized.append(token)
            } else {
                raw.append(token)
            }
        }
        addedVocabulary = AddedVocabulary(raw: raw, normalized: normalized)
        idLimit = largest + 1
        let normalizerNames = Self.typeNames(root["normalizer"] ?? .null, list: "normalizers")
        let preTokenizerNames = Self.typeNames(root["pre_tokenizer"] ?? .null, list: "pretokenizers")
        summary = "\(modelSummary); normalizer \(normalizerNames.isEmpty ? "none" : normalizerNames); pre-tokenizer \(preTokenizerNames.isEmpty ? "none" : preTokenizerNames); \(raw.count + normalized.count) added tokens"
    }

    private static func typeNames(_ value: JSONValue, list: String) -> String {
        guard let object = value.object, let type = object["type"]?.string else { return "" }
        guard type == "Sequence", let steps = object[list]?.array else { return type }
        return steps.map { typeNames($0, list: list) }.joined(separator: "+")
    }

    private static func type(_ object: [String: JSONValue], path: String) throws(EmbeddingError) -> String {
        guard let type = object["type"]?.string else { throw EmbeddingError(.configuration, "\(path) has no 'type'") }
        return type
    }

    private static func string(_ object: [String: JSONValue], _ key: String, path: String) throws(EmbeddingError) -> String {
        guard let text = object[key]?.string else { throw EmbeddingError(.configuration, "\(path).\(key) must be a string") }
        return text
    }

    /// A string, or `nil` when missing or `null`.
    private static func optionalString(_ object: [String: JSONValue], _ key: String, path: String) throws(EmbeddingError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let text = value.string else { throw EmbeddingError(.configuration, "\(path).\(key) must be a string or null") }
        return text
    }

    /// A boolean, `fallback` when missing or `null`.
    private static func bool(_ object: [String: JSONValue], _ key: String, _ fallback: Bool, path: String) throws(EmbeddingError) -> Bool {
        guard let value = object[key], !value.isNull else { return fallback }
        guard let flag = value.bool else { throw EmbeddingError(.configuration, "\(path).\(key) must be true or false (got \(value.kind))") }
        return flag
    }

    static func normalizerSteps(_ value: JSONValue, path: String) throws(EmbeddingError) -> [TextNormalizer.Step] {
        if value.isNull { return [] }
        guard let object = value.object else { throw EmbeddingError(.configuration, "\(path) must be an object or null") }
        let type = try type(object, path: path)
        switch type {
        case "Sequence":
            guard let list = object["normalizers"]?.array else { throw EmbeddingError(.configuration, "\(path).normalizers must be an array") }
            var steps: [TextNormalizer.Step] = []
            for (index, element) in list.enumerated() {
                steps += try normalizerSteps(element, path: "\(path).normalizers[\(index)]")
            }
            return steps
        case "Prepend":
            return [.prepend(Array(try string(object, "prepend", path: path).utf8))]
        case "Replace":
            guard let pattern = object["pattern"]?.object else { throw EmbeddingError(.configuration, "\(path).pattern must be an object") }
            guard let literal = pattern["String"]?.string else {
                throw EmbeddingError(.configuration, "\(path): Replace with a regular expression pattern is not supported (only {\"String\": …} patterns)")
            }
            guard !literal.isEmpty else { return [] }
            return [.replace(pattern: Array(literal.utf8), content: Array(try string(object, "content", path: path).utf8))]
        case "Lowercase":
            return [.lowercase]
        case "Strip":
            return [.strip(left: try bool(object, "strip_left", true, path: path), right: try bool(object, "strip_right", true, path: path))]
        case "StripAccents":
            return [.stripAccents]
        case "NFC": return [.unicode(.nfc)]
        case "NFD": return [.unicode(.nfd)]
        case "NFKC": return [.unicode(.nfkc)]
        case "NFKD": return [.unicode(.nfkd)]
        case "BertNormalizer":
            let lowercase = try bool(object, "lowercase", true, path: path)
            return [
                .bert(
                    cleanText: try bool(object, "clean_text", true, path: path),
                    handleChineseCharacters: try bool(object, "handle_chinese_chars", true, path: path),
                    stripAccents: try bool(object, "strip_accents", lowercase, path: path),
                    lowercase: lowercase)
            ]
        default:
            throw EmbeddingError(.configuration, "\(path): the normalizer type '\(type)' is not supported; supported: \(normalizerTypes.joined(separator: ", "))")
        }
    }

    static func preTokenizerSteps(_ value: JSONValue, path: String) throws(EmbeddingError) -> [PreTokenizer.Step] {
        if value.isNull { return [] }
        guard let object = value.object else { throw EmbeddingError(.configuration, "\(path) must be an object or null") }
        let type = try type(object, path: path)
        switch type {
        case "Sequence":
            guard let list = object["pretokenizers"]?.array else { throw EmbeddingError(.configuration, "\(path).pretokenizers must be an array") }
            var steps: [PreTokenizer.Step] = []
            for (index, element) in list.enumerated() {
                steps += try preTokenizerSteps(element, path: "\(path).pretokenizers[\(index)]")
            }
            return steps
        case "BertPreTokenizer": return [.bert]
        case "Whitespace": return [.whitespace]
        case "WhitespaceSplit": return [.whitespaceSplit]
        case "Metaspace":
            let replacement = try optionalString(object, "replacement", path: path) ?? "\u{2581}"
            let prepend: PreTokenizer.MetaspacePrepend
            switch try optionalString(object, "prepend_scheme", path: path) {
            case "always": prepend = .always
            case "first": prepend = .first
            case "never": prepend = .never
            case nil: prepend = try bool(object, "add_prefix_space", true, path: path) ? .always : .never
            case let other?: throw EmbeddingError(.configuration, "\(path).prepend_scheme '\(other)' is not one of always, first, never")
            }
            return [.metaspace(replacement: Array(replacement.utf8), prepend: prepend, split: try bool(object, "split", true, path: path))]
        default:
            throw EmbeddingError(.configuration, "\(path): the pre-tokenizer type '\(type)' is not supported; supported: \(preTokenizerTypes.joined(separator: ", "))")
        }
    }

    private static func vocabulary(_ object: [String: JSONValue]) throws(EmbeddingError) -> Vocabulary {
        guard let entries = object["vocab"]?.members else { throw EmbeddingError(.configuration, "model.vocab must be an object of token → id") }
        var tokens: [(token: String, id: Int)] = []
        tokens.reserveCapacity(entries.count)
        for entry in entries {
            let (token, value) = (entry.key, entry.value)
            guard let id = value.integer, id >= 0, id < Int(Int32.max) else {
                throw EmbeddingError(.configuration, "model.vocab['\(token)'] must be a non-negative integer id")
            }
            tokens.append((token, id))
        }
        guard !tokens.isEmpty else { throw EmbeddingError(.configuration, "model.vocab is empty") }
        return try Vocabulary(tokens)
    }

    static func model(_ object: [String: JSONValue]) throws(EmbeddingError) -> (Tokenizer.Model, String) {
        // Old files leave out the type: a model with merges is BPE.
        let type = try optionalString(object, "type", path: "model") ?? (object["merges"] != nil ? "BPE" : "")
        switch type {
        case "BPE":
            return try bytePair(object)
        case "WordPiece":
            let vocabulary = try vocabulary(object)
            let unknown = try optionalString(object, "unk_token", path: "model") ?? "[UNK]"
            guard let unknownID = vocabulary.id(unknown) else {
                throw EmbeddingError(.configuration, "model.unk_token '\(unknown)' is not in the vocabulary")
            }
            let prefix = try optionalString(object, "continuing_subword_prefix", path: "model") ?? "##"
            let limit = object["max_input_chars_per_word"]?.integer ?? 100
            let model = WordPieceModel(
                vocabulary: vocabulary, unknownID: unknownID, continuingSubwordPrefix: Array(prefix.utf8), maxInputCharsPerWord: limit)
            return (.wordPiece(model), "WordPiece, \(vocabulary.count) tokens")
        default:
            throw EmbeddingError(.configuration, "model: the model type '\(type)' is not supported; supported: \(modelTypes.joined(separator: ", "))")
        }
    }

    private static func bytePair(_ object: [String: JSONValue]) throws(EmbeddingError) -> (Tokenizer.Model, String) {
        let vocabulary = try vocabulary(object)
        if let dropout = object["dropout"], !dropout.isNull, dropout != .number(0) {
            throw EmbeddingError(.configuration, "model.dropout is set: BPE dropout is random and only for training; set it to null")
        }
        let prefix = Array((try optionalString(object, "continuing_subword_prefix", path: "model") ?? "").utf8)
        let suffix = Array((try optionalString(object, "end_of_word_suffix", path: "model") ?? "").utf8)
        guard let mergeList = object["merges"]?.array else { throw EmbeddingError(.configuration, "model.merges must be an array") }
        var merges = TokenPairTable(capacity: mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            let left: String
            let right: String
            if let line = entry.string {
                // The older format: "left right", split at the first space.
                guard let space = line.firstIndex(of: " ") else {
                    throw EmbeddingError(.configuration, "model.merges[\(rank)] '\(line)' is not two tokens separated by a space")
                }
                left = String(line[..<space])
                right = String(line[line.index(after: space)...])
            } else if let pair = entry.array, pair.count == 2, let first = pair[0].string, let second = pair[1].string {
                left = first
                right = second
            } else {
                throw EmbeddingError(.configuration, "model.merges[\(rank)] must be \"left right\" or [\"left\", \"right\"]")
            }
            guard let leftID = vocabulary.id(left), let rightID = vocabulary.id(right) else {
                throw EmbeddingError(.configuration, "model.merges[\(rank)]: '\(vocabulary.id(left) == nil ? left : right)' is not in the vocabulary")
            }
            let rightBytes = Array(right.utf8)
            guard rightBytes.count >= prefix.count else {
                throw EmbeddingError(.configuration, "model.merges[\(rank)]: '\(right)' is shorter than continuing_subword_prefix")
            }
            let merged = Array(left.utf8) + rightBytes[prefix.count...]
            guard let mergedID = merged.withUnsafeBufferPointer({ vocabulary.id($0) }) else {
                throw EmbeddingError(.configuration, "model.merges[\(rank)]: the merged token '\(String(decoding: merged, as: UTF8.self))' is not in the vocabulary")
            }
            merges.insert(leftID, rightID, TokenPairTable.Merge(rank: UInt32(rank), merged: mergedID))
        }
        let unknownName = try optionalString(object, "unk_token", path: "model")
        var unknownID: Int32?
        if let unknownName {
            guard let id = vocabulary.id(unknownName) else {
                throw EmbeddingError(.configuration, "model.unk_token '\(unknownName)' is not in the vocabulary")
            }
            unknownID = id
        }
        var byteTokens: [Int32]?
        if try bool(object, "byte_fallback", false, path: "model") {
            byteTokens = (0..<256).map { byte in vocabulary.id(Self.byteToken(UInt8(byte))) ?? -1 }
        }
        let model = BytePairModel(
            vocabulary: vocabulary, merges: merges, unknownID: unknownID, fuseUnknown: try bool(object, "fuse_unk", false, path: "model"),
            byteTokens: byteTokens, continuingSubwordPrefix: prefix, endOfWordSuffix: suffix,
            ignoreMerges: try bool(object, "ignore_merges", false, path: "model"))
        return (.bytePair(model), "BPE, \(vocabulary.count) tokens, \(merges.count) merges\(byteTokens != nil ? ", byte fallback" : "")")
    }

    /// `<0x0A>`: the name of a byte's token in byte-fallback vocabularies.
    static func byteToken(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "<0x\(digits[Int(byte >> 4)])\(digits[Int(byte & 0x0F)])>"
    }
}
